"""What a doctor (and the agent check) reads from the local ARM, through the real SDK
clients over HTTPS: VM extensions and instance views as Compute answers them, the
permissions API, storage account properties, a region without Network Watcher, and the
per-call latency setting."""

from __future__ import annotations

import statistics
import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import (
    PacketCapture,
    PacketCaptureParameters,
    PacketCaptureStorageLocation,
)

from .conftest import (
    RG,
    SEEDED_ACTIONS,
    SEEDED_DATA_ACTIONS,
    STORAGE,
    SUB,
    VM1,
    VM3,
    WATCHER,
    WATCHER_RG,
)

COMPUTE_API = "2024-07-01"
FAST = {"polling_interval": 0.1}


def _get(client, path: str, **query: str):
    """A GET through the SDK client's own pipeline (bearer token, TLS, retries)."""
    request = HttpRequest("GET", path, params={"api-version": COMPUTE_API, **query})
    return client.send_request(request)


def _capture(target: str = VM1) -> PacketCapture:
    return PacketCapture(properties=PacketCaptureParameters(
        target=target, time_limit_in_seconds=30,
        storage_location=PacketCaptureStorageLocation(storage_id=STORAGE)))


def _create(network, target: str = VM1, **kw):
    name = f"w-{uuid.uuid4().hex[:8]}"
    return name, network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, kw.pop("params", None) or _capture(target), **FAST).result(10)


# ---- the agent, as Compute shows it ----------------------------------------------------
def test_vm_extensions_list_shows_agent_version_and_state(resources):
    r = _get(resources, f"{VM1}/extensions")
    assert r.status_code == 200
    (ext,) = r.json()["value"]
    assert ext["name"] == "AzureNetworkWatcherExtension"
    assert ext["type"] == "Microsoft.Compute/virtualMachines/extensions"
    props = ext["properties"]
    assert (props["publisher"], props["type"]) == (
        "Microsoft.Azure.NetworkWatcher", "NetworkWatcherAgentLinux")
    assert (props["typeHandlerVersion"], props["provisioningState"]) == ("1.4", "Succeeded")


def test_vm_without_agent_lists_no_extension_and_instance_view_has_none(resources):
    assert _get(resources, f"{VM3}/extensions").json() == {"value": []}
    view = _get(resources, VM3, **{"$expand": "instanceView"}).json()["properties"]["instanceView"]
    assert "extensions" not in view
    assert view["vmAgent"]["extensionHandlers"] == []
    # Without $expand there is no instance view, as Compute answers.
    assert "instanceView" not in _get(resources, VM3).json()["properties"]


def test_failed_old_agent_shows_in_extension_and_instance_view_and_blocks_capture(
        resources, network, local):
    local.fault(kind="agentState", vm="vm1", provisioningState="Failed", typeHandlerVersion="1.3")
    (ext,) = _get(resources, f"{VM1}/extensions", **{"$expand": "instanceView"}).json()["value"]
    assert ext["properties"]["provisioningState"] == "Failed"
    assert ext["properties"]["typeHandlerVersion"] == "1.3"
    view = _get(resources, VM1, **{"$expand": "instanceView"}).json()["properties"]["instanceView"]
    (ext_view,) = view["extensions"]
    assert ext_view["type"] == "Microsoft.Azure.NetworkWatcher.NetworkWatcherAgentLinux"
    assert ext_view["statuses"][0]["code"] == "ProvisioningState/failed"
    assert ext_view["statuses"][0]["level"] == "Error"
    with pytest.raises(HttpResponseError) as err:
        _create(network)
    assert err.value.status_code == 400
    local.clear()
    (ext,) = _get(resources, f"{VM1}/extensions").json()["value"]
    assert (ext["properties"]["provisioningState"], ext["properties"]["typeHandlerVersion"]) == (
        "Succeeded", "1.4")


def test_capture_on_vm_without_agent_is_a_400_naming_the_extension(network):
    with pytest.raises(HttpResponseError) as err:
        _create(network, VM3)
    assert err.value.status_code == 400
    assert err.value.error.code == "AzureNetworkWatcherExtensionNotInstalled"


