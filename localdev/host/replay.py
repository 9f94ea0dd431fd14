"""Replay: one orchestrator episode in, history events and work items out; retries too.

Boundary: what the Durable extension and DTFx do between "a message arrived" and "the
new history is written": build the context JSON the extension sends an out-of-process
orchestrator (`build_context`), call it (`run_orchestrator`), check the actions it
returns against the history the way DurableTask.Core replays (`check_determinism`), and
turn them into history events, activity work items, timers and sub-orchestrations
(`Replayer.apply`), including DTFx's RetryInterceptor and termination. Every method runs
inside the caller's `Store.tx()`; nothing here touches the event loop or HTTP.

Task ids: the SDK numbers id-taking actions (activities, timers, sub-orchestrations) in
the order it yields them, and DTFx gives them its own sequence numbers in the same order,
with the retry interceptor taking the next numbers when an attempt fails.
`engine_state["primary_ids"]` is the list of sequence numbers the host handed to the
code's id-taking actions, in order; `engine_state["retries"]` maps every id the retry
interceptor took (attempts after the first, and the timers between them) to its policy and
to the id whose result triggered it (`after`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .loader import FunctionInfo, HostConfig
from .protocol import (
    CALL_ACTIVITY,
    CALL_ACTIVITY_RETRY,
    CALL_SUB,
    CALL_SUB_RETRY,
    CONTINUE_AS_NEW,
    CREATE_TIMER,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    EXECUTION_TERMINATED,
    ORCHESTRATION_STATUS,
    ORCHESTRATOR_COMPLETED,
    OUT_OF_PROC_MARKER,
    RESULT_EVENTS,
    SCHEDULE_EVENTS,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    TIMER_FIRED,
    WAIT_EVENT,
    flatten,
    iso,
    json_token,
    new_event,
    parse_iso,
    stored_json,
    utcnow,
)
from .store import ACTIVE, Instance, Store

# DurableOrchestrationContext.SetCustomStatus: MaxCustomStatusPayloadSizeInKB, measured
# in UTF-16 bytes (MessagePayloadDataConverter.Serialize).
MAX_CUSTOM_STATUS_KB = 16

# DTFx action classes, named in NonDeterministicOrchestrationException messages.
_ACTION_CLASS = {
    "task": "ScheduleTaskOrchestratorAction",
    "timer": "CreateTimerOrchestratorAction",
    "sub": "CreateSubOrchestrationAction",
}
_EVENT_KIND = {TASK_SCHEDULED: "task", TIMER_CREATED: "timer", SUB_CREATED: "sub"}
_CHANGED = (
    "Was a change made to the orchestrator code after this instance had already started running?"
)


def fresh_engine_state(generation: int = 0) -> dict[str, Any]:
    # generation: how many times this instance id was started (ExecutionStartedEvent.Generation).
    return {"seq": 0, "primary_ids": [], "retries": {}, "generation": generation}


@dataclass
class Episode:
    """What one episode adds, collected inside the transaction."""

    events: list[dict[str, Any]]
    activities: list[int] = field(default_factory=list)


def build_context(
    inst: Instance, history: list[dict[str, Any]], new_events: list[dict[str, Any]]
) -> dict[str, Any]:
    """The orchestration context JSON (OrchestrationTriggerAttributeBindingProvider).

    `input` is `GetInputAsJson()`: the stored input parsed once, so an input the SDK
    client sent (a JSON string holding JSON) arrives as that inner JSON text.
    """
    return {
        "history": [{**e, "IsPlayed": True} for e in history]
        + [{**e, "IsPlayed": False} for e in new_events],
        "input": json_token(inst.input),
        "instanceId": inst.instance_id,
        "isReplaying": bool(history),
        "parentInstanceId": inst.parent_id,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
        "longRunningTimerIntervalDuration": "3.00:00:00",
        "maximumShortTimerDuration": "6.00:00:00",
        "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
    }


def run_orchestrator(
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


def execution_started(inst: Instance) -> dict[str, Any]:
    parent = None
    if inst.parent_id:
        parent = {
            "Name": None,
            "OrchestrationInstance": {"InstanceId": inst.parent_id},
            "TaskScheduleId": inst.parent_task_id,
        }
    return new_event(
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
        Generation=inst.engine_state.get("generation", 0),
    )


def new_instance(
    name: str,
    instance_id: str,
    input_: str | None,
    parent: tuple[str, int] | None = None,
    generation: int = 0,
) -> Instance:
    now = iso(utcnow())
    return Instance(
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
        engine_state=fresh_engine_state(generation),
    )


def custom_status_error(custom: Any) -> str | None:
    """MessagePayloadDataConverter.Serialize's size check, with its message."""
    text = json.dumps(custom, separators=(",", ":"), ensure_ascii=False)
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb > MAX_CUSTOM_STATUS_KB:
        return (
            "The UTF-16 size of the JSON-serialized payload must not exceed "
            f"{MAX_CUSTOM_STATUS_KB:,} KB. The current payload size is {size_kb:,} KB."
        )
    return None


