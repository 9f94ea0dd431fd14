"""The orchestrator generator, stepped through its paths with scripted activities."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from activities.network import (
    AgentStatus,
    ClearStaleResult,
    Deleted,
    LimitStatus,
    ResolvedWatcher,
    check_limit,
    clear_stale_capture,
    create_capture,
    delete_capture,
    ensure_agent,
    get_capture_status,
    resolve_watcher,
    stop_capture,
)
from activities.notify import send as notify
from activities.preflight import Preflight, preflight
from activities.records import RecordRef, save_run
from activities.summary import summarise_capture
from alertcap.domain.run import (
    CURRENT_VERSION,
    AlertInfo,
    CaptureOptions,
    CaptureRef,
    CaptureRequest,
    CaptureStatus,
    CaptureSummary,
    Notification,
    RunInput,
    RunPolicy,
    Watcher,
)
from alertcap.domain.vm import VmRef
from alertcap.errors import AgentMissing, NotificationFailed
from orchestrators.capture import capture_run
from tests.app.orchestration_harness import ActivityFailed, FakeContext, drive, ok

VM = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/vm1"
WATCHER = Watcher(id="/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_eastus",
                  name="NetworkWatcher_eastus", resource_group="NetworkWatcherRG",
                  subscription_id="00000000-0000-0000-0000-000000000000", location="eastus")
BLOB = "https://acct.blob.core.windows.net/network-watcher-logs/x.cap"


def request(time_limit: int = 60, version: int = CURRENT_VERSION, **policy: Any
            ) -> dict[str, Any]:
    req = CaptureRequest(
        vm=VmRef.parse(VM), location="eastus",
        alert=AlertInfo(schema="common", alert_rule="vm1-network-out", fired_at="2026-11-24T01:59:00Z"),
        options=CaptureOptions(time_limit_seconds=time_limit),
        policy=RunPolicy(**{"poll_interval_seconds": 10, "max_poll_interval_seconds": 30,
                            "stop_grace_seconds": 30, "storage_account_id": "/sa", **policy}),
        status_url="http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/x")
    return RunInput(req, version=version).to_dict()


class Scenario:
    """Activity handlers with a scripted sequence of capture statuses."""

    def __init__(self, statuses: list[str], stop_reason: str = "TimeExceeded") -> None:
        self.statuses: Iterator[str] = iter(statuses)
        self.last = "NotStarted"
        self.stop_reason = stop_reason
        self.emails: list[dict[str, Any]] = []
        self.handlers: dict[str, Any] = {
            # A VM without a standby ring (the standby cases: tests/app/test_standby*.py).
            "harvest_standby_ring": lambda p: {"value": {"standby": False}},
            resolve_watcher.name: lambda p: ok(ResolvedWatcher(WATCHER, "eastus", "default-name")),
            ensure_agent.name: lambda p: ok(AgentStatus("AzureNetworkWatcherExtension",
                                                         "NetworkWatcherAgentLinux", "1.4")),
            clear_stale_capture.name: lambda p: ok(ClearStaleResult(())),
            check_limit.name: lambda p: ok(LimitStatus(3, 10000)),
            create_capture.name: lambda p: ok(CaptureRef(WATCHER, p["name"], "/pc/" + p["name"])),
            get_capture_status.name: self.status,
            stop_capture.name: self.stop,
            summarise_capture.name: lambda p: ok(CaptureSummary(
                blob_url=p["storage_path"], summary={"packets": 1234})),
            notify.name: self.notify,
            save_run.name: lambda p: ok(RecordRef(f"{p['instance_id']}/x.json")),
            delete_capture.name: lambda p: ok(Deleted(p["name"], True)),
            preflight.name: lambda p: ok(Preflight(WATCHER, "eastus", "cache", AgentStatus(
                "AzureNetworkWatcherExtension", "NetworkWatcherAgentLinux", "1.4"),
                count=3, limit=p["limit"])),
        }

    def status(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.last = next(self.statuses, self.last)
        terminal = self.last in ("Stopped", "Error")
        return ok(CaptureStatus(
            self.last, stop_reason=self.stop_reason if self.last == "Stopped" else None,
            errors=("CaptureFailed",) if self.last == "Error" else (),
            storage_path=BLOB if terminal else None))

    def stop(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.last = "Stopped"
        return ok(CaptureStatus("Stopped", stop_reason="ManuallyStopped", storage_path=BLOB))

    def notify(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.emails.append(payload)
        return ok(Notification("msg-1", ("oncall@example.com",), "Succeeded"))


def run(scenario: Scenario, ctx_input: dict[str, Any] | None = None, **ctx_args: Any
        ) -> tuple[FakeContext, Any]:
    ctx = FakeContext(ctx_input or request(), scenario.handlers, **ctx_args)
    return ctx, drive(ctx, capture_run(ctx))


def called(ctx: FakeContext) -> list[str]:
    return [name for name, _ in ctx.calls]


def test_success_chains_every_step_and_reports_the_capture() -> None:
    scenario = Scenario(["NotStarted", "Running", "Running", "Stopped"])
    ctx, out = run(scenario, request(version=2))  # the setup before version 3
    assert called(ctx)[:5] == [resolve_watcher.name, ensure_agent.name,
                               clear_stale_capture.name, check_limit.name, create_capture.name]
    assert called(ctx)[-3:] == [summarise_capture.name, notify.name, save_run.name]
    assert stop_capture.name not in called(ctx)
    assert out["schema"] == "alertcap.run/1"
    assert out["outcome"] == "captured"
    assert out["reason"] == "TimeExceeded"
    assert out["stopped_by"] == "network-watcher"
    assert out["capture"]["name"].startswith("alertcap-vm1-")
    assert out["capture"]["name"].endswith("-20261124020000000")
    assert out["summary"]["summary"]["packets"] == 1234
    assert out["notification"]["message_id"] == "msg-1"
    assert out["notification"]["attempts"] == 1
    assert out["record"] == f"{ctx.instance_id}/x.json"  # kept beyond the instance
    assert out["polls"] == 4
    # The operator saw the capture progress in the custom status.
    capturing = [s for s in ctx.statuses if s["phase"] == "capturing"]
    assert [s["captureStatus"] for s in capturing] == ["NotStarted", "Running", "Running", "Stopped"]
    assert capturing[-1]["elapsedSeconds"] > capturing[0]["elapsedSeconds"]
    assert ctx.statuses[-1]["phase"] == "done"
    # The email got the whole result, and its idempotency key is stable for the run.
    assert scenario.emails[0]["run"]["outcome"] == "captured"
    assert scenario.emails[0]["idempotency_key"] == f"{ctx.instance_id}/2026-11-24T02:00:00.000000Z"


def test_clear_stale_only_targets_this_vms_prefix_and_keeps_the_new_name() -> None:
    ctx, _ = run(Scenario(["Stopped"]), request(version=2))
    clear = dict(ctx.calls)[clear_stale_capture.name]
    create = dict(ctx.calls)[create_capture.name]
    assert create["name"].startswith(clear["name_prefix"])
    assert clear["keep_name"] == create["name"]
    assert dict(ctx.calls)[check_limit.name]["limit"] == 10000


def test_poll_interval_grows_to_the_maximum() -> None:
    ctx, _ = run(Scenario(["Running"] * 6 + ["Stopped"]), request(time_limit=600))
    gaps = [(t.fire_at - prev).total_seconds() for t, prev in
            zip(ctx.timers, [datetime(2026, 11, 24, 2, 0, 5)] + [t.fire_at for t in ctx.timers],
                strict=False)]
    assert gaps[1] < gaps[-1]
    assert max(gaps) <= 31


def test_capture_error_is_notified_as_a_failure_naming_the_cause() -> None:
    scenario = Scenario(["Running", "Error"])
    ctx, out = run(scenario)
    assert out["outcome"] == "failed"
    assert "CaptureFailed" in out["reason"]
    assert out["error"]["type"] == "CaptureFailed"
    assert summarise_capture.name not in called(ctx)
    assert called(ctx)[-2:] == [notify.name, save_run.name]
    assert scenario.emails[0]["run"]["outcome"] == "failed"


def test_deadline_stops_the_capture() -> None:
    # Network Watcher never stops it: after time limit + grace we do.
    scenario = Scenario(["Running"] * 1000)
    ctx, out = run(scenario, request(time_limit=60, stop_grace_seconds=30,
                                     polls_per_generation=1000))
    assert stop_capture.name in called(ctx)
    assert out["stopped_by"] == "deadline"
    assert out["outcome"] == "captured"
    created = datetime(2026, 11, 24, 2, 0, 5)
    assert (ctx.now - created).total_seconds() >= 90
    assert all(t.fire_at <= datetime(2026, 11, 24, 2, 1, 35) for t in ctx.timers)


def test_stop_event_ends_the_capture_early() -> None:
    scenario = Scenario(["Running"] * 100)
    ctx, out = run(scenario, request(time_limit=3600),
                   stop_at=datetime(2026, 11, 24, 2, 0, 40))
    assert out["stopped_by"] == "operator"
    assert out["reason"] == "ManuallyStopped"
    assert called(ctx).count(stop_capture.name) == 1
    assert any(t.cancelled for t in ctx.timers)
    assert ctx.now < datetime(2026, 11, 24, 2, 2, 0)


def test_permanent_error_fails_fast_and_is_notified() -> None:
    scenario = Scenario(["Running"])
    scenario.handlers[ensure_agent.name] = lambda p: {"error": AgentMissing(
        "the Network Watcher agent is not installed on vm1").to_dict()}
    ctx, out = run(scenario, request(version=2))
    assert called(ctx) == [resolve_watcher.name, ensure_agent.name, notify.name, save_run.name]
    assert out["outcome"] == "failed"
    assert out["error"]["type"] == "AgentMissing"
    assert "not installed on vm1" in out["reason"]
    assert scenario.emails[0]["run"]["error"]["code"] == "AgentMissing"


def test_activity_failure_after_retries_stops_the_running_capture_and_notifies() -> None:
    scenario = Scenario(["Running"])
    polls = {"n": 0}

    def flaky(payload: dict[str, Any]) -> dict[str, Any]:
        polls["n"] += 1
        if polls["n"] > 2:
            raise ActivityFailed("Activity function 'get_capture_status' failed: 503")
        return scenario.status(payload)

    scenario.handlers[get_capture_status.name] = flaky
    ctx, out = run(scenario, request(time_limit=600))
    assert out["outcome"] == "failed"
    assert "get_capture_status" in out["reason"]
    assert called(ctx)[-3:] == [stop_capture.name, notify.name, save_run.name]
    assert out["stopped_by"] == "failure"


def _email_outage(scenario: Scenario, failures: list[Exception]) -> None:
    """The first len(failures) attempts fail as given; then the email goes out."""
    outcomes = iter(failures)

    def send(payload: dict[str, Any]) -> dict[str, Any]:
        failure = next(outcomes, None)
        if failure is None:
            return scenario.notify(payload)
        scenario.emails.append({**payload, "failed": True})
        if isinstance(failure, NotificationFailed):
            return {"error": failure.to_dict()}
        raise failure

    scenario.handlers[notify.name] = send


def test_an_email_outage_is_retried_on_durable_timers_and_the_run_completes() -> None:
    scenario = Scenario(["Stopped"])
    down = ActivityFailed("Activity function 'notify' failed: email service 503")
    _email_outage(scenario, [down, down, down])
    ctx, out = run(scenario, request(notify_first_retry_seconds=60,
                                     notify_max_retry_seconds=150))
    assert out["notification"]["status"] == "Succeeded"
    assert out["notification"]["attempts"] == 4
    waits = [s for s in ctx.statuses if s["phase"] == "notifying" and s.get("notifyAttempts")]
    assert [s["notifyAttempts"] for s in waits] == [1, 2, 3]
    assert all(s["phase"] == "notifying" and "503" in s["lastError"] for s in waits)
    # 60 s, then doubling, capped at 150 s: 60, 120, 150.
    sleeps = [t.fire_at for t in ctx.timers][-3:]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sleeps)]
    assert [round(g) for g in gaps] == [121, 151]  # each attempt also takes its 1 s
    # The service may have taken a send that failed in transit: the same operation each
    # time, so it is never sent twice.
    assert len({e["idempotency_key"] for e in scenario.emails}) == 1
    assert called(ctx)[-1] == save_run.name


def test_after_an_operation_that_definitely_failed_the_next_attempt_is_a_new_one() -> None:
    scenario = Scenario(["Stopped"])
    _email_outage(scenario, [NotificationFailed("the email service ended the send as Failed")])
    _, out = run(scenario)
    keys = [e["idempotency_key"] for e in scenario.emails]
    assert len(keys) == 2 and keys[0] != keys[1] and keys[1].startswith(keys[0])
    assert out["notification"]["status"] == "Succeeded"


def test_a_notification_that_never_goes_out_leaves_a_completed_run_marked_undelivered() -> None:
    scenario = Scenario(["Stopped"])
    down = ActivityFailed("Activity function 'notify' failed: connection refused")
    _email_outage(scenario, [down] * 1000)
    ctx, out = run(scenario, request(notify_first_retry_seconds=60,
                                     notify_max_retry_seconds=1800,
                                     notify_give_up_seconds=86400))
    assert out["outcome"] == "captured"  # the capture result is all there
    assert out["notification"]["status"] == "undelivered"
    assert "connection refused" in out["notification"]["error"]
    assert 8 <= out["notification"]["attempts"] <= 60
    assert ctx.now - datetime(2026, 11, 24, 2, 0) <= timedelta(hours=24, minutes=1)
    assert called(ctx)[-1] == save_run.name  # and kept


def test_a_failed_create_removes_whatever_landed_by_name() -> None:
    scenario = Scenario(["Running"])

    def lost(payload: dict[str, Any]) -> dict[str, Any]:
        raise ActivityFailed("Activity function 'create_capture' failed: timeout")

    scenario.handlers[create_capture.name] = lost
    ctx, out = run(scenario)
    assert out["outcome"] == "failed"
    create = dict(ctx.calls)[create_capture.name]
    assert dict(ctx.calls)[delete_capture.name]["name"] == create["name"]
    # A run that started on the previous version replays as it was: no new step.
    ctx1, _ = run(scenario, request(version=1))
    assert delete_capture.name not in called(ctx1)


def test_a_stale_capture_landing_late_is_swept_while_monitoring() -> None:
    scenario = Scenario(["Running"] * 8 + ["Stopped"])
    ctx, _ = run(scenario, request(time_limit=600, version=2))
    sweeps = [p for name, p in ctx.calls if name == clear_stale_capture.name]
    assert len(sweeps) == 1 + 2  # before the create, then polls 1 and 5 (9 finds it stopped)
    assert {p["keep_name"] for p in sweeps} == {dict(ctx.calls)[create_capture.name]["name"]}
    ctx1, _ = run(Scenario(["Running"] * 8 + ["Stopped"]), request(time_limit=600, version=1))
    assert called(ctx1).count(clear_stale_capture.name) == 1


def test_history_is_bounded_by_continue_as_new_and_resumes_the_monitor() -> None:
    scenario = Scenario(["Running"] * 50)
    ctx, out = run(scenario, request(time_limit=18000, polls_per_generation=5))
    assert out is None
    assert called(ctx).count(get_capture_status.name) == 5
    carried = ctx.continued_with
    assert carried["monitor"]["generation"] == 1
    assert carried["monitor"]["polls"] == 5

    # The next generation goes straight to monitoring the same capture.
    scenario2 = Scenario(["Running", "Stopped"])
    ctx2, out2 = run(scenario2, carried, now=ctx.now)
    assert create_capture.name not in called(ctx2)
    assert out2["capture"]["name"] == carried["monitor"]["capture"]["name"]
    assert out2["polls"] == 7
    assert out2["started_at"] == "2026-11-24T02:00:00.000000Z"


def test_a_windows_path_for_a_linux_vm_fails_before_anything_is_created() -> None:
    scenario = Scenario(["Running", "Stopped"])
    req = CaptureRequest(vm=VmRef.parse(VM), location="eastus",
                         options=CaptureOptions(local_file_path="C:\\captures\\x.cap",
                                                to_storage=False))
    ctx = FakeContext(RunInput(req).to_dict(), scenario.handlers)
    output = drive(ctx, capture_run(ctx))
    assert output["outcome"] == "failed"
    assert "windows path" in output["reason"] and "linux" in output["reason"]
    assert create_capture.name not in called(ctx)
    assert called(ctx)[-2:] == [notify.name, save_run.name]


# --- version 3: the setup as one preflight activity -----------------------------------


def test_v3_setup_is_one_preflight_then_a_create_that_puts_first() -> None:
    scenario = Scenario(["NotStarted", "Running", "Stopped"])
    ctx, out = run(scenario)
    assert called(ctx)[:2] == [preflight.name, create_capture.name]
    for old in (resolve_watcher, ensure_agent, check_limit):
        assert old.name not in called(ctx)
    pre, create = dict(ctx.calls)[preflight.name], dict(ctx.calls)[create_capture.name]
    assert pre["name"] == create["name"] and create["name"].startswith(pre["name_prefix"])
    assert pre["limit"] == 10000 and pre["location"] == "eastus"
    assert create["put_first"] is True
    assert out["outcome"] == "captured" and out["watcher"]["name"] == WATCHER.name


def test_v3_preflight_failure_is_notified_with_its_error_and_creates_nothing() -> None:
    scenario = Scenario(["Running"])
    scenario.handlers[preflight.name] = lambda p: {"error": AgentMissing(
        "the Network Watcher agent is not installed on vm1").to_dict()}
    ctx, out = run(scenario)
    assert called(ctx) == [preflight.name, notify.name, save_run.name]
    assert out["error"]["type"] == "AgentMissing"
    assert "not installed on vm1" in out["reason"]


def test_v3_refused_local_path_fails_as_unprocessable_before_any_create() -> None:
    scenario = Scenario(["Running"])
    scenario.handlers[preflight.name] = lambda p: ok(Preflight(
        WATCHER, "eastus", "cache", AgentStatus("AzureNetworkWatcherExtension",
                                                "NetworkWatcherAgentWindows", "1.4",
                                                os_type="windows"),
        refused="localFilePath /var/captures/x.cap is a linux path, but vm1 runs windows"))
    ctx, out = run(scenario)
    assert create_capture.name not in called(ctx)
    assert out["error"]["type"] == "Unprocessable"
    assert "runs windows" in out["reason"]


def test_v2_runs_in_flight_replay_the_old_setup_under_version_3() -> None:
    # A run recorded at version 2 must schedule the same tasks after the upgrade.
    ctx, _ = run(Scenario(["Stopped"]), request(version=2))
    assert preflight.name not in called(ctx)
    assert dict(ctx.calls)[create_capture.name]["put_first"] is False
