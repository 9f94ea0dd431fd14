"""The doctor with fakes: each problem a run would fail on is found and printed with its
fix; a healthy world is all ok; one broken check never stops the others; the permission
table equals infra/permissions.py; the scheduled doctor notifies each problem once and
its resolution once."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from alertcap import __main__ as cli
from alertcap.doctor import checks as C
from alertcap.doctor import permissions as perms
from alertcap.doctor import run, run_from_env, schedule
from alertcap.doctor.model import FAIL, OK, WARN, Report, render_text
from alertcap.errors import AccessDenied, ResourceNotFound
from alertcap.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SUB = "11111111-1111-1111-1111-111111111111"
RG = f"/subscriptions/{SUB}/resourceGroups/vms"
VM1 = f"{RG}/providers/Microsoft.Compute/virtualMachines/web1"
VM2 = f"{RG}/providers/Microsoft.Compute/virtualMachines/web2"
WATCHER = (f"/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/"
           "Microsoft.Network/networkWatchers/NetworkWatcher_westeurope")
STORAGE = (f"/subscriptions/{SUB}/resourceGroups/alertcap/providers/"
           "Microsoft.Storage/storageAccounts/alertcapcaptures")
EVERYTHING = [{"actions": [a for acts in perms.ACTIONS.values() for a in acts]
               + list(perms.BLOB_READER_ACTIONS),
               "notActions": [], "dataActions": list(perms.BLOB_READER_DATA_ACTIONS),
               "notDataActions": []}]


def _vm(vm_id: str, os_type: str = "Linux", agent: dict[str, Any] | None = None,
        location: str = "westeurope") -> dict[str, Any]:
    ext = {"name": "AzureNetworkWatcherExtension",
           "properties": {"publisher": "Microsoft.Azure.NetworkWatcher",
                          "type": f"NetworkWatcherAgent{os_type}", "typeHandlerVersion": "1.4",
                          "provisioningState": "Succeeded", **(agent or {})}}
    return {"id": vm_id, "location": location,
            "properties": {"storageProfile": {"osDisk": {"osType": os_type}}},
            "resources": [] if agent == {"absent": True} else [ext]}


class FakeArm:
    """The ARM reads, as plain data a test changes."""

    def __init__(self) -> None:
        self.vms = {VM1.lower(): _vm(VM1), VM2.lower(): _vm(VM2)}
        self.groups = {RG.lower(): [VM1, VM2]}
        self.watchers = {("westeurope"): {"id": WATCHER, "name": "NetworkWatcher_westeurope",
                                          "location": "westeurope"}}
        self.sessions = 3
        self.storage: dict[str, Any] = {
            "id": STORAGE, "location": "westeurope",
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {"allowSharedKeyAccess": True, "minimumTlsVersion": "TLS1_2",
                           "publicNetworkAccess": "Enabled",
                           "networkAcls": {"defaultAction": "Allow"},
                           "primaryEndpoints": {"blob": "https://alertcapcaptures.blob/"}}}
        self.grants: dict[str, list[dict[str, Any]]] = {}
        self.broken: dict[str, Exception] = {}
        self.calls: list[str] = []

    def _maybe_break(self, what: str) -> None:
        self.calls.append(what)
        if what in self.broken:
            raise self.broken[what]

    def vm(self, vm_id: str) -> dict[str, Any]:
        self._maybe_break("vm")
        if vm_id.lower() not in self.vms:
            raise ResourceNotFound(f"read VM {vm_id.rsplit('/', 1)[-1]}: 404 ResourceNotFound")
        return self.vms[vm_id.lower()]

    def vms_in_group(self, group_id: str) -> list[dict[str, Any]]:
        self._maybe_break("vms_in_group")
        return [{"id": v} for v in self.groups.get(group_id.lower(), [])]

    def watcher(self, subscription: str, region: str) -> dict[str, Any] | None:
        self._maybe_break("watcher")
        return self.watchers.get(region)

    def capture_count(self, watcher_id: str) -> int:
        self._maybe_break("capture_count")
        return self.sessions

    def storage_account(self, account_id: str) -> dict[str, Any]:
        self._maybe_break("storage_account")
        if self.storage is None:
            raise ResourceNotFound("read storage account alertcapcaptures: 404 "
                                   "ResourceNotFound")
        return self.storage

    def permissions(self, scope: str) -> list[dict[str, Any]]:
        self._maybe_break("permissions")
        return self.grants.get(scope.lower(), EVERYTHING)


def _settings(**env: str) -> Settings:
    base = {"ALERTCAP_STORAGE_ACCOUNT_ID": STORAGE, "AZURE_CLIENT_ID": "cid-123",
            "ALERTCAP_EMAIL_ENDPOINT": "https://acs.communication.azure.com",
            "ALERTCAP_EMAIL_SENDER": "DoNotReply@x.azurecomm.net",
            "ALERTCAP_EMAIL_RECIPIENTS": "oncall@example.com",
            "ALERTCAP_DOCTOR_TARGETS": RG,
            "ALERTCAP_DOCTOR_STATE_BLOB": "https://host.blob.core.windows.net/d/state.json"}
    return Settings.from_env({**base, **env})


class FakeClients:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.blobs: dict[str, bytes] = {}
        self.sent: list[dict[str, Any]] = []
        self.fail_send = False

    def blob(self, url: str) -> Any:
        clients = self

        class Blob:
            def download_blob(self) -> Any:
                from azure.core.exceptions import ResourceNotFoundError

                if url not in clients.blobs:
                    raise ResourceNotFoundError("BlobNotFound")
                data = clients.blobs[url]
                return type("D", (), {"readall": lambda _self: data})()

            def upload_blob(self, data: bytes, overwrite: bool) -> None:
                assert overwrite
                clients.blobs[url] = data

        return Blob()

    def email(self) -> Any:
        clients = self

        class Email:
            def begin_send(self, message: dict[str, Any], **kw: Any) -> Any:
                if clients.fail_send:
                    raise RuntimeError("ACS down")
                clients.sent.append({**message, "operation_id": kw["operation_id"]})
                return type("P", (), {"result": lambda _self: {"status": "Succeeded"}})()

        return Email()


def _doctor(arm: FakeArm, settings: Settings | None = None,
            probe: Any = None) -> Report:
    clients: Any = FakeClients(settings or _settings())
    return run(clients, arm=arm, probe=probe or (lambda url: None))


def _problems(report: Report) -> dict[tuple[str, str], Any]:
    return {(c.name, c.code): c for c in report.checks if c.status != OK}


# --- healthy ------------------------------------------------------------------------------


def test_a_healthy_world_is_all_ok_and_covers_every_target() -> None:
    arm = FakeArm()
    report = _doctor(arm)
    assert report.healthy and not report.problems, render_text(report)
    subjects = {(c.name, c.subject) for c in report.checks}
    for vm in (VM1, VM2):
        assert ("agent", vm) in subjects and ("permissions", vm) in subjects
    assert ("watcher", f"/subscriptions/{SUB}/locations/westeurope") in subjects
    assert ("capture-limit", WATCHER) in subjects and ("permissions", WATCHER) in subjects
    assert ("storage", STORAGE) in subjects and ("permissions", STORAGE) in subjects
    assert any(c.name == "channel:email" for c in report.checks)
    assert arm.calls.count("watcher") == 1  # one region: looked up once
    assert "all is well" in render_text(report)
    assert report.to_json()["ok"] is True


# --- each seeded problem, found with its fix ------------------------------------------------


@pytest.mark.parametrize(("change", "check", "code", "fix_part"), [
    (lambda a: a.vms[VM1.lower()].update(resources=[]), "agent", "agent-missing",
     "az vm extension set --subscription " + SUB + " --resource-group vms --vm-name web1 "
     "--name NetworkWatcherAgentLinux --publisher Microsoft.Azure.NetworkWatcher "
     "--version 1.4"),
    (lambda a: a.vms[VM1.lower()]["resources"][0]["properties"].update(
        provisioningState="Failed"), "agent", "agent-state-failed", "168.63.129.16"),
    (lambda a: a.vms[VM1.lower()]["resources"][0]["properties"].update(
        typeHandlerVersion="1.3"), "agent", "agent-outdated", "--version 1.4"),
    (lambda a: a.vms.__setitem__(VM1.lower(), _vm(VM1, "Windows", {
        "type": "NetworkWatcherAgentLinux"})), "agent", "agent-wrong-os",
     "--name NetworkWatcherAgentWindows"),
    (lambda a: a.watchers.clear(), "watcher", "watcher-missing",
     "az network watcher configure --subscription " + SUB +
     " --resource-group NetworkWatcherRG --locations westeurope --enabled true"),
    (lambda a: a.storage["properties"].update(allowSharedKeyAccess=False), "storage",
     "shared-key-disabled", "az storage account update --subscription " + SUB +
     " --resource-group alertcap --name alertcapcaptures --allow-shared-key-access true"),
    (lambda a: a.storage["properties"].update(minimumTlsVersion="TLS1_0"), "storage",
     "tls-minimum", "--min-tls-version TLS1_2"),
    (lambda a: a.storage.update(sku={"name": "Premium_LRS", "tier": "Premium"}), "storage",
     "storage-premium", "Standard_LRS"),
    (lambda a: a.storage.update(location="northeurope"), "storage", "storage-region",
     "ALERTCAP_STORAGE_ACCOUNT_ID"),
    (lambda a: a.storage["properties"]["networkAcls"].update(defaultAction="Deny"),
     "storage", "storage-firewall", "az storage account network-rule add"),
    (lambda a: setattr(a, "sessions", 10000), "capture-limit", "limit-reached",
     "ALERTCAP_CAPTURE_LIMIT"),
    (lambda a: setattr(a, "sessions", 9500), "capture-limit", "limit-near",
     "az network watcher packet-capture delete"),
    (lambda a: setattr(a, "storage", None), "storage", "storage-missing",
     "ALERTCAP_STORAGE_ACCOUNT_ID"),
])
def test_each_problem_is_found_with_its_fix(change: Any, check: str, code: str,
                                            fix_part: str) -> None:
    arm = FakeArm()
    change(arm)
    report = _doctor(arm)
    found = _problems(report)
    assert (check, code) in found, render_text(report)
    problem = found[(check, code)]
    assert fix_part in (problem.fix or ""), problem.fix
    assert fix_part.split("\n")[0] in render_text(report)
    assert report.healthy == (problem.status == WARN)


def test_missing_permissions_name_each_action_and_the_assignment() -> None:
    arm = FakeArm()
    arm.grants[VM1.lower()] = [{"actions": ["Microsoft.Compute/*",
                                            "Microsoft.Resources/*/read"],
                                "notActions": ["Microsoft.Compute/virtualMachines/write"]}]
    arm.grants[WATCHER.lower()] = [{"actions": ["Microsoft.Network/networkWatchers/read"]}]
    arm.grants[STORAGE.lower()] = [{"actions": ["*"], "dataActions": []}]
    report = _doctor(arm)
    vm = next(c for c in report.failures if c.subject == VM1)
    assert vm.code == "missing:microsoft.compute/virtualmachines/write"
    assert "az role assignment create --assignee cid-123" in (vm.fix or "")
    assert f"--scope {VM1}" in (vm.fix or "") and "10 minutes" in (vm.fix or "")
    watcher = next(c for c in report.failures if c.subject == WATCHER)
    assert "packetCaptures/write" in watcher.message and "packetCaptures/read" in watcher.message
    storage = next(c for c in report.failures if c.subject == STORAGE)
    assert "blobs/read (data action)" in storage.message
    assert '--role "Storage Blob Data Reader"' in (storage.fix or "")
    assert not any(c.subject == VM2 and c.status == FAIL for c in report.checks)


def test_agent_install_setting_turns_a_missing_agent_into_a_permission_need() -> None:
    arm = FakeArm()
    arm.vms[VM1.lower()]["resources"] = []
    report = _doctor(arm, _settings(ALERTCAP_INSTALL_AGENT="true"))
    assert not any(c.code == "agent-missing" for c in report.checks)
    arm.grants[VM1.lower()] = [{"actions": list(perms.ACTIONS[perms.VMS])}]
    report = _doctor(arm, _settings(ALERTCAP_INSTALL_AGENT="true"))
    vm = next(c for c in report.failures if c.subject == VM1)
    assert "extensions/write" in vm.message


def test_unreachable_storage_and_email_are_failures_without_sending() -> None:
    probed: list[str] = []

    def probe(url: str) -> str | None:
        probed.append(url)
        return "ConnectionRefusedError: [Errno 111] refused"

    report = _doctor(FakeArm(), probe=probe)
    codes = {c.code for c in report.failures}
    assert {"storage-unreachable", "email-unreachable"} <= codes
    assert probed == ["https://alertcapcaptures.blob/", "https://acs.communication.azure.com/"]


@pytest.mark.parametrize(("env", "subject", "code"), [
    ({"ALERTCAP_EMAIL_SENDER": ""}, "ALERTCAP_EMAIL_SENDER", "no-sender"),
    ({"ALERTCAP_EMAIL_RECIPIENTS": ""}, "ALERTCAP_EMAIL_RECIPIENTS", "no-recipients"),
    ({"ALERTCAP_EMAIL_ENDPOINT": ""}, "ALERTCAP_EMAIL_ENDPOINT", "no-email-service"),
    ({"ALERTCAP_EMAIL_ENDPOINT": "", "ALERTCAP_EMAIL_SENDER": "",
      "ALERTCAP_EMAIL_RECIPIENTS": ""}, "ALERTCAP_EMAIL_*", "no-channel"),
])
def test_email_channel_configuration(env: dict[str, str], subject: str, code: str) -> None:
    report = _doctor(FakeArm(), _settings(**env))
    c = _problems(report)[("channel:email", code)]
    assert c.subject == subject and c.status == FAIL and c.fix


@pytest.mark.parametrize(("env", "code"), [
    ({"ALERTCAP_BLOB_CONNECTION_STRING": "AccountName=other;AccountKey=c2VjcmV0"},
     "blob-account-mismatch"),
    ({"ALERTCAP_EMAIL_CONNECTION_STRING": "endpoint=https://acs.x;accesskey=c2VjcmV0"},
     "two-email-services"),
    ({"ALERTCAP_DOCTOR_STATE_BLOB": ""}, "no-doctor-state"),
    ({"ALERTCAP_DOCTOR_TARGETS": ""}, "no-targets"),
    ({"ALERTCAP_DOCTOR_TARGETS": "/subscriptions/x/resourceGroups/a/../b"},
     "bad-target:/subscriptions/x/resourceGroups/a/../b"),
    ({"ALERTCAP_CAPTURE_LOCAL_FILE_PATH": "C:\\Captures\\x.cap"}, "local-path-os"),
])
def test_settings_that_contradict_each_other(env: dict[str, str], code: str) -> None:
    report = _doctor(FakeArm(), _settings(**env))
    assert any(c.code == code and c.fix for c in report.problems), render_text(report)
    # secrets in the settings never reach the report
    assert "c2VjcmV0" not in json.dumps(report.to_json()) + render_text(report)


def test_invalid_settings_are_a_report_not_an_exception() -> None:
    report = run_from_env({"ALERTCAP_CAPTURE_LIMIT": "lots", "ALERTCAP_STORAGE_ACCOUNT_ID": "x",
                           "ALERTCAP_ARM_ENDPOINT": "http://plain"})
    subjects = {c.subject for c in report.failures}
    assert {"ALERTCAP_CAPTURE_LIMIT", "ALERTCAP_ARM_ENDPOINT"} <= subjects
    assert all(c.fix for c in report.failures)


# --- isolation ----------------------------------------------------------------------------


def test_one_failing_check_never_stops_the_others() -> None:
    arm = FakeArm()
    arm.broken["watcher"] = RuntimeError("boom token=abc123secret")
    arm.broken["storage_account"] = AccessDenied("read storage account: 403 "
                                                 "AuthorizationFailed")
    report = _doctor(arm)
    w = next(c for c in report.failures if c.name == "watcher")
    assert "RuntimeError: boom" in w.message and "abc123secret" not in w.message
    s = next(c for c in report.failures if c.name == "storage")
    assert s.code == "access-denied" and "10 minutes" in (s.fix or "")
    # everything else still ran
    assert any(c.name == "agent" and c.status == OK for c in report.checks)
    assert any(c.name == "channel:email" for c in report.checks)


def test_an_unreadable_vm_is_one_failure_and_the_group_listing_can_fail_alone() -> None:
    arm = FakeArm()
    arm.groups[RG.lower()] = [VM1, f"{RG}/providers/Microsoft.Compute/virtualMachines/gone"]
    report = _doctor(arm)
    gone = [c for c in report.checks if c.subject.endswith("/gone")]
    assert [(c.name, c.status) for c in gone] == [("vm", FAIL)]
    arm.broken["vms_in_group"] = AccessDenied("list the VMs: 403")
    report = _doctor(arm, _settings(ALERTCAP_DOCTOR_TARGETS=f"{RG},{VM2}"))
    assert any(c.name == "targets" and c.code == "access-denied" for c in report.failures)
    assert any(c.name == "agent" and c.subject == VM2 for c in report.checks)


# --- permission matching and the table ------------------------------------------------------


@pytest.mark.parametrize(("pattern", "action", "expected"), [
    ("*", "Microsoft.Network/networkWatchers/read", True),
    ("Microsoft.Network/*", "microsoft.network/networkwatchers/packetCaptures/write", True),
    ("*/read", "Microsoft.Compute/virtualMachines/read", True),
    ("*/read", "Microsoft.Compute/virtualMachines/write", False),
    ("Microsoft.Compute/virtualMachines/*/read", "Microsoft.Compute/virtualMachines/read",
     False),
    ("Microsoft.Storage/storageAccounts/list*", "Microsoft.Storage/storageAccounts/listKeys/"
     "action", True),
    ("Microsoft.Network/networkWatchers/read", "Microsoft.Network/networkWatchers/readX",
     False),
])
def test_wildcards_match_like_azure(pattern: str, action: str, expected: bool) -> None:
    assert perms.matches(pattern, action) is expected


def test_not_actions_subtract_from_their_own_block_only() -> None:
    a = "Microsoft.Compute/virtualMachines/write"
    denied = {"actions": ["*"], "notActions": ["Microsoft.Compute/*/write"]}
    assert not perms.allowed([denied], a)
    assert perms.allowed([denied, {"actions": [a]}], a)  # another role still grants it
    d = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
    assert not perms.allowed([{"actions": ["*"]}], d, data=True)
    assert perms.allowed([{"dataActions": ["*/blobs/read"]}], d, data=True)
    assert not perms.allowed([{"dataActions": ["*"], "notDataActions": [d.upper()]}], d,
                             data=True)


def _infra_permissions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doctor_infra_permissions",
                                                  ROOT / "infra" / "permissions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_table_equals_what_infra_permissions_derives() -> None:
    infra = _infra_permissions()
    assert set(perms.ACTIONS) == set(infra.CUSTOM_SCOPES)
    for scope in infra.CUSTOM_SCOPES:
        assert sorted(perms.ACTIONS[scope]) == infra.custom_role_actions(scope), scope
    reader = [p for p in infra.PERMISSIONS.values() if p.granted_by == "Storage Blob Data Reader"]
    assert sorted(perms.BLOB_READER_DATA_ACTIONS) == sorted(
        {a for p in reader for a in p.data_actions})
    # the user delegation key's action is named in infra's reason for that call
    assert all(a.rsplit("/", 2)[-2] in " ".join(p.why for p in reader)
               for a in perms.BLOB_READER_ACTIONS)


# --- rendering and the CLI ---------------------------------------------------------------


def test_json_report_shape_and_text_table() -> None:
    arm = FakeArm()
    arm.watchers.clear()
    report = _doctor(arm)
    body = report.to_json()
    assert body["schema"] == "alertcap.doctor/1" and body["ok"] is False
    first = body["checks"][0]
    assert first["status"] == "fail" and first["fix"] and len(first["fingerprint"]) == 16
    text = render_text(report)
    assert text.splitlines()[0].split()[:3] == ["STATUS", "CHECK", "SUBJECT"]
    assert "FAIL    watcher" in text and "fix: az network watcher configure" in text
    assert text.rstrip().endswith("problems found")


def test_cli_exit_codes_and_json(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    healthy = Report((C.ok("settings", "app settings", "fine"),))
    broken = Report((C.fail("watcher", "eastus", "watcher-missing", "none", "az ..."),))
    monkeypatch.setattr(cli, "run_from_env", lambda: healthy)
    assert cli.main(["doctor"]) == 0
    assert "all is well" in capsys.readouterr().out
    monkeypatch.setattr(cli, "run_from_env", lambda: broken)
    assert cli.main(["doctor", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["checks"][0]["fix"] == "az ..."
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {"ALERTCAP_DOCTOR_TARGETS": RG}}))
    monkeypatch.delenv("ALERTCAP_DOCTOR_TARGETS", raising=False)
    assert cli.main(["doctor", "--settings", str(settings_file)]) == 1
    import os
    assert os.environ["ALERTCAP_DOCTOR_TARGETS"] == RG
    monkeypatch.delenv("ALERTCAP_DOCTOR_TARGETS")
    with pytest.raises(SystemExit):
        cli.main(["doctor", "--settings", str(tmp_path / "missing.json")])


# --- the scheduled doctor: once per distinct problem ---------------------------------------


def test_each_problem_is_notified_once_and_its_resolution_once() -> None:
    arm = FakeArm()
    clients: Any = FakeClients(_settings())
    healthy = run(clients, arm=arm, probe=lambda u: None)
    assert schedule.notify_changes(clients, healthy).notified is False
    assert clients.sent == []

    arm.watchers.clear()
    broken = run(clients, arm=arm, probe=lambda u: None)
    first = schedule.notify_changes(clients, broken)
    assert (first.new, first.resolved, first.notified) == (1, 0, True)
    assert len(clients.sent) == 1
    mail = clients.sent[0]
    assert "1 new problem" in mail["content"]["subject"]
    assert "az network watcher configure" in mail["content"]["plainText"]
    assert mail["recipients"]["to"] == [{"address": "oncall@example.com"}]

    # same problem, different wording (a count in the message): still not new
    again = run(clients, arm=arm, probe=lambda u: None)
    assert schedule.notify_changes(clients, again).notified is False
    assert len(clients.sent) == 1

    # a second problem appears: only it is new
    arm.storage["properties"]["allowSharedKeyAccess"] = False
    second = schedule.notify_changes(clients, run(clients, arm=arm, probe=lambda u: None))
    assert (second.new, second.open) == (1, 2) and len(clients.sent) == 2
    assert "shared-key" in clients.sent[1]["content"]["plainText"]

    arm.watchers["westeurope"] = {"id": WATCHER, "name": "NetworkWatcher_westeurope",
                                  "location": "westeurope"}
    arm.storage["properties"]["allowSharedKeyAccess"] = True
    resolved = schedule.notify_changes(clients, run(clients, arm=arm, probe=lambda u: None))
    assert (resolved.new, resolved.resolved, resolved.notified) == (0, 2, True)
    assert "2 resolved" in clients.sent[2]["content"]["subject"]
    # the same problem coming back later is new again, as a new ACS operation
    arm.watchers.clear()
    back = schedule.notify_changes(clients, run(clients, arm=arm, probe=lambda u: None))
    assert back.new == 1 and clients.sent[3]["operation_id"] != clients.sent[0]["operation_id"]


def test_a_failed_send_keeps_the_state_so_the_next_run_retries() -> None:
    arm = FakeArm()
    arm.watchers.clear()
    clients: Any = FakeClients(_settings())
    clients.fail_send = True
    report = run(clients, arm=arm, probe=lambda u: None)
    with pytest.raises(Exception, match="ACS down"):
        schedule.notify_changes(clients, report)
    assert clients.blobs == {}
    clients.fail_send = False
    assert schedule.notify_changes(clients, report).notified is True
    state = json.loads(next(iter(clients.blobs.values())))
    assert state["schema"] == "alertcap.doctor-state/1" and len(state["problems"]) == 1


def test_warnings_are_shown_but_not_emailed() -> None:
    arm = FakeArm()
    arm.sessions = 9500
    clients: Any = FakeClients(_settings())
    report = run(clients, arm=arm, probe=lambda u: None)
    assert report.problems and report.healthy
    assert schedule.notify_changes(clients, report).notified is False


def test_plan_is_pure() -> None:
    arm = FakeArm()
    arm.watchers.clear()
    report = _doctor(arm)
    previous = schedule.plan({}, report).state
    snapshot = copy.deepcopy(previous)
    p = schedule.plan(previous, replace(report, checks=()))
    assert previous == snapshot and len(p.resolved) == 1 and p.state == {}
