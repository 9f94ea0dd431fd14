"""Standby rings, unit level: the settings named at start-up, discovery, the harvest's
window maths and its "missing" wording (fake storage), the keeper stepped on the harness,
and the capture run harvesting first only for a VM whose keeper is live (version 6)."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

import activities.standby as standby_activities
from activities.standby import (
    HarvestInput,
    RingState,
    find_standby_vms,
    harvest_standby_ring,
    still_standby,
)
from alertcap.domain.run import CaptureRequest, RunInput, RunPolicy
from alertcap.domain.standby import (
    HARVEST_FOLDER,
    Harvest,
    HarvestedFile,
    StandbySettings,
    keeper_instance_id,
    ring_capture_name,
)
from alertcap.domain.vm import VmRef
from alertcap.errors import ConfigError
from alertcap.settings import Settings
from orchestrators.capture import capture_run
from orchestrators.standby import KeeperInput, keeper_run
from tests.app.orchestration_harness import ActivityFailed, FakeContext, drive, ok
from tests.app.test_orchestrator import WATCHER, Scenario, called, request

SUB = "00000000-0000-0000-0000-000000000000"
GROUP = f"/subscriptions/{SUB}/resourceGroups/app-rg"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm1"
VM2 = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm2"
SA = "/subscriptions/x/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/sa"


# --- settings -----------------------------------------------------------------------------


def _problems(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": SA, **env})
    return " ".join(info.value.detail["problems"])


def test_defaults_keep_a_one_gigabyte_ring_and_no_vm_in_standby() -> None:
    s = Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": SA})
    assert not s.standby.enabled
    assert s.standby.ring.ring_bytes == 10 * 104_857_600 <= s.standby.max_ring_bytes
    assert s.policy.standby_lookback_seconds == 600 and s.policy.standby_mode == "both"


def test_targets_take_vm_ids_and_resource_groups() -> None:
    s = Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": SA,
                           "ALERTCAP_STANDBY_TARGETS": f"{VM}; {GROUP}/ ,"})
    assert s.standby.targets == (VM, GROUP) and s.standby.enabled


@pytest.mark.parametrize(("env", "named"), [
    ({"ALERTCAP_STANDBY_MODE": "always"}, "ALERTCAP_STANDBY_MODE"),
    ({"ALERTCAP_STANDBY_TARGETS": "/subscriptions/x/nonsense"}, "ALERTCAP_STANDBY_TARGETS"),
    ({"ALERTCAP_STANDBY_FILE_COUNT": "0"}, "ALERTCAP_STANDBY_FILE_COUNT"),
    ({"ALERTCAP_STANDBY_FILE_SIZE_BYTES": "100"}, "ALERTCAP_STANDBY_FILE_SIZE_BYTES"),
    ({"ALERTCAP_STANDBY_SESSION_SECONDS": "700000"}, "ALERTCAP_STANDBY_SESSION_SECONDS"),
    ({"ALERTCAP_STANDBY_LOOKBACK_SECONDS": "x"}, "ALERTCAP_STANDBY_LOOKBACK_SECONDS"),
    ({"ALERTCAP_STANDBY_CHECK_SECONDS": "600", "ALERTCAP_STANDBY_SESSION_SECONDS": "1000"},
     "ALERTCAP_STANDBY_CHECK_SECONDS"),
])
def test_each_bad_value_is_named_at_start_up(env: dict[str, str], named: str) -> None:
    assert named in _problems(env)


def test_a_ring_over_the_cap_is_refused_with_its_size() -> None:
    text = _problems({"ALERTCAP_STANDBY_FILE_COUNT": "100",
                      "ALERTCAP_STANDBY_FILE_SIZE_BYTES": "104857600"})
    assert "10485760000 bytes per VM exceeds ALERTCAP_STANDBY_MAX_RING_BYTES" in text


# --- discovery ------------------------------------------------------------------------------


def _vm(vm_id: str, tags: dict[str, str] | None) -> Any:
    return SimpleNamespace(id=vm_id, tags=tags)


def _not_found(code: str) -> ResourceNotFoundError:
    err = ResourceNotFoundError(code)
    err.status_code = 404  # what ARM's 404 carries; alertcap.sdk.errors maps by status
    return err


class FakeResources:
    def __init__(self, groups: dict[str, list[Any]]) -> None:
        self.groups = groups

    def list_by_resource_group(self, group: str, filter: str) -> list[Any]:
        assert "virtualMachines" in filter
        if group not in self.groups:
            raise _not_found("ResourceGroupNotFound")
        return self.groups[group]

    def get_by_id(self, vm_id: str, api_version: str) -> Any:
        for vms in self.groups.values():
            for vm in vms:
                if vm.id.lower() == vm_id.lower():
                    return vm
        raise _not_found("ResourceNotFound")


def _clients(targets: tuple[str, ...], groups: dict[str, list[Any]]) -> Any:
    resources = FakeResources(groups)
    return SimpleNamespace(
        settings=SimpleNamespace(standby=StandbySettings(targets=targets)),
        resources=lambda sub: SimpleNamespace(resources=resources))


def test_find_lists_ids_and_tagged_vms_of_groups_once_each() -> None:
    clients = _clients((VM, GROUP, "/subscriptions/s/resourceGroups/gone"), {"app-rg": [
        _vm(VM, {"Alertcap-Standby": "TRUE"}), _vm(VM2, {"alertcap-standby": "true"}),
        _vm(f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm3", {"other": "true"}),
        _vm(f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm4", None)]})
    vms, problems = find_standby_vms(clients, clients.settings.standby)
    assert sorted(v.name for v in vms) == ["vm1", "vm2"]
    assert len(problems) == 1 and problems[0].startswith("/subscriptions/s/resourceGroups/gone")


def test_still_standby_follows_the_settings_and_the_tag_now() -> None:
    tagged = _vm(VM2, {"alertcap-standby": "true"})
    clients = _clients((GROUP,), {"app-rg": [tagged]})
    assert still_standby(clients, VmRef.parse(VM2))
    tagged.tags = {"alertcap-standby": "false"}  # the tag removed: the keeper lets go
    assert not still_standby(clients, VmRef.parse(VM2))
    assert not still_standby(clients, VmRef.parse(VM))  # deleted VM
    assert still_standby(_clients((VM.upper(),), {}), VmRef.parse(VM))
    assert not still_standby(_clients((), {}), VmRef.parse(VM))


def test_ring_and_keeper_names_stay_out_of_the_run_namespaces() -> None:
    vm = VmRef.parse(VM)
    assert ring_capture_name("alertcap", vm).startswith("alertcap.standby-vm1-")
    assert keeper_instance_id(vm).startswith("alertcap-standby-vm1-")
    assert keeper_instance_id(vm) == keeper_instance_id(VmRef.parse(VM.upper()))


# --- harvest: window maths against a fake ring ---------------------------------------------


def _pcap(first: datetime) -> bytes:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    ts = first.timestamp()
    return header + struct.pack("<IIII", int(ts), int(ts % 1 * 1e6), 4, 4) + b"abcd"


class FakeBlob:
    def __init__(self, container: FakeContainer, name: str) -> None:
        self.container, self.name = container, name

    def download_blob(self, offset: int = 0, length: int | None = None) -> Any:
        data = self.container.blobs[self.name][offset:None if length is None else offset + length]
        return SimpleNamespace(readall=lambda: data)

    def start_copy_from_url(self, url: str) -> None:
        source = url.split("/ring/", 1)[1].split("?", 1)[0]
        self.container.blobs[self.name] = self.container.blobs[source]

    def get_blob_properties(self) -> Any:
        return SimpleNamespace(copy=SimpleNamespace(status="success"))


class FakeContainer:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def list_blobs(self, name_starts_with: str) -> list[Any]:
        return [SimpleNamespace(name=n, size=len(b)) for n, b in self.blobs.items()
                if n.startswith(name_starts_with)]

    def get_blob_client(self, name: str) -> FakeBlob:
        return FakeBlob(self, name)


FOLDER = "https://acct.blob.core.windows.net/ring/vm1"


def _ring_blob(closed: datetime) -> str:
    return f"vm1/{closed:%Y/%m/%d}/packetcapture_{closed:%H_%M_%S}_{closed.microsecond // 1000:03d}.cap"


def _harvest(monkeypatch: pytest.MonkeyPatch, files: dict[datetime, datetime], alert: datetime,
             lookback: int = 120, status: str = "Running",
             session_start: datetime | None = None) -> tuple[Harvest, FakeContainer]:
    """FILES: closed-at -> first packet. The ring's state and watcher are stubbed."""
    container = FakeContainer({_ring_blob(c): _pcap(f) for c, f in files.items()})
    monkeypatch.setattr(standby_activities, "resolve_watcher",
                        lambda clients, inp: SimpleNamespace(watcher=WATCHER))
    monkeypatch.setattr(standby_activities, "_ring_state",
                        lambda clients, w, name, ring: (status, session_start, FOLDER))
    clients = SimpleNamespace(
        blob=lambda url: SimpleNamespace(container_name="ring"),
        container=lambda url: container,
        read_link=lambda url, hours: (f"{url}?sig=x", "2026-01-01T00:00:00Z"))
    out = harvest_standby_ring(clients, HarvestInput(  # type: ignore[arg-type]
        VmRef.parse(VM), "alertcap.standby-vm1", alert.isoformat(), lookback, "run1"))
    return out, container


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_harvest_copies_the_files_closed_since_the_lookback_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    alert = _now() - timedelta(seconds=20)
    at = {s: alert + timedelta(seconds=s) for s in (-300, -200, -100, -40, 5)}
    h, container = _harvest(monkeypatch, {at[s]: at[s] - timedelta(seconds=50) for s in at},
                            alert, lookback=120)
    assert h.standby and h.ring_status == "Running" and not h.warnings
    # The 15 s since the last file closed are in the ring's open file: named, not hidden.
    assert len(h.missing) == 1 and h.missing[0].startswith(f"{at[5]:%H:%M:%S}-")
    assert h.missing[0].endswith("in the ring's open file, not written out yet")
    assert [f.closed_at[:19] for f in h.files] == [at[s].isoformat()[:19] for s in (-100, -40, 5)]
    assert h.window_start and h.window_start[:19] == (alert - timedelta(seconds=120)).isoformat()[:19]
    for f in h.files:  # copied out of rotation's reach, with a link, first packet read
        name = f.url.split("/ring/", 1)[1]
        assert name.startswith(f"{HARVEST_FOLDER}/vm1/run1/") and name in container.blobs
        assert f.link and f.link.startswith(f.url) and f.first_packet_at
    assert h.reaches_before_alert


