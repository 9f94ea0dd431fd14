"""Client commands: start, raise event, terminate, suspend, resume, rewind, restart, purge.

Boundary: what the extension's DurableClient and the Azure Storage backend do when a
client asks for something, up to the message or row they write; the worker applies the
messages later (`workers`), and `mgmt_api` maps requests and errors to HTTP. These run on
the event-loop thread. Checks, messages and their order follow DurableClient (extension
2.13) and AzureStorageOrchestrationService / AzureTableTrackingStore (DurableTask.AzureStorage
1.17), including where they are not atomic.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .loader import FunctionInfo, HostConfig
from .protocol import (
    EVENT_NAMES,
    EVENT_RAISED,
    EXECUTION_COMPLETED,
    EXECUTION_TERMINATED,
    GENERIC,
    NON_OVERRIDABLE,
    ORCHESTRATION_STATUS,
    SUB_CREATED,
    SUB_FAILED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TERMINAL,
    AlreadyExists,
    BadArgument,
    Gone,
    InvalidOperation,
    NotFound,
    UnknownOrchestrator,
    check_instance_id,
    iso,
    json_token,
    new_event,
    stored_json,
    utcnow,
)
from .replay import execution_started, new_instance
from .store import Instance, Store

# The gap between AzureStorageOrchestrationService.CreateTaskOrchestrationAsync sending
# the start message and SetNewExecutionAsync writing the Instances row (a queue write
# and a table write: tens of milliseconds in Azure).
DEFAULT_CREATE_WINDOW_S = 0.05


class ClientCommands:
    def __init__(
        self,
        store: Store,
        functions: dict[str, FunctionInfo],
        config: HostConfig,
        wake: Callable[[], None],
        create_window_s: float = DEFAULT_CREATE_WINDOW_S,
    ):
        self.store = store
        self.functions = functions
        self.config = config
        self.wake = wake
        self.create_window_s = create_window_s

    def _require(self, instance_id: str) -> Instance:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            raise NotFound(instance_id)
        return inst

    # --- start ---------------------------------------------------------------------------

    async def start_new(self, name: str, instance_id: str | None, input_: Any) -> str:
        """DurableClient.StartNewAsync over AzureStorageOrchestrationService.

        Check, send the start message, then write the instance row: two starts of one id
        inside that window both succeed; the row keeps the first writer (SetNewExecution
        swallows 409/412) and the other start message is discarded by the worker later.
        `input_` is the value the caller sent; it is stored serialized again, as the
        extension stores it.
        """
        info = self.functions.get(name)
        if info is None or info.kind != "orchestrator":
            raise UnknownOrchestrator(
                f"The function '{name}' doesn't exist, is disabled, or is not an "
                "orchestrator function. Additional info: the function app does not "
                "contain such an orchestrator."
            )
        instance_id = instance_id or uuid.uuid4().hex
        check_instance_id(instance_id)
        existing = self.store.get_instance(instance_id)
        dedupe = NON_OVERRIDABLE if self.config.overridable_states == "NonRunningStates" else ()
        if existing is not None and existing.status in dedupe:
            raise AlreadyExists(
                f"An Orchestration instance with the status {existing.status} already exists."
            )
        generation = 0 if existing is None else existing.engine_state.get("generation", 0) + 1
        inst = new_instance(
            name, instance_id, None if input_ is None else stored_json(input_),
            generation=generation,
        )
        with self.store.tx():
            self.store.send(instance_id, execution_started(inst))
        await asyncio.sleep(self.create_window_s)
        with self.store.tx():
            current = self.store.get_instance(instance_id)
            if existing is None:
                stale = current is not None  # insert: 409 Conflict, swallowed
            else:  # replace with the ETag read at the check: 412, swallowed
                stale = current is None or (current.execution_id, current.updated_at) != (
                    existing.execution_id,
                    existing.updated_at,
                )
            if not stale:
                self.store.put_instance(inst)
        self.wake()
        return instance_id

    async def restart(self, instance_id: str, new_instance_id: bool) -> str:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            raise BadArgument(f"An orchestrastion with the instanceId {instance_id} was not found.")
        target = uuid.uuid4().hex if new_instance_id else instance_id
        return await self.start_new(inst.name, target, json_token(inst.input))

    # --- messages ------------------------------------------------------------------------

    def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status in TERMINAL:
                raise Gone(instance_id)
            self.store.send(
                instance_id, new_event(EVENT_RAISED, Name=name, Input=stored_json(data))
            )
        self.wake()

    def terminate(self, instance_id: str, reason: str | None) -> None:
        """Only enqueues ExecutionTerminated: the status changes when the worker takes it."""
        with self.store.tx():
            inst = self._require(instance_id)
            if inst.status in TERMINAL:
                raise Gone(instance_id)
            self.store.send(instance_id, new_event(EXECUTION_TERMINATED, Input=reason))
        self.wake()

    def suspend(self, instance_id: str, reason: str | None) -> None:
        inst = self._require(instance_id)
        if inst.status in TERMINAL:
            raise Gone(instance_id)
        if inst.status not in ("Running", "Pending", "ContinuedAsNew"):
            raise InvalidOperation(
                f"Cannot suspend the orchestration instance {instance_id} because instance "
                f"is in the {inst.status} state."
            )
        self._set_suspended(inst, reason, suspended=True)

    def resume(self, instance_id: str, reason: str | None) -> None:
        inst = self._require(instance_id)
        if inst.status in TERMINAL:
            raise Gone(instance_id)
        if inst.status != "Suspended":
            raise InvalidOperation(
                f"Cannot resume the orchestration instance {instance_id} because instance "
                f"is in the {inst.status} state."
            )
        self._set_suspended(inst, reason, suspended=False)

    def _set_suspended(self, inst: Instance, reason: str | None, suspended: bool) -> None:
        with self.store.tx():
            history = self.store.history(inst.instance_id)
            if history:
                # Recorded between episodes; the SDK skips these event types on replay.
                etype = 19 if suspended else 20
                self.store.append_history(inst.instance_id, [new_event(etype, Reason=reason)])
            inst.status = "Suspended" if suspended else ("Running" if history else "Pending")
            inst.updated_at = iso(utcnow())
            self.store.put_instance(inst)
        self.wake()

    # --- rewind --------------------------------------------------------------------------

    def rewind(self, instance_id: str, reason: str | None) -> None:
        """AzureStorageOrchestrationService.RewindTaskOrchestrationAsync.

        AzureTableTrackingStore.RewindHistoryAsync turns every TaskFailed,
        SubOrchestrationInstanceFailed and failed ExecutionCompleted of the execution, and
        the TaskScheduled of each failed task, into GenericEvents ("Rewound: ..."), leaves
        timers alone, rewinds failed sub-orchestrations the same way, sets the status to
        Pending and sends a GenericEvent to each deepest failed instance. Replay then
        schedules the failed activities again; retry timers around them no longer match
        the code (extension issue #617) and the instance fails as non-deterministic.
        """
        inst = self._require(instance_id)
        if inst.status in ("Completed", "Terminated", "Canceled"):
            raise Gone(instance_id)
        if inst.status != "Failed":
            raise InvalidOperation(
                "The rewind operation is only supported on failed orchestration instances."
            )
        leaves: list[str] = []
        with self.store.tx():
            self._rewind_history(instance_id, leaves)
            for leaf in leaves:
                self.store.send(leaf, new_event(GENERIC, Data=reason))
        self.wake()

    def _rewind_history(self, instance_id: str, leaves: list[str]) -> None:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            return
        history = self.store.history(instance_id)
        failed_tasks = {e.get("TaskScheduledId") for e in history if e["EventType"] == TASK_FAILED}
        subs = {e["EventId"]: e.get("InstanceId") for e in history if e["EventType"] == SUB_CREATED}
        has_failed_subs = False
        rewound: list[dict[str, Any]] = []
        for e in history:
            etype = e["EventType"]
            failed_end = (
                etype == EXECUTION_COMPLETED
                and e.get("OrchestrationStatus") == ORCHESTRATION_STATUS["Failed"]
            )
            if etype == SUB_FAILED:
                has_failed_subs = True
                child = subs.get(e.get("TaskScheduledId"))
                if child:
                    self._rewind_history(str(child), leaves)
            if (
                etype in (TASK_FAILED, SUB_FAILED)
                or failed_end
                or (etype == TASK_SCHEDULED and e["EventId"] in failed_tasks)
            ):
                e = {**e, "EventType": GENERIC, "Reason": f"Rewound: {EVENT_NAMES[etype]}"}
            rewound.append(e)
        self.store.replace_history(instance_id, rewound)
        # UpdateStatusForRewindAsync merges only RuntimeStatus and LastUpdatedTime.
        inst.status = "Pending"
        inst.updated_at = iso(utcnow())
        self.store.put_instance(inst)
        if not has_failed_subs:
            leaves.append(instance_id)

    # --- purge ---------------------------------------------------------------------------

    def purge(self, instance_id: str) -> int:
        with self.store.tx():
            if self.store.get_instance(instance_id) is None:
                return 0
            self.store.delete_instance(instance_id)
        return 1

    def purge_by_filter(
        self, created_from: datetime, created_to: datetime, statuses: list[str]
    ) -> int:
        """AzureTableTrackingStore.PurgeInstanceHistoryAsync(from, to, statuses).

        Only terminal statuses survive the status filter; when none is left (or none was
        given) there is no status filter at all, so running instances in the time window
        are purged too.
        """
        terminal = [s for s in statuses if s in TERMINAL]
        with self.store.tx():
            instances = self.store.query_instances(
                statuses=terminal or None,
                created_from=iso(created_from),
                created_to=iso(created_to),
            )
            for inst in instances:
                self.store.delete_instance(inst.instance_id)
        return len(instances)
