"""The Durable Task vocabulary this host speaks: codes, statuses, errors, ids and times.

Boundary: constants and small pure functions shared by replay, client commands, workers
and the HTTP management API; no I/O and no state. Event and action codes are the
azure-functions-durable SDK's own enums (`HistoryEventType`, `ActionType`), so the host
and the SDK cannot disagree on a number; DTFx's `OrchestrationStatus` numbers (stored in
ExecutionCompleted) and the extension's messages are not in the SDK and live here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType
from azure.durable_functions.models.OrchestrationRuntimeStatus import (
    OrchestrationRuntimeStatus,
)

# History EventType codes (DurableTask.Core.History.EventType = the SDK's HistoryEventType).
EXECUTION_STARTED = int(HistoryEventType.EXECUTION_STARTED)
EXECUTION_COMPLETED = int(HistoryEventType.EXECUTION_COMPLETED)
EXECUTION_TERMINATED = int(HistoryEventType.EXECUTION_TERMINATED)
TASK_SCHEDULED = int(HistoryEventType.TASK_SCHEDULED)
TASK_COMPLETED = int(HistoryEventType.TASK_COMPLETED)
TASK_FAILED = int(HistoryEventType.TASK_FAILED)
SUB_CREATED = int(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED)
SUB_COMPLETED = int(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED)
SUB_FAILED = int(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED)
TIMER_CREATED = int(HistoryEventType.TIMER_CREATED)
TIMER_FIRED = int(HistoryEventType.TIMER_FIRED)
ORCHESTRATOR_STARTED = int(HistoryEventType.ORCHESTRATOR_STARTED)
ORCHESTRATOR_COMPLETED = int(HistoryEventType.ORCHESTRATOR_COMPLETED)
EVENT_RAISED = int(HistoryEventType.EVENT_RAISED)
GENERIC = int(HistoryEventType.GENERIC_EVENT)
EXECUTION_SUSPENDED = int(HistoryEventType.EXECUTION_SUSPENDED)
EXECUTION_RESUMED = int(HistoryEventType.EXECUTION_RESUMED)

# The names the extension's status API prints (EventType.ToString(): "GenericEvent", ...).
EVENT_NAMES = {
    int(e): "".join(part.capitalize() for part in e.name.split("_")) for e in HistoryEventType
}

# Out-of-proc ActionType codes (the SDK's ActionType).
CALL_ACTIVITY = int(ActionType.CALL_ACTIVITY)
CALL_ACTIVITY_RETRY = int(ActionType.CALL_ACTIVITY_WITH_RETRY)
CALL_SUB = int(ActionType.CALL_SUB_ORCHESTRATOR)
CALL_SUB_RETRY = int(ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY)
CONTINUE_AS_NEW = int(ActionType.CONTINUE_AS_NEW)
CREATE_TIMER = int(ActionType.CREATE_TIMER)
WAIT_EVENT = int(ActionType.WAIT_FOR_EXTERNAL_EVENT)
WHEN_ANY = int(ActionType.WHEN_ANY)
WHEN_ALL = int(ActionType.WHEN_ALL)

# DurableTask.Core.OrchestrationStatus numbers, as stored in ExecutionCompleted; the
# names are the SDK's OrchestrationRuntimeStatus values.
_S = OrchestrationRuntimeStatus
ORCHESTRATION_STATUS = {
    _S.Running.value: 0,
    _S.Completed.value: 1,
    _S.ContinuedAsNew.value: 2,
    _S.Failed.value: 3,
    _S.Canceled.value: 4,
    _S.Terminated.value: 5,
    _S.Pending.value: 6,
    _S.Suspended.value: 7,
}
STATUS_NAMES = {v: k for k, v in ORCHESTRATION_STATUS.items()}
# DurableClient.IsOrchestrationRunning / IsCompletedStatus (HttpApiHandler).
RUNNING_LIKE = ("Running", "Pending", "ContinuedAsNew", "Suspended")
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
# OverridableStatesExtensions.NonRunning: what NonRunningStates refuses to replace.
NON_OVERRIDABLE = ("Running", "ContinuedAsNew", "Pending", "Suspended")

OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"
RESULT_EVENTS = {
    TASK_COMPLETED: "TaskScheduledId",
    TASK_FAILED: "TaskScheduledId",
    TIMER_FIRED: "TimerId",
    SUB_COMPLETED: "TaskScheduledId",
    SUB_FAILED: "TaskScheduledId",
}
SCHEDULE_EVENTS = (TASK_SCHEDULED, TIMER_CREATED, SUB_CREATED)


# --- errors, each with the .NET exception the extension would surface -------------------


class HostError(Exception):
    """An error the management API renders as the extension does (HttpError JSON)."""

    dotnet_type = "System.Exception"


class NotFound(HostError):
    pass


class Gone(HostError):
    """The instance is in a state the operation does not apply to (HTTP 410)."""


class InvalidOperation(HostError):
    """DurableClient's InvalidOperationException: the API answers 500."""

    dotnet_type = "System.InvalidOperationException"