def test_agent_state_rule_needs_a_vm_and_a_state(local):
    r = local.call("POST", "faults", {"kind": "agentState", "vm": "vm1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFaultRule"


# ---- permissions ---------------------------------------------------------------------------
def _permissions(resources, scope: str):
    request = HttpRequest("GET", f"{scope}/providers/Microsoft.Authorization/permissions",
                          params={"api-version": "2022-04-01"})
    return resources.send_request(request)


def test_permissions_at_a_resource_group_inherit_the_subscription_grant(resources):
    r = _permissions(resources, f"/subscriptions/{SUB}/resourceGroups/{RG}")
    assert r.status_code == 200
    (grant,) = r.json()["value"]
    assert grant == {"actions": SEEDED_ACTIONS, "notActions": [],
                     "dataActions": SEEDED_DATA_ACTIONS, "notDataActions": []}
    on_storage = _permissions(resources, STORAGE).json()["value"]
    assert on_storage == [grant]


def test_removing_an_action_shows_at_every_scope_below_until_reset(resources, local):
    removed = "Microsoft.Network/networkWatchers/packetCaptures/write"
    r = local.call("POST", "permissions", {"scope": f"/subscriptions/{SUB}/resourceGroups/{RG}",
                                           "removeActions": [removed]})
    assert r.status_code == 200, r.text
    (grant,) = _permissions(resources, f"/subscriptions/{SUB}/resourceGroups/{RG}").json()["value"]
    assert removed not in grant["actions"]
    assert "Microsoft.Network/networkWatchers/read" in grant["actions"]
    local.call("DELETE", "permissions").raise_for_status()
    (grant,) = _permissions(resources, f"/subscriptions/{SUB}/resourceGroups/{RG}").json()["value"]
    assert removed in grant["actions"]


def test_permissions_of_an_unknown_resource_group_is_404(resources):
    r = _permissions(resources, f"/subscriptions/{SUB}/resourceGroups/nope-rg")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "ResourceGroupNotFound"


# ---- storage account properties ----------------------------------------------------------
def test_storage_account_properties_as_storage_answers(resources, blob_store):
    acct = resources.resources.get_by_id(STORAGE, api_version="2023-05-01")
    assert acct.location == "eastus"
    assert acct.sku.name == "Standard_LRS" and acct.sku.tier == "Standard"
    assert acct.properties["allowSharedKeyAccess"] is True
    assert acct.properties["minimumTlsVersion"] == "TLS1_2"
    blob = acct.properties["primaryEndpoints"]["blob"]
    assert blob_store.connection_string.split("BlobEndpoint=")[1].rstrip(";/") in blob


def test_storage_door_changes_properties_and_shared_key_off_fails_the_capture(
        resources, network, local):
    r = local.call("PATCH", "storageAccounts/capstore",
                   {"allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_0",
                    "sku": "Premium_LRS"})
    assert r.status_code == 200, r.text
    acct = resources.resources.get_by_id(STORAGE, api_version="2023-05-01")
    assert acct.properties["allowSharedKeyAccess"] is False
    assert acct.properties["minimumTlsVersion"] == "TLS1_0"
    assert (acct.sku.name, acct.sku.tier) == ("Premium_LRS", "Premium")
    name, _created = _create(network)
    deadline = time.monotonic() + 10
    while True:
        st = network.packet_captures.begin_get_status(WATCHER_RG, WATCHER, name, **FAST).result(10)
        if st.packet_capture_status == "Error" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert st.packet_capture_status == "Error"
    assert st.packet_capture_error == ["StorageFailed"]
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)


def test_storage_door_refuses_unknown_fields(local):
    r = local.call("PATCH", "storageAccounts/capstore", {"allowSharedKeyAccess": "no"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidStorageChange"


# ---- a region without Network Watcher -------------------------------------------------------
def test_watcher_absent_in_region_until_cleared(network, local):
    local.fault(kind="watcherAbsent", location="eastus")
    assert [w.location for w in network.network_watchers.list_all()] == ["westus"]
    with pytest.raises(ResourceNotFoundError):
        network.network_watchers.get(WATCHER_RG, WATCHER)
    local.clear()
    assert network.network_watchers.get(WATCHER_RG, WATCHER).location == "eastus"


# ---- latency --------------------------------------------------------------------------------
def _median_get_seconds(network, n: int = 3) -> float:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        network.network_watchers.get(WATCHER_RG, WATCHER)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def test_latency_door_delays_every_arm_call(network, local):
    network.network_watchers.get(WATCHER_RG, WATCHER)  # token and TLS session made
    fast = _median_get_seconds(network)
    r = local.call("PUT", "latency", {"milliseconds": 150})
    assert r.status_code == 200 and r.json() == {"milliseconds": 150.0}
    slow = _median_get_seconds(network)
    assert slow >= 0.15 > fast, (fast, slow)
    assert local.call("GET", "latency").json() == {"milliseconds": 150.0}


def test_latency_door_refuses_nonsense(local):
    for bad in (-1, "150", True, 10**6):
        r = local.call("PUT", "latency", {"milliseconds": bad})
        assert r.status_code == 400, bad
