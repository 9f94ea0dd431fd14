"""Standby discovery by tag (issue #14) through the real SDK over HTTPS: the sweep's
`find_standby_vms` and the keeper's `still_standby` against the local ARM, which answers
a resource group's generic resource list and a VM's GET with the VM's tags, as Azure does.

Its own ARM endpoint (no Azurite, no namespace): the VMs here exist only to be told apart.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from activities.standby import find_standby_vms, still_standby
from alertcap.domain.vm import VmRef
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings

from .conftest import REPO, stop_process, wait_for_file

SUB = "22222222-3333-4444-5555-666666666666"
RG, OTHER_RG = "tagged-rg", "elsewhere-rg"
TAG = "alertcap-standby"


def _vm(name: str, rg: str = RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


# name -> tags; the comment says whether the sweep must take it
VMS: dict[str, dict[str, str]] = {
    "tagged": {TAG: "true"},                   # yes
    "shouting": {"Alertcap-Standby": "TRUE"},  # yes: tag names are case-insensitive in ARM
    "opted-out": {TAG: "false"},               # no: the tag's value says no
    "other-value": {TAG: "yes-please"},        # no: only "true" opts in
    "other-tag": {"owner": "alice"},           # no
    "untagged": {},                            # no
}
GROUP = f"/subscriptions/{SUB}/resourceGroups/{RG}"


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    state = tmp_path_factory.mktemp("arm-tags")
    header = secrets.token_urlsafe(16)
    vms = [{"id": _vm(n), "location": "eastus", "osType": "Linux", "tags": t}
           for n, t in VMS.items()]
    # tagged, but in a group nobody listed: only a listed group is searched
    vms.append({"id": _vm("far-away", OTHER_RG), "location": "eastus", "tags": {TAG: "true"}})
    config = {"subscriptionId": SUB, "lroRetryAfterSeconds": 0, "storageAccounts": {},
              "watchers": [{"resourceGroup": "NetworkWatcherRG",
                            "name": "NetworkWatcher_eastus", "location": "eastus"}],
              "vms": vms}
    cfg = state / "config.json"
    cfg.write_text(json.dumps(config))
    log = state / "arm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.arm", "--state-dir", str(state), "--config",
             str(cfg), "--port", "0", "--identity-port", "0"],
            cwd=REPO, env={**os.environ, "LOCALDEV_IDENTITY_HEADER": header},
            stdout=out, stderr=subprocess.STDOUT)
    try:
        yield {**wait_for_file(state / "arm.json", proc, log), "header": header}
    finally:
        stop_process(proc)


def _clients(arm: dict, targets: str) -> Clients:
    return Clients(Settings.from_env({
        "ALERTCAP_ARM_ENDPOINT": arm["armUrl"], "ALERTCAP_CA_BUNDLE": arm["certPath"],
        "ALERTCAP_STANDBY_TARGETS": targets,
        # a setting the app insists on; no capture is made here
        "ALERTCAP_STORAGE_ACCOUNT_ID": f"{GROUP}/providers/Microsoft.Storage/storageAccounts/x"}))


@pytest.fixture(scope="module")
def identity(arm: dict) -> Iterator[None]:
    # DefaultAzureCredential finds the managed identity through these, as in Azure.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDENTITY_ENDPOINT", arm["identityEndpoint"])
        mp.setenv("IDENTITY_HEADER", arm["header"])
        mp.delenv("AZURE_CLIENT_ID", raising=False)
        yield


def _names(vms: list[VmRef]) -> set[str]:
    return {v.name for v in vms}


def test_the_sweep_takes_only_the_vms_tagged_true_in_a_listed_group(arm: dict,
                                                                    identity: None) -> None:
    clients = _clients(arm, GROUP)
    vms, problems = find_standby_vms(clients, clients.settings.standby)
    assert problems == []
    assert _names(vms) == {"tagged", "shouting"}
    assert {v.id.lower() for v in vms} == {_vm("tagged").lower(), _vm("shouting").lower()}


def test_a_listed_vm_needs_no_tag_and_an_unreadable_group_is_a_problem_not_a_crash(
        arm: dict, identity: None) -> None:
    missing = f"/subscriptions/{SUB}/resourceGroups/no-such-rg"
    clients = _clients(arm, f"{missing},{_vm('untagged')},{GROUP}")
    vms, problems = find_standby_vms(clients, clients.settings.standby)
    assert _names(vms) == {"untagged", "tagged", "shouting"}
    assert len(problems) == 1 and problems[0].startswith(missing), problems
    assert "no-such-rg" in problems[0]


def test_the_keeper_lets_go_of_a_vm_whose_tag_is_not_true(arm: dict, identity: None) -> None:
    clients = _clients(arm, GROUP)
    held = {n: still_standby(clients, VmRef.parse(_vm(n))) for n in VMS}
    assert held == {"tagged": True, "shouting": True, "opted-out": False,
                    "other-value": False, "other-tag": False, "untagged": False}
    # tagged true, but its group is not listed
    assert still_standby(clients, VmRef.parse(_vm("far-away", OTHER_RG))) is False


def _get(arm: dict, path: str, **query: str) -> requests.Response:
    token = requests.get(arm["identityEndpoint"], params={
        "api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": arm["header"]}, timeout=5).json()["access_token"]
    return requests.get(f"{arm['armUrl']}{path}", params={"api-version": "2021-04-01", **query},
                        headers={"Authorization": f"Bearer {token}"},
                        verify=arm["certPath"], timeout=5)


def test_tags_on_vm_get_and_in_the_group_listing_as_azure_shows_them(arm: dict) -> None:
    vm = _get(arm, _vm("tagged")).json()
    assert vm["tags"] == {TAG: "true"}
    assert "tags" not in _get(arm, _vm("untagged")).json()
    listed = _get(arm, f"{GROUP}/resources",
                  **{"$filter": "resourceType eq 'Microsoft.Compute/virtualMachines'"}).json()
    by_name = {r["name"]: r for r in listed["value"]}
    assert set(by_name) == set(VMS)
    assert by_name["opted-out"]["tags"] == {TAG: "false"} and "tags" not in by_name["untagged"]
    assert all(r["type"] == "Microsoft.Compute/virtualMachines" for r in listed["value"])


def test_a_tag_filter_finds_by_value_and_leaves_tags_out_as_resources_does(arm: dict) -> None:
    r = _get(arm, f"{GROUP}/resources", **{"$filter": f"tagName eq '{TAG}' and tagValue eq 'true'"})
    assert r.status_code == 200
    assert [x["name"] for x in r.json()["value"]] == ["tagged"]
    assert all("tags" not in x for x in r.json()["value"])


@pytest.mark.parametrize("bad", [
    f"tagName eq '{TAG}' and resourceType eq 'Microsoft.Compute/virtualMachines'",
    "kind eq 'x'",
    "resourceType = 'Microsoft.Compute/virtualMachines'",
])
def test_a_filter_resources_refuses_is_400_invalid_filter(arm: dict, bad: str) -> None:
    r = _get(arm, f"{GROUP}/resources", **{"$filter": bad})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "InvalidFilterInQueryString",
                                 "message": f"Invalid $filter '{bad}' specified in the query string."}