def _kind(action: dict[str, Any]) -> str | None:
    kind = action.get("actionType")
    if kind in (CALL_ACTIVITY, CALL_ACTIVITY_RETRY):
        return "task"
    if kind == CREATE_TIMER:
        return "timer"
    if kind in (CALL_SUB, CALL_SUB_RETRY):
        return "sub"
    return None


def primary_ids(state: dict[str, Any]) -> list[int]:
    if "primary_ids" not in state:  # state written by an older host: index -> id list
        state["primary_ids"] = [i for i in state.pop("action_ids", []) if i is not None]
    ids: list[int] = state["primary_ids"]
    return ids


def check_determinism(
    history: list[dict[str, Any]], actions: list[dict[str, Any]], state: dict[str, Any]
) -> str | None:
    """DurableTask.Core's replay checks (TaskOrchestrationContext.HandleTaskScheduledEvent,
    HandleTimerCreatedEvent, HandleSubOrchestrationCreatedEvent), with their messages.

    Every TaskScheduled / TimerCreated / SubOrchestrationInstanceCreated in history must
    match, by sequence number, what the code schedules now: same kind, same name
    (case-insensitive). A retry's later attempts and timers are expected only while the
    result that triggered them is still in history (a rewind turns failures into
    GenericEvents, so the timers around them no longer match: extension issue #617).
    """
    expected: dict[int, tuple[str, str | None]] = {}
    ids = primary_ids(state)
    k = 0
    for action in actions:
        kind = _kind(action)
        if kind is None:
            continue
        if k >= len(ids):
            break
        expected[ids[k]] = (kind, action.get("functionName"))
        k += 1
    results = {
        (e["EventType"], e.get(RESULT_EVENTS[e["EventType"]]))
        for e in history
        if e["EventType"] in RESULT_EVENTS
    }
    for key, policy in state["retries"].items():
        after = policy.get("after")
        if after is None:
            continue
        if policy["kind"] == "timer" and (TASK_FAILED, after) in results:
            expected[int(key)] = ("timer", None)
        elif policy["kind"] == "task" and (TIMER_FIRED, after) in results:
            expected[int(key)] = ("task", policy["name"])
    for e in history:
        kind = _EVENT_KIND.get(e["EventType"])
        if kind is None:
            continue
        task_id = int(e["EventId"])
        found = expected.get(task_id)
        message = _mismatch(kind, task_id, e, found)
        if message is not None:
            return "Non-Deterministic workflow detected: " + message
    return None


