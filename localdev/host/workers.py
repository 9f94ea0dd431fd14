"""Workers: the orchestration dispatcher and the activity workers, on the event loop.

Boundary: when things run. The dispatcher picks instances with a visible inbox message
(at most `maxConcurrentOrchestratorFunctions` at once) and runs one *episode* per
message: the history so far (IsPlayed=true) plus [OrchestratorStarted, message], the
orchestrator called on a thread pool, and `replay.Replayer` writing the outcome in one
`Store.tx()`. Activity workers (`maxConcurrentActivityFunctions`) run queued work items
under host.json's `functionTimeout` and send TaskCompleted/TaskFailed back. `Engine`
owns both, plus the `client.ClientCommands` the HTTP layer calls.

One message per episode keeps task ids in step with the SDK: the SDK numbers tasks in
the order it meets them, and a retry's timer or re-run takes the next number while the
failure is replayed, so a batch of several messages could interleave those numbers with
new tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import logs
from .client import DEFAULT_CREATE_WINDOW_S, ClientCommands
from .loader import (
    FunctionInfo,
    HostConfig,
    activity_kwargs,
    call,
    encode_activity_result,
    new_invocation_id,
)
from .protocol import (
    EXECUTION_STARTED,
    EXECUTION_TERMINATED,
    ORCHESTRATOR_STARTED,
    TASK_COMPLETED,
    TASK_FAILED,
    new_event,
)
from .replay import Episode, Replayer, build_context, run_orchestrator
from .store import ACTIVE, Instance, Message, Store

# OrchestrationSessionManager: a start message that does not match the Instances row is
# deferred, and discarded once it has been dequeued this many times.
MAX_START_DEQUEUES = 10
START_DEFER_S = 0.2


def _create_window() -> float:
    # A host setting so tests can widen the race window; Azure's is a storage round trip.
    text = os.environ.get("LOCALDEV_HOST_CREATE_WINDOW_MS", "")
    try:
        return max(0.0, float(text) / 1000) if text else DEFAULT_CREATE_WINDOW_S
    except ValueError:
        return DEFAULT_CREATE_WINDOW_S


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
        self.replayer = Replayer(store, functions, config)
        self.client = ClientCommands(store, functions, config, self.wake, _create_window())
        self._wake = asyncio.Event()
        self._running: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._activity_queue: asyncio.Queue[int] = asyncio.Queue()
        self._orch_pool = ThreadPoolExecutor(config.max_orchestrators, "orchestrator")
        self.activity_pool = ThreadPoolExecutor(config.max_activities, "activity")
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------

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

    # --- dispatcher ----------------------------------------------------------------------

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

    def _stale_start(self, inst: Instance, msg: Message) -> bool:
        """A start message that does not match the row: defer it, or discard it.

        OrchestrationSessionManager: discard when it was sent after the row was written
        for the same generation (a start that lost the race), or after 10 dequeues;
        otherwise defer it (the row may not be written yet).
        """
        event = msg.event
        dequeues = int(event.get("_dequeues", 0)) + 1
        same_generation = event.get("Generation", 0) == inst.engine_state.get("generation", 0)
        if (same_generation and event["Timestamp"] > inst.updated_at) or (
            dequeues >= MAX_START_DEQUEUES
        ):
            logs.log.warning(
                "Discarding a start message for %s: the instance was started by another "
                "request (execution %s)",
                inst.instance_id,
                inst.execution_id,
            )
            return True
        with self.store.tx():
            self.store.defer_message(
                msg.id, {**event, "_dequeues": dequeues}, time.time() + START_DEFER_S
            )
        return False

    async def _run_episode(self, instance_id: str) -> None:
        store = self.store
        inst = store.get_instance(instance_id)
        if inst is None:
            return
        msg = store.first_message(
            instance_id, time.time(), only_terminate=inst.status == "Suspended"
        )
        if msg is None:
            return
        etype = msg.event.get("EventType")
        if etype == EXECUTION_STARTED and not self.replayer.deliverable(inst, msg.event, []):
            if self._stale_start(inst, msg):
                with store.tx():
                    store.delete_message(msg.id)
            return
        history = [] if etype == EXECUTION_STARTED else store.history(instance_id)
        if inst.status not in ACTIVE or not self.replayer.deliverable(inst, msg.event, history):
            with store.tx():
                store.delete_message(msg.id)
            return
        event = {k: v for k, v in msg.event.items() if not k.startswith("_")}
        event["IsPlayed"] = False
        started = new_event(ORCHESTRATOR_STARTED)
        ep = Episode(events=[started, event])
        if etype == EXECUTION_TERMINATED:
            with store.tx():
                store.delete_message(msg.id)
                self.replayer.terminate(inst, event, Episode(events=[started]))
            return
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
                    self._orch_pool, run_orchestrator, info, json.dumps(context)
                )
            outcome["failed"] = error is not None
        with store.tx():
            current = store.get_instance(instance_id)
            store.delete_message(msg.id)
            # Terminated, purged, replaced or continued-as-new while the code ran: drop.
            if (
                current is None
                or current.status not in ACTIVE
                or current.execution_id != inst.execution_id
            ):
                return
            if etype == EXECUTION_STARTED:
                # A new execution overwrites whatever history the id had (a replaced
                # instance or an older run).
                store.replace_history(instance_id, [])
            self.replayer.apply(current, history, event, state, error, ep)
        for item_id in ep.activities:
            self._activity_queue.put_nowait(item_id)

    # --- activities ----------------------------------------------------------------------

    async def _activity_worker(self) -> None:
        timeout = self.config.function_timeout_s
        while not self._stopping:
            item_id = await self._activity_queue.get()
            item = self.store.get_activity(item_id)
            if item is None:
                continue  # purged or already done
            info = self.functions.get(item.name)
            invocation_id = new_invocation_id()
            with logs.invocation(item.name, "(null)", invocation_id) as outcome:
                try:
                    if info is None or info.kind != "activity":
                        raise LookupError(
                            f"The function '{item.name}' doesn't exist, is disabled, or is "
                            "not an activity function."
                        )
                    run = call(
                        info,
                        activity_kwargs(info, item.input),
                        invocation_id,
                        self.app_dir,
                        self.activity_pool,
                    )
                    try:
                        result = await asyncio.wait_for(run, timeout)
                    except TimeoutError:
                        # FunctionTimeoutException (WebJobs FunctionExecutor); a sync
                        # function's thread cannot be stopped and runs on unobserved.
                        raise _FunctionTimeout(
                            f"Timeout value of {self.config.function_timeout_text} was "
                            f"exceeded by function: Functions.{item.name}"
                        ) from None
                    event = new_event(
                        TASK_COMPLETED,
                        TaskScheduledId=item.task_id,
                        Result=encode_activity_result(result),
                    )
                except Exception as exc:
                    outcome["failed"] = True
                    # TaskActivityShim: "Activity function '<name>' failed: <message>".
                    event = new_event(
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


class _FunctionTimeout(Exception):
    pass


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