def test_a_ring_shorter_than_the_lookback_says_which_minutes_are_missing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    alert = _now() - timedelta(seconds=10)
    first = alert - timedelta(seconds=30)  # the ring began 30 s before the alert
    h, _ = _harvest(monkeypatch, {alert - timedelta(seconds=5): first}, alert, lookback=120)
    start = alert - timedelta(seconds=120)
    assert h.missing[:-1] == (f"{start:%H:%M:%S}-{first:%H:%M:%S} UTC (1 min 30 s): "
                         "the ring is shorter than the lookback",)
    assert h.missing[-1].endswith("in the ring's open file, not written out yet")


def test_no_file_in_the_window_and_a_stopped_ring_are_reported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    alert = _now() - timedelta(seconds=10)
    old = alert - timedelta(seconds=900)
    h, _ = _harvest(monkeypatch, {old: old}, alert, lookback=60, status="Stopped")
    assert not h.files and h.warnings == ("the standby ring is Stopped, not Running",)
    assert len(h.missing) == 1 and h.missing[0].endswith("no ring file closed in the window")
    assert not h.reaches_before_alert


def test_a_restart_inside_the_window_is_a_missing_span(monkeypatch: pytest.MonkeyPatch) -> None:
    alert = _now() - timedelta(seconds=10)
    before, restart = alert - timedelta(seconds=100), alert - timedelta(seconds=60)
    h, _ = _harvest(monkeypatch, {alert - timedelta(seconds=200): alert - timedelta(seconds=250),
                                  before: before, alert: restart},
                    alert, lookback=120, session_start=restart)
    assert h.missing[:-1] == (f"{before:%H:%M:%S}-{restart:%H:%M:%S} UTC (0 min 40 s): "
                         "the ring was restarted or renewed",)
    assert h.missing[-1].endswith("in the ring's open file, not written out yet")