def _mismatch(
    kind: str, task_id: int, e: dict[str, Any], found: tuple[str, str | None] | None
) -> str | None:
    name, version = e.get("Name"), e.get("Version") or ""
    if kind == "task":
        if found is None:
            return (
                "A previous execution of this orchestration scheduled an activity task with "
                f"sequence ID {task_id} and name '{name}' (version '{version}'), but the "
                f"current replay execution hasn't (yet?) scheduled this task. {_CHANGED}"
            )
        if found[0] != "task":
            return (
                "A previous execution of this orchestration scheduled an activity task with "
                f"sequence number {task_id} named '{name}', but the current orchestration "
                f"replay instead produced a {_ACTION_CLASS[found[0]]} action with this "
                f"sequence number. {_CHANGED}"
            )
        if str(found[1] or "").lower() != str(name or "").lower():
            return (
                "A previous execution of this orchestration scheduled an activity task with "
                f"sequence number {task_id} named '{name}', but the current orchestration "
                f"replay instead scheduled an activity task named '{found[1]}' with this "
                f"sequence number.  {_CHANGED}"
            )
        return None
    if kind == "timer":
        if found is None:
            return (
                "A previous execution of this orchestration scheduled a timer task with "
                f"sequence number {task_id} but the current replay execution hasn't (yet?) "
                f"scheduled this task. {_CHANGED}"
            )
        if found[0] != "timer":
            return (
                "A previous execution of this orchestration scheduled a timer task with "
                f"sequence number {task_id} named but the current orchestration replay "
                f"instead produced a {_ACTION_CLASS[found[0]]} action with this sequence "
                f"number. {_CHANGED}"
            )
        return None
    head = (
        "A previous execution of this orchestration scheduled a sub-orchestration task with "
        f"sequence ID {task_id} and name '{name}' (version '{version}', instance ID "
        f"'{e.get('InstanceId')}'), but the current "
    )
    if found is None:
        return head + f"replay execution hasn't (yet?) scheduled this task. {_CHANGED}"
    if found[0] != "sub":
        return head + (
            f"orchestration replay instead produced a {_ACTION_CLASS[found[0]]} action at "
            f"this sequence number. {_CHANGED}"
        )
    if str(found[1] or "").lower() != str(name or "").lower():
        return head + (
            "orchestration replay instead scheduled a sub-orchestration task with name "
            f"{found[1]} at this sequence number. {_CHANGED}"
        )
    return None


