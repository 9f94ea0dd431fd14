"""Frozen dataclasses for everything that crosses a Durable boundary.

Orchestration input, every activity's input and output, and the orchestration output
travel as plain JSON dicts: `to_dict()` on the way out, `from_dict()` on the way in.
`from_dict` ignores keys it does not know and fills missing ones from defaults, so a
field can be added without breaking instances already in flight (old histories replay
with the old dicts).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Self, Union

RUN_SCHEMA = "alertcap.run/1"


class Model:
    """Mixin for frozen dataclasses: plain-dict round trip, nested models included."""

    def to_dict(self) -> dict[str, Any]:
        return typing.cast(dict[str, Any], _encode(self))

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        hints = _hints(typing.cast(type, cls))
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name])
        return cls(**kwargs)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner[0], value) if len(inner) == 1 else value
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_decode(item, v) for v in value)
    if isinstance(hint, type) and issubclass(hint, Model):
        return hint.from_dict(value)
    return value


# --- the request an orchestration runs on -------------------------------------------


@dataclass(frozen=True)
class AlertInfo(Model):
    """What we keep of the alert that started a run (or of the manual request)."""

    schema: str = "manual"
    alert_id: str | None = None
    alert_rule: str | None = None
    severity: str | None = None
    condition: str = "Fired"
    fired_at: str | None = None
    description: str | None = None
    signal_type: str | None = None


@dataclass(frozen=True)
class CaptureFilter(Model):
    """One Network Watcher capture filter; values use its syntax ("80", "80-85", "80;443")."""

    protocol: str = "Any"
    local_ip: str | None = None
    remote_ip: str | None = None
    local_port: str | None = None
    remote_port: str | None = None


@dataclass(frozen=True)
class CaptureOptions(Model):
    time_limit_seconds: int = 300
    bytes_per_packet: int = 0
    total_bytes: int = 1073741824
    filters: tuple[CaptureFilter, ...] = ()
    to_storage: bool = True
    local_file_path: str | None = None


@dataclass(frozen=True)
class RunPolicy(Model):
    """How a run behaves; decided by the starter from settings, fixed for the run."""

    poll_interval_seconds: int = 15
    max_poll_interval_seconds: int = 60
    stop_grace_seconds: int = 120
    polls_per_generation: int = 40
    capture_limit: int = 10000
    install_agent: bool = False
    capture_prefix: str = "alertcap"
    storage_account_id: str | None = None
    retry_first_interval_ms: int = 5000
    retry_max_attempts: int = 5


@dataclass(frozen=True)
class CaptureRequest(Model):
    vm_id: str
    location: str | None = None
    alert: AlertInfo = field(default_factory=AlertInfo)
    options: CaptureOptions = field(default_factory=CaptureOptions)
    policy: RunPolicy = field(default_factory=RunPolicy)
    requested_by: str = "alert"
    status_url: str | None = None


# --- activity inputs and outputs ----------------------------------------------------


@dataclass(frozen=True)
class Watcher(Model):
    id: str
    name: str
    resource_group: str
    subscription_id: str
    location: str


@dataclass(frozen=True)
class ResolveWatcherInput(Model):
    vm_id: str
    location: str | None = None


@dataclass(frozen=True)
class ResolvedWatcher(Model):
    watcher: Watcher
    vm_location: str
    found_by: str  # "default-name" or "list_all"


@dataclass(frozen=True)
class EnsureAgentInput(Model):
    vm_id: str
    install: bool = False


@dataclass(frozen=True)
class AgentStatus(Model):
    extension_name: str
    type: str
    version: str | None
    installed_now: bool = False


@dataclass(frozen=True)
class ClearStaleInput(Model):
    watcher: Watcher
    name_prefix: str
    keep_name: str


@dataclass(frozen=True)
class ClearStaleResult(Model):
    deleted: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckLimitInput(Model):
    watcher: Watcher
    limit: int
    ignore_name: str | None = None


@dataclass(frozen=True)
class LimitStatus(Model):
    count: int
    limit: int


@dataclass(frozen=True)
class CreateCaptureInput(Model):
    watcher: Watcher
    vm_id: str
    name: str
    options: CaptureOptions
    storage_account_id: str | None = None


@dataclass(frozen=True)
class CaptureRef(Model):
    watcher: Watcher
    name: str
    id: str
    adopted: bool = False  # it already existed: a re-run after a crash, not a new capture
    storage_path: str | None = None
    local_path: str | None = None


@dataclass(frozen=True)
class CaptureStatusInput(Model):
    watcher: Watcher
    name: str


@dataclass(frozen=True)
class CaptureStatus(Model):
    status: str  # NotStarted | Running | Stopped | Error | Unknown
    stop_reason: str | None = None
    errors: tuple[str, ...] = ()
    started_at: str | None = None
    storage_path: str | None = None


@dataclass(frozen=True)
class SummariseInput(Model):
    storage_path: str
    top: int = 10
    link_ttl_hours: int = 24


@dataclass(frozen=True)
class CaptureSummary(Model):
    blob_url: str
    link: str | None = None
    link_expires: str | None = None
    size_bytes: int | None = None
    summary: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotifyInput(Model):
    run: dict[str, Any]  # the RunResult so far, as the orchestration will output it
    idempotency_key: str


@dataclass(frozen=True)
class Notification(Model):
    message_id: str
    recipients: tuple[str, ...]
    status: str


# --- orchestration state and output -------------------------------------------------


@dataclass(frozen=True)
class Monitor(Model):
    """The monitor loop's state, carried across continue_as_new generations."""

    watcher: Watcher
    capture: CaptureRef
    capture_created_at: str
    deadline: str
    run_started_at: str
    generation: int = 0
    polls: int = 0
    interval_seconds: float = 15.0
    last_status: str = "NotStarted"


@dataclass(frozen=True)
class RunInput(Model):
    request: CaptureRequest
    monitor: Monitor | None = None


@dataclass(frozen=True)
class RunResult(Model):
    """The orchestration output: a JSON document scripts can rely on (see README)."""

    instance_id: str
    vm_id: str
    outcome: str  # "captured" | "failed"
    requested_by: str
    alert: AlertInfo
    started_at: str
    finished_at: str
    schema: str = RUN_SCHEMA
    reason: str | None = None
    error: dict[str, Any] | None = None
    watcher: Watcher | None = None
    capture: CaptureRef | None = None
    capture_status: CaptureStatus | None = None
    stopped_by: str | None = None  # "network-watcher" | "operator" | "deadline"
    polls: int = 0
    status_url: str | None = None  # without its key: append code=<system key> to use it
    summary: CaptureSummary | None = None
    notification: Notification | None = None
    warnings: tuple[str, ...] = ()