def test_no_ring_of_ours_is_not_standby(monkeypatch: pytest.MonkeyPatch) -> None:
    h, _ = _harvest(monkeypatch, {}, _now(), status="absent")
    assert h == Harvest(standby=False)


# --- the keeper on the harness ------------------------------------------------------------


def _keeper_input(generation: int = 0) -> dict[str, Any]:
    return KeeperInput(VmRef.parse(VM), StandbySettings(targets=(VM,), check_seconds=300),
                       RunPolicy(storage_account_id=SA), generation).to_dict()


def test_the_keeper_looks_publishes_sleeps_and_continues_as_new() -> None:
    state = RingState("created", "Running", started_at="2026-11-24T02:00:01.000Z",
                      session_ends_at="2026-11-25T02:00:01.000Z", folder=FOLDER)
    ctx = FakeContext(_keeper_input(3), {"keep_standby_ring": lambda p: ok(state)},
                      instance_id=keeper_instance_id(VmRef.parse(VM)))
    start = ctx.now
    assert drive(ctx, keeper_run(ctx)) is None
    (name, payload), = ctx.calls
    assert name == "keep_standby_ring" and payload["ring"]["file_count"] == 10
    assert payload["name"] == ring_capture_name("alertcap", VmRef.parse(VM))
    status = ctx.statuses[-1]
    assert status["phase"] == "standby" and status["action"] == "created"
    assert status["ringStatus"] == "Running" and status["generation"] == 3
    assert ctx.timers[0].fire_at == start + timedelta(seconds=1 + 300)
    assert ctx.continued_with["generation"] == 4


