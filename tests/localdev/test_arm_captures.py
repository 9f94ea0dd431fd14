"""Packet captures end to end: real SDK pollers, real tcpdump, real pcap in Azurite."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network.models import (
    PacketCapture,
    PacketCaptureFilter,
    PacketCaptureParameters,
    PacketCaptureStorageLocation,
)
from azure.storage.blob import BlobClient

from .conftest import STORAGE, VM1, VM2, VM4, VM4_IP, WATCHER, WATCHER_RG
from .pcaputil import EchoServer, read_pcap, talk, talk_from_netns

FAST = {"polling_interval": 0.1}


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _params(target: str = VM1, **kw) -> PacketCapture:
    storage = kw.pop("storage", PacketCaptureStorageLocation(storage_id=STORAGE))
    return PacketCapture(
        properties=PacketCaptureParameters(target=target, storage_location=storage, **kw)
    )


def _status(network, name: str):
    return network.packet_captures.begin_get_status(WATCHER_RG, WATCHER, name, **FAST).result(10)


def _wait_status(network, name: str, wanted: set[str], timeout: float = 10):
    deadline = time.monotonic() + timeout
    while True:
        st = _status(network, name)
        if st.packet_capture_status in wanted or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def _blob_packets(blob_store, storage_path: str):
    container = "network-watcher-logs"
    name = storage_path.split(f"/{container}/", 1)[1]
    blob = BlobClient.from_connection_string(blob_store.connection_string, container, name)
    return read_pcap(blob.download_blob().readall())


def _tcpdumps_under(state: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "tcpdump" in line and str(state) in line]


@pytest.fixture
def echo():
    srv = EchoServer()
    yield srv
    srv.close()


def test_capture_create_running_stop_uploads_real_pcap(network, blob_store, echo):
    name = _name()
    created = network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, _params(time_limit_in_seconds=60), **FAST
    ).result(10)
    assert created.provisioning_state == "Succeeded"
    assert created.target == VM1
    path = created.storage_location.storage_path
    assert "/network-watcher-logs/subscriptions/" in path
    assert "/resourcegroups/demo-rg/providers/microsoft.compute/virtualmachines/vm1/" in path
    assert path.rsplit("/", 1)[1].startswith("packetcapture_") and path.endswith(".cap")

    st = _status(network, name)
    assert st.packet_capture_status == "Running"
    assert st.capture_start_time is not None
    talk(echo.host, echo.port, n=3)
    assert [c.name for c in network.packet_captures.list(WATCHER_RG, WATCHER)].count(name) == 1

    network.packet_captures.begin_stop(WATCHER_RG, WATCHER, name, **FAST).result(10)
    st = _status(network, name)
    assert (st.packet_capture_status, st.stop_reason) == ("Stopped", "Manual")
    assert st.packet_capture_error == []

    linktype, _, packets = _blob_packets(blob_store, path)
    assert linktype == 1
    ours = [p for p in packets if echo.port in (p.sport, p.dport)]
    assert len(ours) >= 3 * 6  # handshake, data, echo, teardown per connection
    assert {p.proto for p in ours} == {6}

    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    assert name not in [c.name for c in network.packet_captures.list(WATCHER_RG, WATCHER)]
    # Deleting the session keeps the blob.
    assert _blob_packets(blob_store, path)[2]


def test_time_limit_stops_with_time_exceeded(network):
    name = _name()
    network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, _params(time_limit_in_seconds=1), **FAST
    ).result(10)
    st = _wait_status(network, name, {"Stopped", "Error"})
    assert (st.packet_capture_status, st.stop_reason) == ("Stopped", "TimeExceeded")
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)


def test_total_bytes_per_session_ends_session(network, echo):
    name = _name()
    network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, _params(total_bytes_per_session=3000), **FAST
    ).result(10)
    talk(echo.host, echo.port, n=5, payload=b"z" * 1000)
    st = _wait_status(network, name, {"Stopped", "Error"})
    assert (st.packet_capture_status, st.stop_reason) == ("Stopped", "SessionBytesExceeded")
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)


def _two_servers_captured(network, blob_store, params: PacketCapture, keep: EchoServer,
                          drop: EchoServer) -> tuple[int, list]:
    """Capture with PARAMS while both servers get traffic: (snaplen, packets)."""
    try:
        name = _name()
        cap = network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, name, params, **FAST).result(10)
        talk(keep.host, keep.port, n=2)
        talk(drop.host, drop.port, n=2)
        network.packet_captures.begin_stop(WATCHER_RG, WATCHER, name, **FAST).result(10)
        _, snaplen, packets = _blob_packets(blob_store, cap.storage_location.storage_path)
        network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
        return snaplen, packets
    finally:
        keep.close()
        drop.close()


def test_filter_keeps_only_matching_port_and_snaplen(network, blob_store):
    keep, drop = EchoServer(), EchoServer()
    snaplen, packets = _two_servers_captured(network, blob_store, _params(
        bytes_to_capture_per_packet=80,
        filters=[PacketCaptureFilter(protocol="TCP", local_port=f"{keep.port};1-2")],
    ), keep, drop)
    assert packets, "the kept port's traffic must be there"
    assert all(keep.port in (p.sport, p.dport) for p in packets)
    assert snaplen == 80 and max(p.caplen for p in packets) <= 80
    assert any(p.length > 80 for p in packets)  # the data packets were truncated


def test_a_loopback_vm_records_its_own_address_only(network, blob_store):
    """Loopback also carries the stack's own traffic (blob uploads of other captures among
    it): a VM there records only the traffic of its own address, as a NIC would."""
    own, other = EchoServer(VM4_IP), EchoServer()
    _, packets = _two_servers_captured(
        network, blob_store, _params(VM4, filters=[PacketCaptureFilter(protocol="TCP")]),
        own, other)
    assert packets, "the VM's own traffic must be there"
    assert all(VM4_IP in (p.src, p.dst) for p in packets)
    assert {own.port} == {p.sport for p in packets} & {own.port, other.port}


def test_capture_on_netns_vm_and_vm_local_file(network, blob_store, netns_vm, arm):
    srv = EchoServer(netns_vm.host_ip)
    try:
        name = _name()
        cap = network.packet_captures.begin_create(
            WATCHER_RG,
            WATCHER,
            name,
            _params(
                target=VM2,
                storage=PacketCaptureStorageLocation(
                    storage_id=STORAGE, file_path=f"/var/captures/{name}.cap"
                ),
                filters=[PacketCaptureFilter(protocol="TCP", remote_ip_address=netns_vm.host_ip)],
            ),
            **FAST,
        ).result(10)
        talk_from_netns(netns_vm.netns, srv.host, srv.port, n=2)
        network.packet_captures.begin_stop(WATCHER_RG, WATCHER, name, **FAST).result(10)
        _, _, packets = _blob_packets(blob_store, cap.storage_location.storage_path)
        pairs = {(p.src, p.dst) for p in packets}
        assert pairs == {(netns_vm.vm_ip, netns_vm.host_ip), (netns_vm.host_ip, netns_vm.vm_ip)}
        local = arm["state"] / "vms" / "vm2" / "var" / "captures" / f"{name}.cap"
        assert read_pcap(local.read_bytes())[2] == packets
        network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    finally:
        srv.close()


def test_injected_capture_error(network, local):
    local.fault(kind="captureError", error="AgentStopped", afterSeconds=0.1, count=1)
    name = _name()
    network.packet_captures.begin_create(WATCHER_RG, WATCHER, name, _params(), **FAST).result(10)
    st = _wait_status(network, name, {"Error", "Stopped"})
    assert st.packet_capture_status == "Error"
    assert st.packet_capture_error == ["AgentStopped"]
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)


def test_tcpdump_failure_is_capture_failed(network, local):
    # ARM accepts any uint32 bytes-per-packet, tcpdump refuses this snap length:
    # the session is created, then ends in Error as a failing agent would report it.
    name = _name()
    network.packet_captures.begin_create(
        WATCHER_RG, WATCHER, name, _params(bytes_to_capture_per_packet=4294967295), **FAST
    ).result(10)
    st = _wait_status(network, name, {"Error", "Stopped"})
    assert (st.packet_capture_status, st.packet_capture_error) == ("Error", ["CaptureFailed"])
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)


def test_missing_agent_fails_create(network, resources, local):
    local.fault(kind="agentMissing", vm="vm1")
    ext = VM1 + "/extensions/AzureNetworkWatcherExtension"
    from azure.core.exceptions import ResourceNotFoundError

    with pytest.raises(ResourceNotFoundError):
        resources.resources.get_by_id(ext, api_version="2024-07-01")
    with pytest.raises(HttpResponseError) as err:
        network.packet_captures.begin_create(WATCHER_RG, WATCHER, _name(), _params(), **FAST)
    assert err.value.status_code == 400
    assert err.value.error.code == "AzureNetworkWatcherExtensionNotInstalled"
    local.clear()
    assert resources.resources.get_by_id(ext, api_version="2024-07-01").name


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"time_limit_in_seconds": 18001}, "InvalidRequestFormat"),
        (
            {"filters": [PacketCaptureFilter(protocol="TCP", local_port="70000")]},
            "InvalidPacketCaptureFilter",
        ),
        ({"filters": [PacketCaptureFilter(protocol="ICMP")]}, "InvalidPacketCaptureFilter"),
        (
            {"filters": [PacketCaptureFilter(remote_ip_address="10.0.0.300")]},
            "InvalidPacketCaptureFilter",
        ),
        ({"target": VM1 + "x"}, "InvalidTarget"),
        (
            {"storage": PacketCaptureStorageLocation(file_path="/var/captures/x.txt")},
            "InvalidFilePath",
        ),
    ],
)
def test_invalid_capture_is_400(network, kw, code):
    with pytest.raises(HttpResponseError) as err:
        network.packet_captures.begin_create(WATCHER_RG, WATCHER, _name(), _params(**kw), **FAST)
    assert err.value.status_code == 400
    assert err.value.error.code == code


def test_delete_running_capture_leaves_no_tcpdump(network, arm):
    name = _name()
    network.packet_captures.begin_create(WATCHER_RG, WATCHER, name, _params(), **FAST).result(10)
    assert _tcpdumps_under(arm["state"])
    network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    assert not _tcpdumps_under(arm["state"])