class Replayer:
    """Applies one episode's outcome to an instance, inside the caller's transaction."""

    def __init__(self, store: Store, functions: dict[str, FunctionInfo], config: HostConfig):
        self.store = store
        self.functions = functions
        self.config = config

    # --- which messages an instance takes ------------------------------------------------

    def deliverable(self, inst: Instance, event: dict[str, Any], history: list[Any]) -> bool:
        """Drop results from an older generation, for closed tasks, or duplicates."""
        etype = event.get("EventType")
        if etype == EXECUTION_STARTED:
            started = event.get("OrchestrationInstance") or {}
            return bool(started.get("ExecutionId") == inst.execution_id)
        if etype == EXECUTION_TERMINATED:
            return True
        if not history:
            return False
        if "_execution" in event and event["_execution"] != inst.execution_id:
            return False
        key = RESULT_EVENTS.get(int(etype if etype is not None else -1))
        if key is None:
            return True
        task_id = event.get(key)
        scheduled = any(
            e["EventType"] in SCHEDULE_EVENTS and e["EventId"] == task_id for e in history
        )
        closed = any(
            e["EventType"] in RESULT_EVENTS and e.get(RESULT_EVENTS[e["EventType"]]) == task_id
            for e in history
        )
        return scheduled and not closed

    # --- scheduling ----------------------------------------------------------------------

    def _next_id(self, inst: Instance) -> int:
        task_id = int(inst.engine_state["seq"])
        inst.engine_state["seq"] = task_id + 1
        return task_id

    def _schedule_activity(
        self, inst: Instance, ep: Episode, task_id: int, name: str, input_: str | None
    ) -> None:
        ep.events.append(new_event(TASK_SCHEDULED, task_id, Name=name, Version="", Input=input_))
        ep.activities.append(
            self.store.add_activity(inst.instance_id, inst.execution_id, task_id, name, input_)
        )

    def _schedule_timer(
        self, inst: Instance, ep: Episode, timer_id: int, fire_at: datetime, send: bool = True
    ) -> None:
        ep.events.append(new_event(TIMER_CREATED, timer_id, FireAt=iso(fire_at)))
        if send:
            self.store.send(
                inst.instance_id,
                new_event(
                    TIMER_FIRED, TimerId=timer_id, FireAt=iso(fire_at), _execution=inst.execution_id
                ),
                visible_at=fire_at.timestamp(),
            )

    def _advance_retry(self, inst: Instance, event: dict[str, Any], ep: Episode) -> None:
        """DTFx RetryInterceptor.Invoke: after a failed attempt a timer, then the next one.

        After the final attempt it still creates a timer ("Dummy timer for back-compat")
        that fires at once, and the failure surfaces when that timer fires.
        """
        retries: dict[str, dict[str, Any]] = inst.engine_state["retries"]
        etype = event["EventType"]
        if etype == TASK_FAILED:
            failed_id = event.get("TaskScheduledId")
            policy = retries.get(str(failed_id))
            if policy and policy["kind"] == "task":
                timer_id = self._next_id(inst)
                last = policy["attempt"] >= policy["max"]
                delay = 0.0 if last else policy["interval_ms"] / 1000
                fire_at = datetime.fromtimestamp(time.time() + delay, UTC)
                self._schedule_timer(inst, ep, timer_id, fire_at)
                retries[str(timer_id)] = {**policy, "kind": "timer", "after": failed_id}
        elif etype == TIMER_FIRED:
            fired_id = event.get("TimerId")
            policy = retries.get(str(fired_id))
            if policy and policy["kind"] == "timer" and policy["attempt"] < policy["max"]:
                task_id = self._next_id(inst)
                self._schedule_activity(inst, ep, task_id, policy["name"], policy["input"])
                retries[str(task_id)] = {
                    **policy,
                    "kind": "task",
                    "attempt": policy["attempt"] + 1,
                    "after": fired_id,
                }

    # --- applying an orchestrator's result -----------------------------------------------

    def apply(
        self,
        inst: Instance,
        history: list[dict[str, Any]],
        event: dict[str, Any],
        state: dict[str, Any] | None,
        error: str | None,
        ep: Episode,
    ) -> None:
        if inst.status == "Pending":
            inst.status = "Running"
        failure: str | None = None  # a failure DTFx raises itself, without the prefix
        continue_as_new: dict[str, Any] | None = None
        if state is not None:
            actions = flatten(state.get("actions") or [])
            failure = check_determinism(history, actions, inst.engine_state)
            custom = state.get("customStatus")
            too_big = None if custom is None else custom_status_error(custom)
            if failure is None and too_big is not None:
                # SetCustomStatus throws before the shim replays the actions.
                error = too_big
            if failure is None and error is None:
                self._advance_retry(inst, event, ep)
                continue_as_new, error = self._schedule(inst, history, actions, ep)
            if too_big is None:
                inst.custom_status = None if custom is None else json.dumps(custom)
        if state is None and error is None:
            error = "The orchestrator returned no state."
        inst.updated_at = iso(utcnow())
        if failure is not None or error is not None:
            message = failure or f"Orchestrator function '{inst.name}' failed: {error}"
            ep.events.append(
                new_event(
                    EXECUTION_COMPLETED,
                    OrchestrationStatus=ORCHESTRATION_STATUS["Failed"],
                    Result=message,
                    FailureDetails={"ErrorType": "Exception", "ErrorMessage": message},
                )
            )
            self.finish(inst, "Failed", json.dumps(message), ep)
        elif continue_as_new is not None:
            self._continue_as_new(inst, continue_as_new.get("input"))
            return
        elif state is not None and state.get("isDone"):
            output = json.dumps(state.get("output"))
            ep.events.append(
                new_event(
                    EXECUTION_COMPLETED,
                    OrchestrationStatus=ORCHESTRATION_STATUS["Completed"],
                    Result=output,
                )
            )
            self.finish(inst, "Completed", output, ep)
        else:
            ep.events.append(new_event(ORCHESTRATOR_COMPLETED))
            self.store.put_instance(inst)
        self.store.append_history(inst.instance_id, ep.events)

    def _schedule(
        self,
        inst: Instance,
        history: list[dict[str, Any]],
        actions: list[dict[str, Any]],
        ep: Episode,
    ) -> tuple[dict[str, Any] | None, str | None]:
        """Schedule the actions not scheduled yet; returns (continue-as-new action, error)."""
        ids = primary_ids(inst.engine_state)
        in_history = {e["EventId"] for e in history if e["EventType"] in SCHEDULE_EVENTS}
        continue_as_new: dict[str, Any] | None = None
        error: str | None = None
        k = 0
        for action in actions:
            kind = action.get("actionType")
            if _kind(action) is None:
                if kind == CONTINUE_AS_NEW:
                    continue_as_new = action
                elif kind != WAIT_EVENT and error is None:
                    error = f"Action type {kind} is not supported by the local host."
                continue
            if k < len(ids):
                task_id = ids[k]
                k += 1
                if kind == CREATE_TIMER and action.get("isCanceled"):
                    self.store.delete_timer(inst.instance_id, task_id)
                if task_id in in_history or kind not in (CALL_ACTIVITY, CALL_ACTIVITY_RETRY):
                    continue
                # Scheduled before, but a rewind turned it into a GenericEvent: replay
                # schedules it again under the same sequence number, as DTFx does.
            else:
                task_id = self._next_id(inst)
                ids.append(task_id)
                k += 1
            if kind in (CALL_ACTIVITY, CALL_ACTIVITY_RETRY):
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
                self._start_sub_orchestration(inst, ep, task_id, action)
            else:
                fire_at = parse_iso(action["fireAt"])
                self._schedule_timer(inst, ep, task_id, fire_at, send=not action.get("isCanceled"))
        return continue_as_new, error

    def terminate(self, inst: Instance, event: dict[str, Any], ep: Episode) -> None:
        """An ExecutionTerminated message: DTFx ends the instance without running the code."""
        output = json.dumps(event.get("Input"))
        ep.events += [
            new_event(EXECUTION_TERMINATED, Input=output),
            new_event(
                EXECUTION_COMPLETED,
                OrchestrationStatus=ORCHESTRATION_STATUS["Terminated"],
                Result=output,
            ),
        ]
        self.finish(inst, "Terminated", output, ep)
        self.store.append_history(inst.instance_id, ep.events)

    def finish(self, inst: Instance, status: str, output: str | None, ep: Episode) -> None:
        if ep.events and ep.events[-1]["EventType"] != ORCHESTRATOR_COMPLETED:
            ep.events.append(new_event(ORCHESTRATOR_COMPLETED))
        inst.status = status
        inst.output = output
        inst.updated_at = iso(utcnow())
        self.store.put_instance(inst)
        # Pending timers and results are void; activities already queued still run (their
        # work items are in Azure's work-item queue) and their results are dropped.
        self.store.delete_inbox(inst.instance_id, keep_starts=True)
        if inst.parent_id is not None and inst.parent_task_id is not None:
            if status == "Completed":
                result = new_event(
                    SUB_COMPLETED, TaskScheduledId=inst.parent_task_id, Result=output
                )
            else:
                reason = json.loads(output) if output else status
                result = new_event(
                    SUB_FAILED,
                    TaskScheduledId=inst.parent_task_id,
                    Reason=f"Sub-orchestration '{inst.name}' {status.lower()}: {reason}",
                    Details=None,
                )
            self.store.send(inst.parent_id, result)

    def _continue_as_new(self, inst: Instance, new_input: str | None) -> None:
        inst.execution_id = uuid.uuid4().hex
        # ContinueAsNew(action.Input): the SDK's JSON text is serialized again.
        inst.input = None if new_input is None else stored_json(new_input)
        inst.status = "Running"
        inst.engine_state = fresh_engine_state(inst.engine_state.get("generation", 0))
        self.store.replace_history(inst.instance_id, [])
        # Results and timers of the old generation are void; raised events are kept.
        self.store.delete_messages(
            inst.instance_id, (TASK_COMPLETED, TASK_FAILED, TIMER_FIRED, SUB_COMPLETED, SUB_FAILED)
        )
        self.store.send(inst.instance_id, execution_started(inst))
        self.store.put_instance(inst)

    def _start_sub_orchestration(
        self, inst: Instance, ep: Episode, task_id: int, action: dict[str, Any]
    ) -> None:
        name = action["functionName"]
        child_id = action.get("instanceId") or uuid.uuid4().hex
        input_ = action.get("input")
        ep.events.append(
            new_event(
                SUB_CREATED, task_id, Name=name, Version="", InstanceId=child_id, Input=input_
            )
        )
        info = self.functions.get(name)
        existing = self.store.get_instance(child_id)
        reason: str | None = None
        if info is None or info.kind != "orchestrator":
            reason = f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator."
        elif existing is not None and existing.status in ACTIVE:
            reason = f"An Orchestration instance with the status {existing.status} already exists."
        if reason is not None:
            self.store.send(
                inst.instance_id,
                new_event(SUB_FAILED, TaskScheduledId=task_id, Reason=reason, Details=""),
            )
            return
        if existing is not None:
            self.store.delete_instance(child_id)
        child = new_instance(
            name,
            child_id,
            None if input_ is None else stored_json(input_),
            parent=(inst.instance_id, task_id),
        )
        self.store.put_instance(child)
        self.store.send(child_id, execution_started(child))

