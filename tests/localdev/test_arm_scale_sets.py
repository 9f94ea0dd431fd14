"""Scale sets on the local ARM through the real SDK clients: the scale set with its
instances and extension profile, and AzureVMSS packet captures with a scope (one real
tcpdump and one blob per captured instance), with the errors for a bad scope."""

from __future__ import annotations

import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import (
    PacketCapture,
    PacketCaptureMachineScope,
    PacketCaptureParameters,
    PacketCaptureStorageLocation,
)
from azure.storage.blob import ContainerClient

from .conftest import STORAGE, SUB, VM1, VMSS, WATCHER, WATCHER_RG
from .pcaputil import EchoServer, read_pcap, talk, talk_from_netns

FAST = {"polling_interval": 0.1}
PREFIX = (f"subscriptions/{SUB}/resourcegroups/demo-rg/providers/microsoft.compute/"
          "virtualmachinescalesets/ss1/virtualmachines/")


def _params(include=None, exclude=None, target: str = VMSS, target_type: str = "AzureVMSS"):
    return PacketCapture(properties=PacketCaptureParameters(
        target=target, target_type=target_type, time_limit_in_seconds=30,
        scope=PacketCaptureMachineScope(include=include, exclude=exclude),
        storage_location=PacketCaptureStorageLocation(storage_id=STORAGE)))


def _get(resources, path: str):
    return resources.send_request(HttpRequest("GET", path, params={"api-version": "2024-07-01"}))


def test_scale_set_instances_and_extension_profile(resources):
    vmss = resources.resources.get_by_id(VMSS, api_version="2024-07-01")
    assert vmss.sku.capacity == 2
    (ext,) = vmss.properties["virtualMachineProfile"]["extensionProfile"]["extensions"]
    assert ext["properties"]["type"] == "NetworkWatcherAgentLinux"
    assert ext["properties"]["provisioningState"] == "Succeeded"
    value = _get(resources, f"{VMSS}/virtualMachines").json()["value"]
    assert [(v["instanceId"], v["id"]) for v in value] == [
        ("0", f"{VMSS}/virtualMachines/0"), ("1", f"{VMSS}/virtualMachines/1")]
    assert value[0]["type"] == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines"
    assert _get(resources, f"{VMSS}/virtualMachines/9").status_code == 404


def test_vmss_capture_writes_one_blob_per_instance(network, blob_store, netns_vm):
    sink_lo, sink_ns = EchoServer(), EchoServer(netns_vm.host_ip)
    name = f"ss-{uuid.uuid4().hex[:8]}"
    try:
        created = network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, name, _params(), **FAST).result(10)
        assert created.target_type == "AzureVMSS"
        assert created.storage_location.storage_path.endswith("/virtualmachinescalesets/ss1")
        talk(sink_lo.host, sink_lo.port, n=2)
        talk_from_netns(netns_vm.netns, sink_ns.host, sink_ns.port, n=2)
        time.sleep(0.3)  # tcpdump -U flushes per packet; give the last ones a moment
        network.packet_captures.begin_stop(WATCHER_RG, WATCHER, name, **FAST).result(10)
        st = network.packet_captures.begin_get_status(WATCHER_RG, WATCHER, name, **FAST).result(10)
        assert st.packet_capture_status == "Stopped"
    finally:
        sink_lo.close()
        sink_ns.close()
        network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    container = ContainerClient.from_connection_string(blob_store.connection_string,
                                                       "network-watcher-logs")
    blobs = [b.name for b in container.list_blobs(name_starts_with=PREFIX)]
    by_instance = {b[len(PREFIX):].split("/", 1)[0]: b for b in blobs}
    assert set(by_instance) == {"0", "1"}, blobs
    for iid, blob in by_instance.items():
        assert blob.rsplit("/", 1)[1].startswith("packetcapture_") and blob.endswith(".cap")
        _nets, _links, packets = read_pcap(container.download_blob(blob).readall())
        port = sink_lo.port if iid == "0" else sink_ns.port
        assert any(port in (p.sport, p.dport) for p in packets), iid
    container.delete_blobs(*blobs)


def test_vmss_scope_include_minus_exclude(network, blob_store):
    name = f"ss-{uuid.uuid4().hex[:8]}"
    created = network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, _params(include=["0", "1"], exclude=["1"]), **FAST).result(10)
    assert created.scope.include == ["0", "1"] and created.scope.exclude == ["1"]
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    container = ContainerClient.from_connection_string(blob_store.connection_string,
                                                       "network-watcher-logs")
    blobs = [b.name for b in container.list_blobs(name_starts_with=PREFIX)]
    assert {b[len(PREFIX):].split("/", 1)[0] for b in blobs} == {"0"}
    container.delete_blobs(*blobs)


@pytest.mark.parametrize(("params", "code"), [
    (_params(include=["7"]), "InvalidPacketCaptureScope"),
    (_params(exclude=["0", "1"]), "InvalidPacketCaptureScope"),
    (_params(include=["0"], target=VM1, target_type="AzureVM"), "InvalidPacketCaptureScope"),
    (_params(target=VM1), "InvalidTarget"),
    (_params(target_type="AzureVMSSX"), "InvalidTargetType"),
])
def test_bad_scope_or_target_is_a_400(network, params, code):
    with pytest.raises(HttpResponseError) as err:
        network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, f"bad-{uuid.uuid4().hex[:6]}", params, **FAST).result(10)
    assert err.value.status_code == 400
    assert err.value.error.code == code


def test_vmss_without_agent_cannot_capture(network, local):
    local.fault(kind="agentMissing", vm="ss1")
    with pytest.raises(HttpResponseError) as err:
        network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, f"na-{uuid.uuid4().hex[:6]}", _params(), **FAST).result(10)
    assert err.value.status_code == 400
