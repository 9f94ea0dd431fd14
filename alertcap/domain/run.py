"""The run: what an orchestration is asked to do, what it carries between steps, and the
JSON document it answers with (`alertcap.run/1`, README). Frozen dataclasses only; they
cross Durable boundaries through `domain.wire` and never change shape in a way that would
break a run in flight (fields are only added, with defaults).

Activity-specific inputs and outputs live beside their activity (`activities/`); what is
here is shared by the orchestrator, the activities and the notification renderers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alertcap.domain.standby import Harvest
from alertcap.domain.targets import Scope
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key

RUN_SCHEMA = "alertcap.run/1"

# --- the request an orchestration runs on ---------------------------------------------


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
    # The metric that fired (metric alerts): the capture's findings are tied to it.
    metric_name: str | None = None
    metric_value: float | None = None
    threshold: float | None = None  # a dynamic threshold: its value at that evaluation
    operator: str | None = None

    def signal(self) -> dict[str, Any] | None:
        """The alert as the pcap library's findings take it (AlertSignal)."""
        if not self.metric_name and not self.fired_at:
            return None
        return {"metric": self.metric_name, "value": self.metric_value,
                "threshold": self.threshold, "operator": self.operator,
                "fired_at": self.fired_at}


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
    summary_top: int = 10
    link_ttl_hours: int = 24
    # A notification that cannot be sent is retried on durable timers: the first wait, the
    # longest wait (doubling between), and when to give up and complete without it.
    notify_first_retry_seconds: int = 60
    notify_max_retry_seconds: int = 1800
    notify_give_up_seconds: int = 86400
    # The channels beyond email configured when the run started, by name only: their URLs
    # and keys stay in app settings, out of the history (version 4).
    channels: tuple[str, ...] = ()
    # Standby VMs (alertcap.domain.standby): how far before firedDateTime the harvest
    # reaches, and whether the after-alert capture is also taken ("both") or not.
    standby_lookback_seconds: int = 600
    standby_mode: str = "both"


@dataclass(frozen=True)
class CaptureRequest(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    location: str | None = None
    alert: AlertInfo = field(default_factory=AlertInfo)
    options: CaptureOptions = field(default_factory=CaptureOptions)
    policy: RunPolicy = field(default_factory=RunPolicy)
    requested_by: str = "alert"
    status_url: str | None = None
    # Set by the starter, unique per start request: the instance's recorded input tells
    # which of two racing starts really started it (Azure Storage's create is not atomic).
    start_token: str | None = None
    # The VM keeps a standby ring (its keeper instance was live when the run started): the
    # run harvests the ring first (version 6). Decided by the starter, fixed for the run.
    standby: bool = False
    # A scale set's instances to capture (None for a VM; empty include = every instance).
    scope: Scope | None = None
    # Started by a fan-out for a big alert: a failure is notified once, in that fan-out's
    # digest, not by this run (version >= 5).
    digest_of: str | None = None


# --- what the steps find and make -----------------------------------------------------


@dataclass(frozen=True)
class Watcher(Model):
    id: str
    name: str
    resource_group: str
    subscription_id: str
    location: str


@dataclass(frozen=True)
class CaptureRef(Model):
    watcher: Watcher
    name: str
    id: str
    adopted: bool = False  # it already existed: a re-run after a crash, not a new capture
    storage_path: str | None = None
    local_path: str | None = None


@dataclass(frozen=True)
class CaptureStatus(Model):
    status: str  # NotStarted | Running | Stopped | Error | Unknown
    stop_reason: str | None = None
    errors: tuple[str, ...] = ()
    started_at: str | None = None
    storage_path: str | None = None


@dataclass(frozen=True)
class EvidenceSlice(Model):
    """A small pcap holding only one finding's or conversation's packets."""

    name: str
    url: str
    link: str | None = None
    packets: int = 0
    size_bytes: int = 0
    truncated: bool = False  # more packets matched than a slice keeps


@dataclass(frozen=True)
class InstanceSummary(Model):
    """One scale-set instance's file (Network Watcher writes one per captured instance)."""

    instance_id: str
    blob_url: str
    link: str | None = None
    size_bytes: int | None = None
    summary: dict[str, Any] | None = None


@dataclass(frozen=True)
class CaptureSummary(Model):
    blob_url: str
    link: str | None = None
    link_expires: str | None = None
    size_bytes: int | None = None
    summary: dict[str, Any] | None = None  # a scale set: every instance's traffic together
    warnings: tuple[str, ...] = ()
    slices: tuple[EvidenceSlice, ...] = ()
    instances: tuple[InstanceSummary, ...] = ()  # a scale set: one per captured instance


@dataclass(frozen=True)
class Notification(Model):
    message_id: str
    recipients: tuple[str, ...]
    status: str  # the service's final status ("Succeeded"), "undelivered" or "skipped: ..."
    attempts: int = 1
    error: str | None = None  # the last attempt's error, when undelivered


@dataclass(frozen=True)
class ChannelStatus(Model):
    """One channel's delivery of a run (version 4): each retried and given up on its own."""

    channel: str  # teams | slack | pagerduty | webhook
    status: str  # "delivered" | "undelivered" | "skipped: ..."
    attempts: int = 1
    error: str | None = None  # the last attempt's error, when undelivered
    http_status: int | None = None


# --- orchestration state and output ---------------------------------------------------


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


# The orchestrator's behaviour version. A change that would schedule different tasks for
# a history already recorded (an activity inserted, removed or reordered before the point a
# run in flight has reached) must be gated on `RunInput.version`, and this number raised:
# runs in flight replay with the version they started with (missing = 1), new starts get
# this one. Appending steps after every recorded point (at the very end) needs no gate.
# See tests/e2e/test_versioning.py.
CURRENT_VERSION = 6  # 6: a standby VM's ring is harvested first


@dataclass(frozen=True)
class RunInput(Model):
    request: CaptureRequest
    monitor: Monitor | None = None
    version: int = 1
    harvest: Harvest | None = None  # carried across continue_as_new


@dataclass(frozen=True)
class RunResult(Model):
    """The orchestration output: a JSON document scripts can rely on (see README)."""

    instance_id: str
    vm: VmRef = field(metadata=json_key("vm_id"))
    outcome: str = "failed"  # "captured" | "failed"
    requested_by: str = "alert"
    alert: AlertInfo = field(default_factory=AlertInfo)
    started_at: str = ""
    finished_at: str = ""
    schema: str = RUN_SCHEMA
    reason: str | None = None
    error: dict[str, Any] | None = None
    watcher: Watcher | None = None
    capture: CaptureRef | None = None
    capture_status: CaptureStatus | None = None
    stopped_by: str | None = None  # "network-watcher" | "operator" | "deadline" | "failure"
    polls: int = 0
    status_url: str | None = None  # without its key: append code=<system key> to use it
    summary: CaptureSummary | None = None
    notification: Notification | None = None
    warnings: tuple[str, ...] = ()
    record: str | None = None  # where the run record is kept (it outlives the instance)
    channels: tuple[ChannelStatus, ...] = ()  # every channel beyond email (version 4)
    harvest: Harvest | None = None  # a standby VM's evidence from before the alert
