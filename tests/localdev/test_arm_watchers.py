"""Network watchers, generic resources, errors and auth through the real SDK clients."""

from __future__ import annotations

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from .conftest import RG, SUB, VM1, VM3, WATCHER, WATCHER_RG


def test_watcher_get_list_and_list_all(network):
    w = network.network_watchers.get(WATCHER_RG, WATCHER)
    assert (w.name, w.location, w.provisioning_state) == (WATCHER, "eastus", "Succeeded")
    assert w.id.endswith(
        f"/resourceGroups/{WATCHER_RG}/providers/Microsoft.Network/networkWatchers/{WATCHER}"
    )
    assert [x.name for x in network.network_watchers.list(WATCHER_RG)] == [WATCHER]
    everywhere = {x.name: x.location for x in network.network_watchers.list_all()}
    assert everywhere == {WATCHER: "eastus", "nw-west": "westus"}


def test_unknown_watcher_is_arm_404(network):
    with pytest.raises(ResourceNotFoundError) as err:
        network.network_watchers.get(WATCHER_RG, "NetworkWatcher_mars")
    assert err.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as err:
        network.network_watchers.get("no-such-rg", WATCHER)
    assert err.value.error.code == "ResourceGroupNotFound"


def test_404_body_is_arm_error_json(arm, token):
    r = requests.get(
        f"{arm['armUrl']}/subscriptions/{SUB}/resourceGroups/{WATCHER_RG}/providers/"
        "Microsoft.Network/networkWatchers/nope?api-version=2026-03-01",
        headers={"Authorization": f"Bearer {token}"},
        verify=arm["certPath"],
        timeout=5,
    )
    assert r.status_code == 404
    assert set(r.json()["error"]) == {"code", "message"}
    assert r.json()["error"]["code"] == "ResourceNotFound"


def test_missing_api_version_is_400(arm, token):
    r = requests.get(
        f"{arm['armUrl']}/subscriptions/{SUB}/providers/Microsoft.Network/networkWatchers",
        headers={"Authorization": f"Bearer {token}"},
        verify=arm["certPath"],
        timeout=5,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "MissingApiVersionParameter"


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token-we-issued", "Basic abc"])
def test_bearer_token_we_issued_is_required(arm, auth):
    headers = {"Authorization": auth} if auth else {}
    r = requests.get(
        f"{arm['armUrl']}/subscriptions/{SUB}/providers/Microsoft.Network/networkWatchers"
        "?api-version=2026-03-01",
        headers=headers,
        verify=arm["certPath"],
        timeout=5,
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] in {"AuthenticationFailed", "InvalidAuthenticationToken"}


@pytest.mark.parametrize(("header", "status"), [(None, 400), ("wrong", 401)])
def test_identity_endpoint_checks_its_header(arm, header, status):
    r = requests.get(
        arm["identityEndpoint"],
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": header} if header else {},
        timeout=5,
    )
    assert r.status_code == status


def test_default_azure_credential_gets_our_token(arm, monkeypatch):
    from azure.identity import DefaultAzureCredential

    monkeypatch.setenv("IDENTITY_ENDPOINT", arm["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", arm["header"])
    for var in (
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    tok = DefaultAzureCredential().get_token("https://management.azure.com/.default")
    assert tok.token and tok.expires_on > 0


def test_vm_through_generic_resources(resources):
    vm = resources.resources.get_by_id(VM1, api_version="2024-07-01")
    assert vm.location == "eastus"
    assert vm.properties["storageProfile"]["osDisk"]["osType"] == "Linux"
    assert vm.properties["osProfile"]["computerName"] == "vm1"
    (ext,) = vm["resources"]
    assert ext["properties"]["publisher"] == "Microsoft.Azure.NetworkWatcher"
    assert ext["properties"]["type"] == "NetworkWatcherAgentLinux"
    assert ext["properties"]["typeHandlerVersion"] == "1.4"
    assert ext["properties"]["provisioningState"] == "Succeeded"
    got = resources.resources.get_by_id(
        VM1 + "/extensions/AzureNetworkWatcherExtension", api_version="2024-07-01"
    )
    assert got.properties["type"] == "NetworkWatcherAgentLinux"


def test_unknown_vm_is_404(resources):
    with pytest.raises(ResourceNotFoundError) as err:
        resources.resources.get_by_id(VM1[:-1] + "9", api_version="2024-07-01")
    assert err.value.error.code == "ResourceNotFound"


def test_install_agent_extension(resources):
    ext_id = VM3 + "/extensions/AzureNetworkWatcherExtension"
    with pytest.raises(ResourceNotFoundError):
        resources.resources.get_by_id(ext_id, api_version="2024-07-01")
    assert resources.resources.get_by_id(VM3, api_version="2024-07-01")["resources"] == []
    # The wrong flavour fails the way Azure reports it.
    bad = resources.resources.begin_create_or_update_by_id(
        ext_id,
        {
            "location": "eastus",
            "properties": {
                "publisher": "Microsoft.Azure.NetworkWatcher",
                "type": "NetworkWatcherAgentLinux",
                "typeHandlerVersion": "1.4",
                "autoUpgradeMinorVersion": True,
            },
        },
        api_version="2024-07-01",
        polling_interval=0.05,
    )
    with pytest.raises(HttpResponseError) as err:
        bad.result(timeout=10)
    assert "VMExtensionHandlerNonTransientError" in str(err.value)
    poller = resources.resources.begin_create_or_update_by_id(
        ext_id,
        {
            "location": "eastus",
            "properties": {
                "publisher": "Microsoft.Azure.NetworkWatcher",
                "type": "NetworkWatcherAgentWindows",
                "typeHandlerVersion": "1.4",
                "autoUpgradeMinorVersion": True,
            },
        },
        api_version="2024-07-01",
        polling_interval=0.05,
    )
    ext = poller.result(timeout=10)
    assert ext.properties["provisioningState"] == "Succeeded"
    assert resources.resources.get_by_id(VM3, api_version="2024-07-01")["resources"][0]["name"] == (
        "AzureNetworkWatcherExtension"
    )
    resources.resources.begin_delete_by_id(
        ext_id, api_version="2024-07-01", polling_interval=0.05
    ).result()
    with pytest.raises(ResourceNotFoundError):
        resources.resources.get_by_id(ext_id, api_version="2024-07-01")


def test_rg_of_vm_is_known(resources):
    assert resources.resources.get_by_id(VM1, api_version="2024-07-01").id.split("/")[4] == RG
