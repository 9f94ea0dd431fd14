"""Orchestration engine: replay, action handling, timers, retries and activity workers.

Boundary: the Durable Task semantics of this host. It builds the orchestration context
JSON the Durable extension sends to an out-of-process orchestrator, calls the registered
orchestrator, and turns the actions it returns into history events, activity work items
and timers, all through `Store` in one transaction per step. Client operations (start,
raise event, terminate, suspend, resume, rewind, restart, purge) are methods here so the
HTTP layer (`mgmt_api`) stays a thin translation.

How an instance advances: every change arrives as a message in its inbox (ExecutionStarted,
TaskCompleted, TimerFired with its due time, EventRaised, ...). The dispatcher picks
instances with a visible message and runs one *episode* per message: the history so far
(IsPlayed=true) plus [OrchestratorStarted, message] (IsPlayed=false). One message per
episode keeps task ids in step with the SDK: the SDK numbers tasks in the order it
meets them, and a retry's timer or re-run takes the next number while the failure is
replayed, so a batch of several messages could interleave those numbers with new tasks.

The actions list an orchestrator returns is cumulative; `engine_state["action_ids"]`
remembers which flattened actions were already scheduled and with which EventId, so only
the new ones are scheduled (a task yielded twice, e.g. inside a later task_any, is not
supported). `engine_state["retries"]` maps each attempt's task/timer id to its retry
policy: the host plays DTFx's retry interceptor (TaskFailed -> TimerCreated/TimerFired ->
TaskScheduled, and one last timer after the final failure, as the SDK expects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import logs
from .loader import (
    FunctionInfo,
    HostConfig,
    activity_kwargs,
    call,
    encode_activity_result,
    new_invocation_id,
)
from .store import ACTIVE, FINISHED, Instance, Store

# History EventType codes (DurableTask.Core.History.EventType).
EXECUTION_STARTED, EXECUTION_COMPLETED, EXECUTION_TERMINATED = 0, 1, 3
TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED = 7, 8, 9
TIMER_CREATED, TIMER_FIRED = 10, 11
ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED = 12, 13
EVENT_RAISED, GENERIC = 15, 17
EXECUTION_SUSPENDED, EXECUTION_RESUMED = 19, 20

# DurableTask.Core.OrchestrationStatus, as stored in ExecutionCompleted.
ORCHESTRATION_STATUS = {
    "Running": 0,
    "Completed": 1,
    "ContinuedAsNew": 2,
    "Failed": 3,
    "Canceled": 4,
    "Terminated": 5,
    "Pending": 6,
    "Suspended": 7,
}

# Out-of-proc ActionType codes.
CALL_ACTIVITY, CALL_ACTIVITY_RETRY, CALL_SUB, CALL_SUB_RETRY = 0, 1, 2, 3
CONTINUE_AS_NEW, CREATE_TIMER, WAIT_EVENT = 4, 5, 6
WHEN_ANY, WHEN_ALL = 11, 12

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
RESULT_EVENTS = {
    TASK_COMPLETED: "TaskScheduledId",
    TASK_FAILED: "TaskScheduledId",
    TIMER_FIRED: "TimerId",
    SUB_COMPLETED: "TaskScheduledId",
    SUB_FAILED: "TaskScheduledId",
}
SCHEDULE_EVENTS = (TASK_SCHEDULED, TIMER_CREATED, SUB_CREATED)


class NotFound(Exception):
    pass


class Gone(Exception):
    """The instance is in a state the operation does not apply to (HTTP 410)."""


class AlreadyExists(Exception):
    pass


class UnknownOrchestrator(Exception):
    pass


class InvalidInstanceId(ValueError):
    pass


MAX_INSTANCE_ID_LENGTH = 256


def check_instance_id(instance_id: str) -> None:
    """The extension's rules (DurableClient.StartNewAsync): no / \\ ? # or controls."""
    if not instance_id or len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceId(
            f"Instance ID lengths must be 1 to {MAX_INSTANCE_ID_LENGTH} characters."
        )
    if any(c in "/\\?#" or ord(c) < 32 or ord(c) == 127 for c in instance_id):
        raise InvalidInstanceId(f"Instance ID '{instance_id}' contains invalid characters.")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    # FireAt comes from the SDK as "%Y-%m-%dT%H:%M:%S.%fZ"; be lenient about the fraction.
    text = text.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6].ljust(6, '0')}"
    else:
        text += ".000000"
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """Atomic actions in the order the SDK numbered them (compound children in place)."""
    out: list[dict[str, Any]] = []
    for item in actions:
        if isinstance(item, list):
            out.extend(flatten(item))
        elif isinstance(item, dict):
            if item.get("actionType") in (WHEN_ANY, WHEN_ALL):
                out.extend(flatten(item.get("compoundActions") or []))
            else:
                out.append(item)
    return out