def test_the_keeper_ends_when_the_vm_left_standby() -> None:
    ctx = FakeContext(_keeper_input(), {"keep_standby_ring": lambda p: ok(
        RingState("removed", "absent", opted_in=False))})
    out = drive(ctx, keeper_run(ctx))
    assert out["action"] == "removed" and ctx.continued_with is None and not ctx.timers
    assert ctx.statuses[-1]["phase"] == "released"


def test_a_broken_ring_is_reported_and_the_keeper_lives_on() -> None:
    def fail(p: Any) -> Any:
        raise ActivityFailed("Network Watcher refused the ring\nsecond line")

    ctx = FakeContext(_keeper_input(), {"keep_standby_ring": fail})
    assert drive(ctx, keeper_run(ctx)) is None
    assert ctx.statuses[-1]["phase"] == "ring-error"
    assert ctx.statuses[-1]["error"] == "Network Watcher refused the ring"
    assert ctx.continued_with["generation"] == 1


# --- the capture run harvests first only for a standby VM ----------------------------------

HARVEST = Harvest(standby=True, ring="alertcap.standby-vm1", alert_time="2026-11-24T01:59:00.000Z",
                  window_start="2026-11-24T01:49:00.000Z", window_end="2026-11-24T02:00:01.000Z",
                  files=(HarvestedFile(url=f"{FOLDER}/h/1.cap", source=f"{FOLDER}/1.cap",
                                       closed_at="2026-11-24T01:58:00.000Z", link="L1"),),
                  missing=("01:49:00-01:55:00 UTC (6 min 0 s): the ring is shorter than the "
                           "lookback",))


def _standby_request(standby: bool, version: int = 6, **policy: Any) -> dict[str, Any]:
    inp = RunInput.from_dict(request(version=version, **policy))
    req: CaptureRequest = replace(inp.request, standby=standby)
    return replace(inp, request=req).to_dict()


def _scenario() -> Scenario:
    s = Scenario(["Running", "Stopped"])
    s.handlers["harvest_standby_ring"] = lambda p: ok(HARVEST)
    s.handlers["summarise_files"] = lambda p: ok(SimpleNamespace(to_dict=lambda: {
        "blob_url": p["paths"][-1], "summary": {"packets": 7, "paths": p["paths"],
                                                "alert_time": p["alert_time"]}}))
    return s


def test_a_standby_vm_is_harvested_first_and_summarised_with_the_after_capture() -> None:
    scenario = _scenario()
    ctx = FakeContext(_standby_request(True), scenario.handlers)
    out = drive(ctx, capture_run(ctx))
    names = called(ctx)
    assert names[0] == "harvest_standby_ring" and "summarise_files" in names
    assert "summarise_capture" not in names
    assert out["outcome"] == "captured" and out["harvest"]["files"][0]["link"] == "L1"
    summary = out["summary"]["summary"]
    assert summary["paths"][0] == f"{FOLDER}/h/1.cap" and len(summary["paths"]) == 2
    assert summary["alert_time"] == HARVEST.alert_time
    assert any(w.startswith("no evidence for 01:49:00-01:55:00 UTC") for w in out["warnings"])
    text = scenario.emails[0]["text"] if "text" in scenario.emails[0] else str(scenario.emails)
    assert "L1" in text


@pytest.mark.parametrize(("standby", "version"), [(False, 6), (True, 5)])
def test_no_harvest_without_a_live_keeper_or_before_version_6(standby: bool,
                                                               version: int) -> None:
    scenario = _scenario()
    ctx = FakeContext(_standby_request(standby, version), scenario.handlers)
    out = drive(ctx, capture_run(ctx))
    assert "harvest_standby_ring" not in called(ctx) and "summarise_files" not in called(ctx)
    assert out["outcome"] == "captured" and not (out.get("harvest") or {}).get("standby")


def test_harvest_only_mode_skips_the_after_capture() -> None:
    scenario = _scenario()
    ctx = FakeContext(_standby_request(True, standby_mode="harvest-only"), scenario.handlers)
    out = drive(ctx, capture_run(ctx))
    assert "create_capture" not in called(ctx) and "preflight" not in called(ctx)
    assert out["outcome"] == "captured" and out["reason"] == "harvested (standby)"
    assert out["summary"]["summary"]["paths"] == [f"{FOLDER}/h/1.cap"]
