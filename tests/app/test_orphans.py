"""The orphan sweep over a scripted Network Watcher and Durable client: which captures it
stops (a terminated, failed or purged run's, still running), which it never touches (a live
run's, a standby ring, someone else's, one that ended), and what its report says."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.network import models

import activities.orphans as orphans_activities
import starters.orphans as orphans
from alertcap.domain.standby import ring_capture_name
from alertcap.domain.targets import Scope, capture_name_for_target, instance_id_for_target
from alertcap.domain.vm import VmRef
from alertcap.errors import ConfigError
from alertcap.settings import Settings, orphan_sweep_schedule

SUB = "00000000-0000-0000-0000-000000000000"
RG = f"/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG"
WATCHER = f"{RG}/providers/Microsoft.Network/networkWatchers/NetworkWatcher_eastus"


def _vm(name: str) -> VmRef:
    return VmRef.parse(f"/subscriptions/{SUB}/resourceGroups/demo-rg/providers/"
                       f"Microsoft.Compute/virtualMachines/{name}")


VM1, VM2, VM3, VM4 = _vm("vm1"), _vm("vm2"), _vm("vm3"), _vm("vm4")
SET = VmRef.parse_scale_set(f"/subscriptions/{SUB}/resourceGroups/demo-rg/providers/"
                            "Microsoft.Compute/virtualMachineScaleSets/web")
T0 = datetime(2026, 11, 24, 10, 0, 0)
# Enough for Settings.from_env to load: a capture needs somewhere to write.
VALID = {"ALERTCAP_CAPTURE_LOCAL_FILE_PATH": "/var/captures/x.cap"}


def name_of(vm: VmRef, scope: Scope | None = None) -> str:
    return capture_name_for_target("alertcap", vm, scope, T0)


def _http_error(status: int) -> HttpResponseError:
    response = SimpleNamespace(status_code=status, reason="x", headers={}, text=lambda: "",
                               request=HttpRequest("GET", "https://arm.local/x"))
    cls = ResourceNotFoundError if status == 404 else HttpResponseError
    return cls(response=response, message=f"{status} AuthorizationFailed")


class Poller:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class FakeCaptures:
    """Network Watcher's packetCaptures, one watcher: name -> (target, scope, status)."""

    def __init__(self, captures: dict[str, tuple[str, Any, str]]) -> None:
        self.captures = dict(captures)
        self.calls: list[tuple[str, str]] = []
        self.list_error: int | None = None

    def list(self, group: str, watcher: str) -> list[Any]:
        if self.list_error:
            raise _http_error(self.list_error)
        return [models.PacketCaptureResult({"name": n, "properties": {
            "target": t, **({"scope": s} if s else {})}}) for n, (t, s, _) in
            self.captures.items()]

    def _find(self, call: str, name: str) -> tuple[str, Any, str]:
        self.calls.append((call, name))
        if name not in self.captures:
            raise _http_error(404)
        return self.captures[name]

    def begin_get_status(self, group: str, watcher: str, name: str) -> Poller:
        status = self._find("status", name)[2]
        return Poller(SimpleNamespace(packet_capture_status=status))

    def begin_stop(self, group: str, watcher: str, name: str) -> Poller:
        t, s, _ = self._find("stop", name)
        self.captures[name] = (t, s, "Stopped")
        return Poller()

    def begin_delete(self, group: str, watcher: str, name: str) -> Poller:
        self._find("delete", name)
        del self.captures[name]
        return Poller()


class FakeNetwork:
    def __init__(self, captures: FakeCaptures) -> None:
        self.packet_captures = captures
        self.network_watchers = SimpleNamespace(list_all=lambda: [SimpleNamespace(
            id=WATCHER, name="NetworkWatcher_eastus", location="eastus")])


class FakeDurable:
    def __init__(self, statuses: dict[str, tuple[str | None, Any]]) -> None:
        self.statuses = statuses
        self.asked: list[str] = []

    async def get_status(self, instance_id: str) -> Any:
        self.asked.append(instance_id)
        runtime, output = self.statuses.get(instance_id, (None, None))
        return SimpleNamespace(runtime_status=runtime, output=output)