class AlreadyExists(HostError):
    """DTFx's OrchestrationAlreadyExistsException: the API answers 500."""

    dotnet_type = "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException"


class BadArgument(HostError, ValueError):
    """An ArgumentException: the API answers 400."""

    dotnet_type = "System.ArgumentException"


class UnknownOrchestrator(BadArgument):
    pass


class InvalidInstanceId(BadArgument):
    pass


MAX_INSTANCE_ID_LENGTH = 256


def check_instance_id(instance_id: str) -> None:
    """DurableClient.StartNewAsync's rules, with its messages.

    The '@' and character checks call `new ArgumentException(nameof(instanceId), "...")`,
    i.e. message and parameter name swapped, so .NET prints them as below.
    """
    if instance_id.startswith("@"):
        raise InvalidInstanceId(
            "instanceId (Parameter 'Orchestration instance ids must not start with @.')"
        )
    if any(c in "/\\?#" or ord(c) < 32 or 127 <= ord(c) < 160 for c in instance_id):
        raise InvalidInstanceId(
            "instanceId (Parameter 'Orchestration instance ids must not contain /, \\, #, ?, "
            "or control characters.')"
        )
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInstanceId(
            f"Instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters."
        )


# --- times -------------------------------------------------------------------------------


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


_DOTNET_FORMATS = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
    "%d %b %Y %H:%M:%S",
    "%d %b %Y",
    "%b %d, %Y %H:%M:%S",
    "%b %d, %Y",
    "%d %B %Y",
    "%B %d, %Y",
    "%a, %d %b %Y %H:%M:%S GMT",
)
_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_dotnet_datetime(text: str | None) -> datetime | None:
    """`DateTime.TryParse` under the invariant culture (what the Functions host runs with).

    Covers the forms it accepts that people type: ISO 8601 with or without time, zone
    and 'T'; US `MM/dd/yyyy [time]`; `d MMM yyyy`, `MMM d, yyyy`; RFC 1123. A value with
    a zone is converted to local time, which is UTC on Azure; one without is taken as
    UTC, as the Azure Storage query then compares it. None when .NET would say no.
    """
    if text is None:
        return None
    value = text.strip()
    if not value:
        return None
    iso_value = _FRACTION.sub(r"\1", value.replace("z", "Z"))
    try:
        parsed = datetime.fromisoformat(iso_value)
    except ValueError:
        parsed = None
        for fmt in _DOTNET_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- events and actions ------------------------------------------------------------------


def new_event(event_type: int, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {
        "EventType": event_type,
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": iso(utcnow()),
        **fields,
    }


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


def stored_json(value: Any) -> str:
    """How the extension serializes a payload it stores (MessagePayloadDataConverter)."""
    return json.dumps(value)


def json_token(text: str | None) -> Any:
    """Stored JSON text back to a value (JToken.Parse); raw text when it is not JSON."""
    if text is None:
        return None
    value = text.strip()
    if not value:
        return ""
    try:
        return json.loads(value)
    except ValueError:
        return value
