"""Issue #17, the doctor, on the real app and the local stack: `GET /api/doctor` (function
key, JSON or text) and `python -m alertcap doctor` say all is well on a healthy stack,
find each problem seeded through the local ARM's doors and print its fix; the scheduled
doctor's notification goes through Azurite (its state) and the local ACS endpoint (the
email), once per problem and once on resolution.

The seeded problems are global (a region without its watcher, a storage account that
refuses shared keys, a removed grant): these tests first wait for every background run of
the session to end, hold the fault lock, and reset every door they change.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alertcap.doctor import run
from alertcap.doctor.schedule import notify_changes
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings

from .scenarios import EXCLUSIVE, QUEUES, Runs
from .stack import SUBSCRIPTION, Stack, http

# The first test's setup waits for every background scenario (up to 600 s on a busy
# machine): the per-test limit must cover that wait.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
VM_RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/demo-rg"
STORAGE = "devstoreaccount1"


@pytest.fixture(scope="module")
def quiet(stack: Stack, runs: Runs) -> Iterator[Stack]:
    """The stack with no run in flight: every background scenario has ended."""
    for name in [s.__name__ for q in QUEUES.values() for s in q] + [
            s.__name__ for s in EXCLUSIVE]:
        with contextlib.suppress(Exception):  # that scenario's own test reports it
            runs.get(name, timeout=600)
    with stack.fault_lock:
        _reset(stack)
        yield stack
        _reset(stack)


def _reset(stack: Stack) -> None:
    stack.arm_clear_faults()
    for method, path in (("DELETE", "/_localdev/storageAccounts"),
                         ("DELETE", "/_localdev/permissions")):
        r = stack.arm_call(method, path)
        assert r.status == 204, (path, r.status, r.body)


def _door(stack: Stack, method: str, path: str, body: Any) -> None:
    r = stack.arm_call(method, path, body)
    assert r.status in (200, 201), (path, r.status, r.body)


def _doctor(stack: Stack, query: str = "", headers: dict[str, str] | None = None) -> Any:
    return http("GET", f"{stack.base}/api/doctor?code={stack.function_key}{query}",
                headers=headers)


def _problems(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["check"], c["code"]): c for c in body["checks"] if c["status"] != "ok"}


def test_a_healthy_stack_is_all_well(quiet: Stack) -> None:
    r = _doctor(quiet)
    assert r.status == 200, r.body
    assert r.body["ok"] is True and r.body["counts"]["fail"] == 0, _problems(r.body)
    assert r.body["counts"]["warn"] == 0, _problems(r.body)
    checked = {(c["check"], c["subject"].rsplit("/", 1)[-1]) for c in r.body["checks"]}
    for vm in ("vm1", "vm2"):
        assert ("agent", vm) in checked and ("permissions", vm) in checked
    assert {("watcher", "eastus"), ("storage", STORAGE), ("capture-limit",
            "NetworkWatcher_eastus"), ("channel:email", "ALERTCAP_EMAIL_*")} <= checked
    text = _doctor(quiet, headers={"Accept": "text/plain"})
    assert text.status == 200 and "all is well" in text.body
    assert text.headers["Content-Type"].startswith("text/plain")


def test_the_route_needs_the_function_key_and_refuses_an_unknown_format(quiet: Stack) -> None:
    r = http("GET", f"{quiet.base}/api/doctor")
    assert r.status == 401
    bad = _doctor(quiet, "&format=xml")
    assert bad.status == 400 and bad.body["error"]["code"] == "BadRequest"


def _fault(rule: dict[str, Any]) -> Callable[[Stack], None]:
    return lambda s: s.arm_fault(rule) and None


def _storage(change: dict[str, Any]) -> Callable[[Stack], None]:
    return lambda s: _door(s, "PATCH", f"/_localdev/storageAccounts/{STORAGE}", change)


def _revoke(scope: str, action: str) -> Callable[[Stack], None]:
    return lambda s: _door(s, "POST", "/_localdev/permissions",
                           {"scope": scope, "removeActions": [action]})


SEEDED = {
    "agent missing": (_fault({"kind": "agentMissing", "vm": "vm1"}), "agent", "agent-missing",
                      "vm1", "az vm extension set --subscription"),
    "agent failed": (_fault({"kind": "agentState", "vm": "vm2", "provisioningState":
                             "Failed"}), "agent", "agent-state-failed", "vm2",
                     "168.63.129.16"),
    "agent outdated": (_fault({"kind": "agentState", "vm": "vm2", "typeHandlerVersion":
                               "1.3"}), "agent", "agent-outdated", "vm2", "--version 1.4"),
    "no watcher": (_fault({"kind": "watcherAbsent", "location": "eastus"}), "watcher",
                   "watcher-missing", "eastus",
                   "az network watcher configure --subscription"),
    "shared key off": (_storage({"allowSharedKeyAccess": False}), "storage",
                       "shared-key-disabled", STORAGE, "--allow-shared-key-access true"),
    "old TLS": (_storage({"minimumTlsVersion": "TLS1_0"}), "storage", "tls-minimum", STORAGE,
                "--min-tls-version TLS1_2"),
    "premium": (_storage({"sku": "Premium_LRS"}), "storage", "storage-premium", STORAGE,
                "Standard_LRS"),
    "other region": (_storage({"location": "westus"}), "storage", "storage-region", "vm1",
                     "ALERTCAP_STORAGE_ACCOUNT_ID"),
    "firewall": (_storage({"defaultAction": "Deny"}), "storage", "storage-firewall", STORAGE,
                 "az storage account network-rule add"),
    "no capture write": (
        _revoke(f"/subscriptions/{SUBSCRIPTION}",
                "Microsoft.Network/networkWatchers/packetCaptures/write"),
        "permissions", "missing:microsoft.network/networkwatchers/packetcaptures/write",
        "NetworkWatcher_eastus", "az role assignment create"),
    "no VM write": (
        _revoke(f"{VM_RG}/providers/Microsoft.Compute/virtualMachines/vm1",
                "Microsoft.Compute/virtualMachines/write"),
        "permissions", "missing:microsoft.compute/virtualmachines/write", "vm1",
        "az role assignment create"),
    "no SAS for the account": (
        _revoke(f"/subscriptions/{SUBSCRIPTION}",
                "Microsoft.Storage/storageAccounts/listServiceSas/action"),
        "permissions", "missing:microsoft.storage/storageaccounts/listservicesas/action",
        STORAGE, "az role assignment create"),
}


@pytest.mark.parametrize("case", list(SEEDED))
def test_each_seeded_problem_is_found_with_its_fix(quiet: Stack, case: str) -> None:
    seed, check, code, subject, fix = SEEDED[case]
    seed(quiet)
    try:
        r = _doctor(quiet)
        text = _doctor(quiet, "&format=text")
    finally:
        _reset(quiet)
    matching = [c for c in r.body["checks"] if (c["check"], c.get("code")) == (check, code)]
    found = next((c for c in matching
                  if c["subject"].rsplit("/", 1)[-1].lower() == subject.lower()), None)
    assert found is not None, (case, _problems(r.body))
    # a failure fails the route (curl -f after a deployment); a warning alone does not
    assert r.status == (200 if found["status"] == "warn" else 503), (r.status, r.body)
    assert r.body["ok"] is (found["status"] == "warn")
    assert fix in found["fix"], found
    assert fix in text.body and code.split(":")[0] in json.dumps(r.body)
    # the fix is printed under the problem in the table
    assert f"fix: {found['fix'].splitlines()[0]}" in text.body
    # and the stack is healthy again once the door is reset
    assert _doctor(quiet).status == 200


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "alertcap", "doctor", "--settings",
         str(stack.state / "app.settings.json"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_cli_after_deployment(quiet: Stack) -> None:
    healthy = _cli(quiet)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "all is well" in healthy.stdout
    quiet.arm_fault({"kind": "watcherAbsent", "location": "eastus"})
    try:
        broken = _cli(quiet, "--json")
    finally:
        _reset(quiet)
    assert broken.returncode == 1, broken.stderr
    report = json.loads(broken.stdout)
    watcher = next(c for c in report["checks"] if c["check"] == "watcher")
    assert watcher["status"] == "fail" and "--locations eastus" in watcher["fix"]
    for secret in quiet.secrets().values():
        assert secret not in broken.stdout + broken.stderr + healthy.stdout


def test_the_schedule_notifies_a_problem_once_and_its_resolution_once(
        quiet: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    values = json.loads((quiet.state / "app.settings.json").read_text())["Values"]
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER"):  # the credential reads these
        monkeypatch.setenv(name, values[name])
    clients = Clients(Settings.from_env(values))

    def doctor_mails() -> list[dict[str, Any]]:
        return [m for m in quiet.inbox() if "x-alertcap-doctor" in (m.get("headers") or {})]

    before = len(doctor_mails())
    assert notify_changes(clients, run(clients)).notified is False
    quiet.arm_fault({"kind": "agentMissing", "vm": "vm1"})
    try:
        first = notify_changes(clients, run(clients))
        again = notify_changes(clients, run(clients))
    finally:
        _reset(quiet)
    assert (first.new, first.notified, again.notified) == (1, True, False)
    mails = doctor_mails()[before:]
    assert len(mails) == 1, [m.get("subject") for m in mails]
    assert "1 new problem" in mails[0]["subject"]
    assert "az vm extension set" in mails[0]["plainText"]
    resolved = notify_changes(clients, run(clients))
    assert (resolved.resolved, resolved.notified) == (1, True)
    mails = doctor_mails()[before:]
    assert len(mails) == 2 and "1 resolved" in mails[1]["subject"]
    assert notify_changes(clients, run(clients)).notified is False
    assert len(doctor_mails()) == before + 2