def _sweep(monkeypatch: pytest.MonkeyPatch, captures: FakeCaptures, durable: FakeDurable,
           scopes: tuple[str, ...] = (RG,)) -> dict[str, Any]:
    monkeypatch.setattr(orphans, "get_clients",
                        lambda: SimpleNamespace(network=lambda sub: FakeNetwork(captures)))
    s = Settings(orphan_sweep_scopes=scopes)
    return asyncio.run(orphans.sweep(durable, s))


def _iid(vm: VmRef, scope: Scope | None = None) -> str:
    return instance_id_for_target(vm, scope)


def test_a_gone_runs_running_capture_is_stopped_and_deleted_and_nothing_else(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scope = Scope.of(("0", "2"))
    cap = FakeCaptures({
        name_of(VM1): (VM1.id, None, "Running"),    # its run was terminated
        name_of(VM2): (VM2.id, None, "Running"),    # its run was purged: unknown instance
        name_of(VM3): (VM3.id, None, "Running"),    # its run is live
        name_of(VM4): (VM4.id, None, "Stopped"),    # its run failed; the capture ended
        name_of(SET, scope): (SET.id, {"include": ["0", "2"]}, "Running"),  # failed run
        ring_capture_name("alertcap", VM1): (VM1.id, None, "Running"),  # the keeper's
        "someone-elses": (VM1.id, None, "Running"),
    })
    durable = FakeDurable({_iid(VM1): ("Terminated", None), _iid(VM3): ("Running", None),
                           _iid(VM4): ("Failed", None), _iid(SET, scope): ("Failed", None)})
    report = _sweep(monkeypatch, cap, durable)

    stopped = {s["name"]: s for s in report["stopped"]}
    assert set(stopped) == {name_of(VM1), name_of(VM2), name_of(SET, scope)}
    assert stopped[name_of(VM1)]["run"] == "Terminated"
    assert stopped[name_of(VM1)]["instanceId"] == _iid(VM1)
    assert stopped[name_of(VM2)]["run"] == "gone (purged)"
    assert stopped[name_of(VM1)]["captureStatus"] == "Running"
    assert set(cap.captures) == {name_of(VM3), name_of(VM4),
                                 ring_capture_name("alertcap", VM1), "someone-elses"}
    assert report["kept"] == 2 and report["scanned"] == 5 and report["errors"] == []
    assert report["everyMinutes"] == 5  # when the timer looks again
    # The live run's capture and the ring were never queried, stopped or deleted.
    touched = {n for _, n in cap.calls}
    assert name_of(VM3) not in touched and ring_capture_name("alertcap", VM1) not in touched
    assert ("stop", name_of(VM4)) not in cap.calls


def test_a_second_sweep_finds_nothing_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    durable = FakeDurable({_iid(VM1): ("Terminated", None)})
    assert len(_sweep(monkeypatch, cap, durable)["stopped"]) == 1
    again = _sweep(monkeypatch, cap, durable)
    assert again["stopped"] == [] and again["errors"] == [] and again["scanned"] == 0


def test_a_completed_run_that_saw_its_capture_end_costs_no_arm_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    output = {"capture": {"name": name_of(VM1)}, "capture_status": {"status": "Stopped"}}
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Stopped")})
    report = _sweep(monkeypatch, cap, FakeDurable({_iid(VM1): ("Completed", output)}))
    assert report["kept"] == 1 and report["stopped"] == [] and cap.calls == []


def test_a_completed_run_whose_stop_failed_has_its_capture_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The run gave up ("could not stop ...") and completed: the capture still runs.
    output = {"capture": {"name": name_of(VM1)}, "capture_status": None}
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    report = _sweep(monkeypatch, cap, FakeDurable({_iid(VM1): ("Completed", output)}))
    assert [s["name"] for s in report["stopped"]] == [name_of(VM1)]
    assert cap.captures == {}


def test_a_capture_deleted_meanwhile_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    real_stop = cap.begin_stop

    def stop_after_someone_deleted(group: str, watcher: str, name: str) -> Poller:
        del cap.captures[name]  # the VM's next run cleared it between status and stop
        return real_stop(group, watcher, name)

    cap.begin_stop = stop_after_someone_deleted  # type: ignore[method-assign]
    report = _sweep(monkeypatch, cap, FakeDurable({_iid(VM1): ("Terminated", None)}))
    assert report["errors"] == [] and cap.captures == {}


def test_a_403_on_listing_is_a_clear_report_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    cap.list_error = 403
    report = _sweep(monkeypatch, cap, FakeDurable({}))
    assert report["stopped"] == [] and report["scanned"] == 0
    [error] = report["errors"]
    assert "NetworkWatcher_eastus" in error and "403" in error
    assert "role assignments" in error  # what the operator should check


def test_our_prefix_on_another_targets_name_is_reported_and_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCaptures({name_of(VM1): (VM2.id, None, "Running")})  # vm1's name, vm2 target
    report = _sweep(monkeypatch, cap, FakeDurable({}))
    assert report["stopped"] == [] and report["kept"] == 1 and cap.calls == []
    assert "not for its target vm2" in report["errors"][0]


def test_a_status_lookup_that_fails_keeps_the_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    class Down(FakeDurable):
        async def get_status(self, instance_id: str) -> Any:
            raise ConnectionError("task hub unreachable")

    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    report = _sweep(monkeypatch, cap, Down({}))
    assert report["stopped"] == [] and report["kept"] == 1 and cap.calls == []
    assert "ConnectionError" in report["errors"][0]


def test_the_sweep_is_bounded_in_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orphans_activities, "MAX_CAPTURES", 2)
    cap = FakeCaptures({name_of(vm): (vm.id, None, "Running") for vm in (VM1, VM2, VM3)})
    report = _sweep(monkeypatch, cap, FakeDurable({}))
    assert report["truncated"] and len(report["stopped"]) == 2 and len(cap.captures) == 1
    assert any("more than 2" in e for e in report["errors"])


