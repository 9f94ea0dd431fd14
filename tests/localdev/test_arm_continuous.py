"""Continuous (ring-buffer) captures on the local ARM through the real SDK: tcpdump
rotates real files, each closed file becomes its own blob at Network Watcher's path, the
oldest are deleted past fileCount; and Azure's validation errors."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.network.models import (
    PacketCapture,
    PacketCaptureFilter,
    PacketCaptureParameters,
    PacketCaptureSettings,
    PacketCaptureStorageLocation,
)
from azure.storage.blob import ContainerClient

from .conftest import STORAGE, SUB, VM1, WATCHER, WATCHER_RG
from .pcaputil import EchoServer, read_pcap, talk

FAST = {"polling_interval": 0.1}
VM1_PREFIX = (f"subscriptions/{SUB}/resourcegroups/demo-rg/providers/microsoft.compute/"
              "virtualmachines/vm1/")


def _params(settings: PacketCaptureSettings | None = None, port: int | None = None,
            **storage) -> PacketCapture:
    # Only the test's own connections: lo also carries the ARM and Azurite traffic.
    filters = [PacketCaptureFilter(protocol="TCP", remote_port=str(port))] if port else None
    return PacketCapture(properties=PacketCaptureParameters(
        target=VM1, continuous_capture=True, filters=filters,
        capture_settings=settings or PacketCaptureSettings(
            file_count=2, file_size_in_bytes=20000, session_time_limit_in_seconds=60),
        storage_location=PacketCaptureStorageLocation(storage_id=STORAGE, **storage)))


def _vm1_blobs(container: ContainerClient) -> set[str]:
    if not container.exists():  # Network Watcher makes it on the first capture
        return set()
    return {b.name for b in container.list_blobs(name_starts_with=VM1_PREFIX)}


def _first_connection(port: int) -> int:
    """One echo exchange; returns the client's port, to find it in a capture later."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"first")
        c.recv(16)
        return int(c.getsockname()[1])


def test_ring_keeps_the_newest_file_count_blobs(network, blob_store):
    container = ContainerClient.from_connection_string(blob_store.connection_string,
                                                       "network-watcher-logs")
    before = _vm1_blobs(container)
    name = f"ring-{uuid.uuid4().hex[:8]}"
    sink = EchoServer()
    try:
        created = network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, name, _params(port=sink.port), **FAST).result(10)
        assert created.continuous_capture is True
        assert created.capture_settings.file_count == 2
        first_port = _first_connection(sink.port)
        talk(sink.host, sink.port, n=40, payload=b"z" * 4000)  # ~350 kB on lo: many files
        time.sleep(1.2)  # the ring is shipped every 0.5 s
        network.packet_captures.begin_stop(WATCHER_RG, WATCHER, name, **FAST).result(10)
        st = network.packet_captures.begin_get_status(WATCHER_RG, WATCHER, name, **FAST).result(10)
        assert st.packet_capture_status == "Stopped"
    finally:
        sink.close()
        network.packet_captures.begin_delete(WATCHER_RG, WATCHER, name, **FAST).result(10)
    new = sorted(_vm1_blobs(container) - before)
    assert len(new) == 2, new
    ports: set[int] = set()
    for blob in new:
        assert blob.rsplit("/", 1)[1].startswith("packetcapture_") and blob.endswith(".cap")
        data = container.download_blob(blob).readall()
        _n, _l, packets = read_pcap(data)
        ports |= {p.sport for p in packets} | {p.dport for p in packets}
    # The first files (with the first connection) were deleted; the last traffic is kept.
    assert first_port not in ports
    assert sink.port in ports
    container.delete_blobs(*new)


@pytest.mark.parametrize(("settings", "storage"), [
    (PacketCaptureSettings(file_count=10001), {}),
    (PacketCaptureSettings(session_time_limit_in_seconds=604801), {}),
    (PacketCaptureSettings(file_size_in_bytes=4294967296), {}),
    (None, {"file_path": "/var/captures/ring.cap"}),
])
def test_continuous_validation_errors(network, settings, storage):
    with pytest.raises(HttpResponseError) as err:
        network.packet_captures.begin_create(
            WATCHER_RG, WATCHER, f"bad-{uuid.uuid4().hex[:6]}",
            _params(settings, **storage), **FAST).result(10)
    assert err.value.status_code == 400


def test_continuous_capture_on_an_older_api_version_is_refused(resources):
    path = (f"/subscriptions/{SUB}/resourceGroups/{WATCHER_RG}/providers/Microsoft.Network/"
            f"networkWatchers/{WATCHER}/packetCaptures/old-{uuid.uuid4().hex[:6]}")
    body = {"properties": {"target": VM1, "continuousCapture": True,
                           "storageLocation": {"storageId": STORAGE}}}
    r = resources.send_request(HttpRequest("PUT", path, params={"api-version": "2023-11-01"},
                                           json=body))
    assert r.status_code == 400
    assert "continuousCapture" in r.json()["error"]["message"]