def _event(event_type: int, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": event_type,
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": iso(utcnow()),
        **fields,
    }


def _fresh_engine_state() -> dict[str, Any]:
    return {"seq": 0, "action_ids": [], "retries": {}}


@dataclass
class _Episode:
    """What one episode adds, collected inside the transaction."""

    events: list[dict[str, Any]]
    activities: list[int]


class Engine:
    def __init__(
        self,
        store: Store,
        functions: dict[str, FunctionInfo],
        config: HostConfig,
        app_dir: Path,
    ):
        self.store = store
        self.functions = functions
        self.config = config
        self.app_dir = app_dir
        self._wake = asyncio.Event()
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._activity_queue: asyncio.Queue[int] = asyncio.Queue()
        self._orch_pool = ThreadPoolExecutor(config.max_orchestrators, "orchestrator")
        self.activity_pool = ThreadPoolExecutor(config.max_activities, "activity")
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        # Activities that were scheduled (or running) when the host stopped run again.
        for item in self.store.all_activities():
            self._activity_queue.put_nowait(item.id)
        self._spawn(self._dispatch())
        for _ in range(self.config.max_activities):
            self._spawn(self._activity_worker())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._orch_pool.shutdown(wait=False, cancel_futures=True)
        self.activity_pool.shutdown(wait=False, cancel_futures=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake(self) -> None:
        self._wake.set()

    # --- dispatcher --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            self._wake.clear()
            now = time.time()
            free = self.config.max_orchestrators - len(self._running)
            if free > 0:
                for instance_id in self.store.ready_instances(now, self._running, free):
                    self._running.add(instance_id)
                    self._spawn(self._episode(instance_id))
            due = self.store.next_due(now)
            timeout = 1.0 if due is None else max(0.0, min(1.0, due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _episode(self, instance_id: str) -> None:
        try:
            await self._run_episode(instance_id)
        except Exception:
            logs.log.exception("Orchestration engine error for instance %s", instance_id)
            await asyncio.sleep(1)  # do not spin on a poisoned message
        finally:
            self._running.discard(instance_id)
            self._wake.set()

    async def _run_episode(self, instance_id: str) -> None:
        store = self.store
        inst = store.get_instance(instance_id)
        msg = store.first_message(instance_id, time.time())
        if msg is None:
            return
        history = store.history(instance_id)
        if (
            inst is None
            or inst.status not in ACTIVE
            or not self._deliverable(inst, msg.event, history)
        ):
            with store.tx():
                store.delete_message(msg.id)
            return
        event = {k: v for k, v in msg.event.items() if not k.startswith("_")}
        event["IsPlayed"] = False
        started = _event(ORCHESTRATOR_STARTED)
        context = build_context(inst, history, [started, event])
        info = self.functions.get(inst.name)
        invocation_id = new_invocation_id()
        with logs.invocation(inst.name, "(null)", invocation_id) as outcome:
            if info is None or info.kind != "orchestrator":
                state: dict[str, Any] | None = None
                error: str | None = (
                    f"The function '{inst.name}' doesn't exist, is disabled, "
                    "or is not an orchestrator function."
                )
            else:
                loop = asyncio.get_running_loop()
                state, error = await loop.run_in_executor(
                    self._orch_pool, _run_orchestrator, info, json.dumps(context)
                )
            outcome["failed"] = error is not None
        episode = _Episode(events=[started, event], activities=[])
        with store.tx():
            current = store.get_instance(instance_id)
            # Terminated, purged or continued-as-new while the orchestrator ran: drop.
            if (
                current is None
                or current.status not in ACTIVE
                or current.execution_id != inst.execution_id
            ):
                store.delete_message(msg.id)
                return
            store.delete_message(msg.id)
            self._apply(current, event, state, error, episode)
        for item_id in episode.activities:
            self._activity_queue.put_nowait(item_id)

    def _deliverable(self, inst: Instance, event: dict[str, Any], history: list[Any]) -> bool:
        """Drop duplicates and results from an older generation or for closed tasks."""
        etype = event.get("EventType")
        if etype == EXECUTION_STARTED:
            return not history
        if not history:
            return False
        if "_execution" in event and event["_execution"] != inst.execution_id:
            return False
        key = RESULT_EVENTS.get(int(etype or -1))
        if key is None:
            return True
        task_id = event.get(key)
        scheduled = any(
            e["EventType"] in SCHEDULE_EVENTS and e["EventId"] == task_id for e in history
        )
        closed = any(
            RESULT_EVENTS.get(e["EventType"]) and e.get(RESULT_EVENTS[e["EventType"]]) == task_id
            for e in history
        )
        return scheduled and not closed

    # --- applying an orchestrator's result ---------------------------------------------

    def _next_id(self, inst: Instance) -> int:
        task_id = int(inst.engine_state["seq"])
        inst.engine_state["seq"] = task_id + 1
        return task_id

    def _schedule_activity(
        self, inst: Instance, ep: _Episode, task_id: int, name: str, input_: str | None
    ) -> None:
        ep.events.append(_event(TASK_SCHEDULED, task_id, Name=name, Version="", Input=input_))
        ep.activities.append(
            self.store.add_activity(inst.instance_id, inst.execution_id, task_id, name, input_)
        )

    def _schedule_timer(
        self, inst: Instance, ep: _Episode, timer_id: int, fire_at: datetime, send: bool = True
    ) -> None:
        ep.events.append(_event(TIMER_CREATED, timer_id, FireAt=iso(fire_at)))
        if send:
            self.store.send(
                inst.instance_id,
                _event(
                    TIMER_FIRED, TimerId=timer_id, FireAt=iso(fire_at), _execution=inst.execution_id
                ),
                visible_at=fire_at.timestamp(),
            )

    def _advance_retry(self, inst: Instance, event: dict[str, Any], ep: _Episode) -> None:
        retries: dict[str, dict[str, Any]] = inst.engine_state["retries"]
        etype = event["EventType"]
        if etype == TASK_FAILED:
            policy = retries.get(str(event.get("TaskScheduledId")))
            if policy and policy["kind"] == "task":
                timer_id = self._next_id(inst)
                fire_at = datetime.fromtimestamp(time.time() + policy["interval_ms"] / 1000, UTC)
                self._schedule_timer(inst, ep, timer_id, fire_at)
                retries[str(timer_id)] = {**policy, "kind": "timer"}
        elif etype == TIMER_FIRED:
            policy = retries.get(str(event.get("TimerId")))
            if policy and policy["kind"] == "timer" and policy["attempt"] < policy["max"]:
                task_id = self._next_id(inst)
                self._schedule_activity(inst, ep, task_id, policy["name"], policy["input"])
                retries[str(task_id)] = {**policy, "kind": "task", "attempt": policy["attempt"] + 1}

    def _apply(
        self,
        inst: Instance,
        event: dict[str, Any],
        state: dict[str, Any] | None,
        error: str | None,
        ep: _Episode,
    ) -> None:
        now = utcnow()
        if inst.status == "Pending":
            inst.status = "Running"
        self._advance_retry(inst, event, ep)
        continue_as_new: dict[str, Any] | None = None
        if state is not None and error is None:
            action_ids: list[int | None] = inst.engine_state["action_ids"]
            for index, action in enumerate(flatten(state.get("actions") or [])):
                kind = action.get("actionType")
                if index < len(action_ids):
                    known = action_ids[index]
                    if kind == CREATE_TIMER and action.get("isCanceled") and known is not None:
                        self.store.delete_timer(inst.instance_id, known)
                    continue
                task_id: int | None = None
                if kind in (CALL_ACTIVITY, CALL_ACTIVITY_RETRY):
                    task_id = self._next_id(inst)
                    name, input_ = action["functionName"], action.get("input")
                    self._schedule_activity(inst, ep, task_id, name, input_)
                    if kind == CALL_ACTIVITY_RETRY:
                        opts = action.get("retryOptions") or {}
                        inst.engine_state["retries"][str(task_id)] = {
                            "kind": "task",
                            "name": name,
                            "input": input_,
                            "attempt": 1,
                            "max": int(opts.get("maxNumberOfAttempts") or 1),
                            "interval_ms": int(opts.get("firstRetryIntervalInMilliseconds") or 0),
                        }
                elif kind in (CALL_SUB, CALL_SUB_RETRY):
                    task_id = self._next_id(inst)
                    self._start_sub_orchestration(inst, ep, task_id, action)
                elif kind == CREATE_TIMER:
                    task_id = self._next_id(inst)
                    self._schedule_timer(
                        inst,
                        ep,
                        task_id,
                        parse_iso(action["fireAt"]),
                        send=not action.get("isCanceled"),
                    )
                elif kind == WAIT_EVENT:
                    pass
                elif kind == CONTINUE_AS_NEW:
                    continue_as_new = action
                elif error is None:
                    error = f"Action type {kind} is not supported by the local host."
                action_ids.append(task_id)
            custom = state.get("customStatus")
            inst.custom_status = None if custom is None else json.dumps(custom)
        if state is None and error is None:
            error = "The orchestrator returned no state."
        inst.updated_at = iso(now)
        if error is not None:
            message = f"Orchestrator function '{inst.name}' failed: {error}"
            ep.events.append(
                _event(
                    EXECUTION_COMPLETED,
                    OrchestrationStatus=ORCHESTRATION_STATUS["Failed"],
                    Result=message,
                    FailureDetails={"ErrorType": "Exception", "ErrorMessage": message},
                )
            )
            self._finish(inst, "Failed", json.dumps(message), ep)
        elif continue_as_new is not None:
            self._continue_as_new(inst, continue_as_new.get("input"))
            return
        elif state is not None and state.get("isDone"):
            output = json.dumps(state.get("output"))
            ep.events.append(
                _event(
                    EXECUTION_COMPLETED,
                    OrchestrationStatus=ORCHESTRATION_STATUS["Completed"],
                    Result=output,
                )
            )
            self._finish(inst, "Completed", output, ep)
        else:
            ep.events.append(_event(ORCHESTRATOR_COMPLETED))
            self.store.put_instance(inst)
        self.store.append_history(inst.instance_id, ep.events)

    def _finish(self, inst: Instance, status: str, output: str | None, ep: _Episode) -> None:
        if ep.events and ep.events[-1]["EventType"] != ORCHESTRATOR_COMPLETED:
            ep.events.append(_event(ORCHESTRATOR_COMPLETED))
        inst.status = status
        inst.output = output
        inst.updated_at = iso(utcnow())
        self.store.put_instance(inst)
        # Nothing else will run for this execution; a rewind reschedules what it needs.
        self.store.delete_inbox(inst.instance_id)
        self.store.delete_activities(inst.instance_id)
        ep.activities.clear()
        if inst.parent_id is not None and inst.parent_task_id is not None:
            if status == "Completed":
                result = _event(SUB_COMPLETED, TaskScheduledId=inst.parent_task_id, Result=output)
            else:
                reason = json.loads(output) if output else status
                result = _event(
                    SUB_FAILED,
                    TaskScheduledId=inst.parent_task_id,
                    Reason=f"Sub-orchestration '{inst.name}' {status.lower()}: {reason}",
                    Details=None,
                )
            self.store.send(inst.parent_id, result)

    def _continue_as_new(self, inst: Instance, new_input: str | None) -> None:
        inst.execution_id = uuid.uuid4().hex
        inst.input = new_input
        inst.status = "Running"
        inst.engine_state = _fresh_engine_state()
        self.store.replace_history(inst.instance_id, [])
        # Results and timers of the old generation are void; raised events are kept.
        self.store.delete_messages(
            inst.instance_id, (TASK_COMPLETED, TASK_FAILED, TIMER_FIRED, SUB_COMPLETED, SUB_FAILED)
        )
        self.store.delete_activities(inst.instance_id)
        self.store.send(inst.instance_id, self._execution_started(inst))
        self.store.put_instance(inst)

    def _start_sub_orchestration(
        self, inst: Instance, ep: _Episode, task_id: int, action: dict[str, Any]
    ) -> None:
        name = action["functionName"]
        child_id = action.get("instanceId") or uuid.uuid4().hex
        input_ = action.get("input")
        ep.events.append(
            _event(SUB_CREATED, task_id, Name=name, Version="", InstanceId=child_id, Input=input_)
        )
        try:
            self._create(name, child_id, input_, parent=(inst.instance_id, task_id))
        except (AlreadyExists, UnknownOrchestrator) as exc:
            self.store.send(
                inst.instance_id,
                _event(SUB_FAILED, TaskScheduledId=task_id, Reason=str(exc), Details=""),
            )

    def _execution_started(self, inst: Instance) -> dict[str, Any]:
        parent = None
        if inst.parent_id:
            parent = {
                "Name": None,
                "OrchestrationInstance": {"InstanceId": inst.parent_id},
                "TaskScheduleId": inst.parent_task_id,
            }
        return _event(
            EXECUTION_STARTED,
            Name=inst.name,
            Version="",
            Input=inst.input,
            OrchestrationInstance={
                "InstanceId": inst.instance_id,
                "ExecutionId": inst.execution_id,
            },
            ParentInstance=parent,
            Tags=None,
        )

    # --- client operations (called on the loop thread by mgmt_api) ---------------------

    def _create(
        self,
        name: str,
        instance_id: str,
        input_: str | None,
        parent: tuple[str, int] | None = None,
    ) -> None:
        info = self.functions.get(name)
        if info is None or info.kind != "orchestrator":
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                "orchestrator function. Additional info: the function app does not "
                "contain such an orchestrator."
            )
        existing = self.store.get_instance(instance_id)
        if existing is not None:
            if existing.status in ACTIVE:
                raise AlreadyExists(
                    f"An Orchestration instance with the status {existing.status} already exists."
                )
            self.store.delete_instance(instance_id)
        now = iso(utcnow())
        inst = Instance(
            instance_id=instance_id,
            name=name,
            status="Pending",
            input=input_,
            output=None,
            custom_status=None,
            created_at=now,
            updated_at=now,
            execution_id=uuid.uuid4().hex,
            parent_id=parent[0] if parent else None,
            parent_task_id=parent[1] if parent else None,
            engine_state=_fresh_engine_state(),
        )
        self.store.put_instance(inst)
        self.store.send(instance_id, self._execution_started(inst))

    def start_new(self, name: str, instance_id: str | None, input_: str | None) -> str:
        instance_id = instance_id or uuid.uuid4().hex
        check_instance_id(instance_id)
        with self.store.tx():
            self._create(name, instance_id, input_)
        self.wake()
        return instance_id

    def _require(self, instance_id: str) -> Instance:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            raise NotFound(instance_id)
        return inst

    def raise_event(self, instance_id: str, name: str, input_: str | None) -> None:
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status in FINISHED:
                raise Gone(instance_id)
            self.store.send(instance_id, _event(EVENT_RAISED, Name=name, Input=input_))
        self.wake()

    def terminate(self, instance_id: str, reason: str | None) -> None:
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status in FINISHED:
                raise Gone(instance_id)
            output = json.dumps(reason)
            ep = _Episode(events=[], activities=[])
            if self.store.history(instance_id):
                ep.events += [
                    _event(ORCHESTRATOR_STARTED),
                    _event(EXECUTION_TERMINATED, Input=output),
                    _event(
                        EXECUTION_COMPLETED,
                        OrchestrationStatus=ORCHESTRATION_STATUS["Terminated"],
                        Result=output,
                    ),
                ]
            self._finish(inst, "Terminated", output, ep)
            self.store.append_history(instance_id, ep.events)
        self.wake()

    def suspend(self, instance_id: str, reason: str | None) -> None:
        self._set_suspended(instance_id, reason, suspended=True)

    def resume(self, instance_id: str, reason: str | None) -> None:
        self._set_suspended(instance_id, reason, suspended=False)

    def _set_suspended(self, instance_id: str, reason: str | None, suspended: bool) -> None:
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status in FINISHED:
                raise Gone(instance_id)
            if suspended == (inst.status == "Suspended"):
                return
            history = self.store.history(instance_id)
            if history:
                # Recorded between episodes; the SDK skips these event types on replay.
                etype = EXECUTION_SUSPENDED if suspended else EXECUTION_RESUMED
                self.store.append_history(instance_id, [_event(etype, Reason=reason)])
            inst.status = "Suspended" if suspended else ("Running" if history else "Pending")
            inst.updated_at = iso(utcnow())
            self.store.put_instance(inst)
        self.wake()

    def rewind(self, instance_id: str, reason: str | None) -> None:
        """Resume a Failed instance from the failed step: failed activities run again.

        The failing episode is removed from history (and, for an exhausted retry, its
        final failure and timer), and the failed activities are scheduled again with
        the same task ids; completed steps stay in history and are not re-run.
        """
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status != "Failed":
                raise Gone(instance_id)
            history = self.store.history(instance_id)
            last_start = max(
                (i for i, e in enumerate(history) if e["EventType"] == ORCHESTRATOR_STARTED),
                default=len(history),
            )
            kept = history[:last_start]
            retries = inst.engine_state["retries"]
            rerun: list[int] = []
            drop_ids: set[int] = set()
            for e in history[last_start:]:
                etype = e["EventType"]
                if etype in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED, EXECUTION_COMPLETED):
                    continue
                if etype == TASK_FAILED:
                    rerun.append(int(e["TaskScheduledId"]))
                elif etype == TIMER_FIRED and str(e["TimerId"]) in retries:
                    # Exhausted retry: undo its last timer and re-run the last attempt.
                    timer_id = int(e["TimerId"])
                    drop_ids.add(timer_id)
                    retries.pop(str(timer_id), None)
                    failed = next(
                        (x for x in reversed(kept) if x["EventType"] == TASK_FAILED), None
                    )
                    if failed is not None:
                        rerun.append(int(failed["TaskScheduledId"]))
                        kept.remove(failed)
                else:
                    kept.append(e)
            kept = [
                e
                for e in kept
                if not (e["EventType"] == TIMER_CREATED and e["EventId"] in drop_ids)
            ]
            if drop_ids:
                inst.engine_state["seq"] = min(drop_ids)
            kept.append(_event(GENERIC, Data=f"Rewound: {reason or ''}"))
            self.store.replace_history(instance_id, [{**e, "IsPlayed": True} for e in kept])
            inst.status = "Running"
            inst.output = None
            inst.updated_at = iso(utcnow())
            scheduled = {e["EventId"]: e for e in kept if e["EventType"] == TASK_SCHEDULED}
            items: list[int] = []
            for task_id in rerun:
                sched = scheduled.get(task_id)
                if sched is not None:
                    items.append(
                        self.store.add_activity(
                            instance_id, inst.execution_id, task_id, sched["Name"], sched["Input"]
                        )
                    )
            if not rerun:
                # The orchestrator itself threw: run it again over the same history.
                self.store.send(instance_id, _event(GENERIC, Data="rewind"))
            self.store.put_instance(inst)
        for item_id in items:
            self._activity_queue.put_nowait(item_id)
        self.wake()

    def restart(self, instance_id: str, new_instance_id: bool) -> str:
        inst = self._require(instance_id)
        target = uuid.uuid4().hex if new_instance_id else instance_id
        return self.start_new(inst.name, target, inst.input)

    def purge(self, instance_id: str) -> int:
        with self.store.tx():
            if self.store.get_instance(instance_id) is None:
                return 0
            self.store.delete_instance(instance_id)
        return 1

    def purge_many(self, instances: list[Instance]) -> int:
        with self.store.tx():
            for inst in instances:
                self.store.delete_instance(inst.instance_id)
        return len(instances)

    # --- activities --------------------------------------------------------------------

    async def _activity_worker(self) -> None:
        while not self._stopping:
            item_id = await self._activity_queue.get()
            item = self.store.get_activity(item_id)
            if item is None:
                continue  # terminated, purged or already done
            info = self.functions.get(item.name)
            invocation_id = new_invocation_id()
            with logs.invocation(item.name, "(null)", invocation_id) as outcome:
                try:
                    if info is None or info.kind != "activity":
                        raise LookupError(
                            f"The function '{item.name}' doesn't exist, is disabled, or is "
                            "not an activity function."
                        )
                    result = await call(
                        info,
                        activity_kwargs(info, item.input),
                        invocation_id,
                        self.app_dir,
                        self.activity_pool,
                    )
                    event = _event(
                        TASK_COMPLETED,
                        TaskScheduledId=item.task_id,
                        Result=encode_activity_result(result),
                    )
                except Exception as exc:
                    outcome["failed"] = True
                    event = _event(
                        TASK_FAILED,
                        TaskScheduledId=item.task_id,
                        Reason=f"Activity function '{item.name}' failed: {exc}",
                        Details=_user_traceback(exc),
                    )
            event["_execution"] = item.execution_id
            with self.store.tx():
                if self.store.delete_activity(item.id):
                    self.store.send(item.instance_id, event)
            self.wake()


def build_context(
    inst: Instance, history: list[dict[str, Any]], new_events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The orchestration context JSON the extension sends (OutOfProcOrchestrationShim)."""
    return {
        "history": [{**e, "IsPlayed": True} for e in history]
        + [{**e, "IsPlayed": False} for e in new_events],
        "input": inst.input,
        "instanceId": inst.instance_id,
        "isReplaying": bool(history),
        "parentInstanceId": inst.parent_id,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    }


def _user_traceback(exc: BaseException) -> str:
    """The exception's traceback without this host's own frames."""
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [
            f
            for f in te.stack
            if "localdev/host" not in f.filename and "concurrent/futures" not in f.filename
        ]
    )
    return "".join(te.format()).strip()


def _run_orchestrator(
    info: FunctionInfo, context_json: str
) -> tuple[dict[str, Any] | None, str | None]:
    """Call the orchestrator (worker thread); returns (state, error message)."""
    try:
        return json.loads(info.func(context_json)), None
    except Exception as exc:
        text = str(exc)
        if OUT_OF_PROC_MARKER in text:
            message, _, data = text.partition(OUT_OF_PROC_MARKER)
            try:
                return json.loads(data), message
            except ValueError:
                return None, message
        return None, f"{type(exc).__name__}: {exc}"