def test_only_the_listed_groups_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    cap = FakeCaptures({name_of(VM1): (VM1.id, None, "Running")})
    other = f"/subscriptions/{SUB}/resourceGroups/other-rg"
    report = _sweep(monkeypatch, cap, FakeDurable({}), scopes=(other,))
    assert report["scanned"] == 0 and cap.calls == []
    assert _sweep(monkeypatch, cap, FakeDurable({}), scopes=(f"/subscriptions/{SUB}",)
                  )["scanned"] == 1


def test_without_scopes_the_report_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    report = _sweep(monkeypatch, FakeCaptures({}), FakeDurable({}), scopes=())
    assert "ALERTCAP_ORPHAN_SWEEP_SCOPES" in report["errors"][0]


@pytest.mark.parametrize(("env", "named"), [
    ({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "7"}, "ALERTCAP_ORPHAN_SWEEP_MINUTES must divide"),
    ({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "0"}, "ALERTCAP_ORPHAN_SWEEP_MINUTES must be between"),
    ({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "five"}, "ALERTCAP_ORPHAN_SWEEP_MINUTES must be a whole"),
    ({"ALERTCAP_ORPHAN_SWEEP_SCOPES": "/subscriptions/x/resourceGroups/../y"},
     "ALERTCAP_ORPHAN_SWEEP_SCOPES"),
])
def test_bad_sweep_settings_are_named_at_start_up(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, **env})
    assert [p for p in caught.value.detail["problems"] if named in p]
    assert len(caught.value.detail["problems"]) <= 2  # this setting's, nothing else


def test_sweep_settings_and_the_timer_schedule() -> None:
    s = Settings.from_env({**VALID, "ALERTCAP_ORPHAN_SWEEP_SCOPES": f"{RG}; /subscriptions/{SUB}/",
                           "ALERTCAP_ORPHAN_SWEEP_MINUTES": "10"})
    assert s.orphan_sweep_scopes == (RG, f"/subscriptions/{SUB}")
    assert s.orphan_sweep_minutes == 10
    assert orphan_sweep_schedule({}) == "0 */5 * * * *"
    assert orphan_sweep_schedule({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "15"}) == "0 */15 * * * *"
    assert orphan_sweep_schedule({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "60"}) == "0 0 * * * *"
    # Invalid: the timer keeps its default; from_env names the setting (test above).
    assert orphan_sweep_schedule({"ALERTCAP_ORPHAN_SWEEP_MINUTES": "7"}) == "0 */5 * * * *"
