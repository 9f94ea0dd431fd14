"""Our summary against tshark's and capinfos' own statistics on the same files.

Two sources: a real tcpdump capture on the loopback interface of traffic this
test makes to local servers on 127.0.0.1 (Ethernet, and ``-i any`` for Linux
cooked v2), and the synthetic mixed capture from ``pcapgen.mixed`` (v4/v6,
VLAN/QinQ, retransmissions, resets, UDP, ICMP, ARP) in several file formats.
"""

from __future__ import annotations

import collections
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from alertcap.pcap import summarise_path
from tests.pcap import pcapgen, wireshark
from tests.pcap.wireshark import endpoint

ALL = 100_000  # "top" large enough to list every row


def assert_matches_capinfos(path: Path, s: dict[str, Any]) -> None:
    info = wireshark.capinfos(path)
    assert s["packets"] == int(info["Number of packets"])
    assert s["bytes"] == int(info["Data size"].split()[0])
    assert s["start"] == pytest.approx(float(info["First packet time"]), abs=2e-6)
    assert s["end"] == pytest.approx(float(info["Last packet time"]), abs=2e-6)
    assert s["duration_s"] == pytest.approx(float(info["Capture duration"].split()[0]), abs=2e-6)


def assert_matches_tshark(path: Path, s: dict[str, Any], *, per_packet: bool = True) -> None:
    """Totals, times, conversations, host pairs; with ``per_packet`` also TCP flags,
    retransmissions, ports and talkers from tshark's per-packet fields (which it
    reports even for TCP headers cut short, where we only count host pairs)."""
    assert_matches_capinfos(path, s)
    st = wireshark.stats(
        path, "tcp.flags", "tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
        "tcp.analysis.spurious_retransmission", "tcp.dstport", "udp.dstport", "ip.src",
        "ipv6.src", "frame.len",
    )  # fmt: skip
    assert (s["packets"], s["bytes"]) == st.io

    for kind in ("tcp", "udp"):
        theirs = {frozenset((c.a, c.b)): c for c in st.conv[kind]}
        ours = [c for c in s["top_conversations_by_packets"] if c["proto"] == kind]
        assert len(ours) == len(theirs), kind
        for c in ours:
            a, b = endpoint(c["a"], c["a_port"]), endpoint(c["b"], c["b_port"])
            t = theirs[frozenset((a, b))]
            ab, ba = (t.frames_ab, t.frames_ba) if t.a == a else (t.frames_ba, t.frames_ab)
            bab, bba = (t.bytes_ab, t.bytes_ba) if t.a == a else (t.bytes_ba, t.bytes_ab)
            assert (c["packets_a_to_b"], c["packets_b_to_a"]) == (ab, ba), (a, b)
            assert bab.matches(c["bytes_a_to_b"]) and bba.matches(c["bytes_b_to_a"]), (a, b)
            assert c["packets"] == t.frames and t.bytes.matches(c["bytes"])

    theirs_ip = {frozenset((c.a, c.b)): c for c in st.conv["ip"] + st.conv["ipv6"]}
    pairs = s["top_host_pairs_by_packets"]
    assert len(pairs) == len(theirs_ip)
    for p in pairs:
        t = theirs_ip[frozenset((p["a"], p["b"]))]
        assert p["packets"] == t.frames and t.bytes.matches(p["bytes"]), p
    if not per_packet:
        return

    rows = st.rows
    flags = [int(r[0], 16) for r in rows if r[0]]
    tcp = s["tcp"]
    assert tcp["syn"] == sum(1 for f in flags if f & 0x12 == 0x02)
    assert tcp["syn_ack"] == sum(1 for f in flags if f & 0x12 == 0x12)
    assert tcp["rst"] == sum(1 for f in flags if f & 0x04)
    assert tcp["fin"] == sum(1 for f in flags if f & 0x01)
    assert tcp["retransmissions"] == sum(1 for r in rows if r[1] or r[2] or r[3])
    ports: collections.Counter[tuple[str, int]] = collections.Counter()
    sent: collections.Counter[str] = collections.Counter()
    for r in rows:
        if r[4]:
            ports["tcp", int(r[4])] += 1
        elif r[5]:
            ports["udp", int(r[5])] += 1
        if r[6] or r[7]:
            sent[r[6] or r[7]] += int(r[8])
    assert {(p["proto"], p["port"]): p["packets"] for p in s["top_dst_ports"]} == dict(ports)
    assert {t["host"]: t["bytes"] for t in s["top_talkers"]} == dict(sent)


# -- synthetic captures ---------------------------------------------------------


@pytest.fixture(scope="module")
def mixed() -> pcapgen.Mixed:
    return pcapgen.mixed()


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Equal summaries apart from the file format description."""
    drop = ("source", "start", "end", "start_iso", "end_iso")
    assert {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }
    assert a["start"] == pytest.approx(b["start"], abs=1e-6)
    assert a["end"] == pytest.approx(b["end"], abs=1e-6)


@pytest.fixture(scope="module")
def mixed_summary(mixed: pcapgen.Mixed, tmp_path_factory: pytest.TempPathFactory
                  ) -> dict[str, Any]:  # fmt: skip
    path = tmp_path_factory.mktemp("mixed") / "mixed.pcap"
    path.write_bytes(mixed.cap.pcap())
    return summarise_path(path, top=ALL).to_dict()


def test_mixed_pcap_matches_tshark(tmp_path: Path, mixed: pcapgen.Mixed,
                                   mixed_summary: dict[str, Any]) -> None:  # fmt: skip
    path = tmp_path / "mixed.pcap"
    path.write_bytes(mixed.cap.pcap())
    s = mixed_summary
    assert s["warnings"] == [] and s["complete"]
    assert s["packets"] == len(mixed.cap.packets)
    assert s["tcp"]["retransmissions"] == mixed.retransmissions + 1  # + the SYN
    assert_matches_tshark(path, s)


@pytest.mark.parametrize(
    "fmt",
    [{"nanos": True}, {"big_endian": True}, {"nanos": True, "big_endian": True}],
    ids=["ns-le", "us-be", "ns-be"],
)
def test_pcap_variants_agree(tmp_path: Path, mixed: pcapgen.Mixed,
                             mixed_summary: dict[str, Any], fmt: dict[str, bool]) -> None:  # fmt: skip
    """Byte order and timestamp resolution change nothing but ``source``; capinfos agrees."""
    path = tmp_path / "mixed.pcap"
    path.write_bytes(mixed.cap.pcap(**fmt))
    s = summarise_path(path, top=ALL).to_dict()
    assert s["source"]["byte_order"] == ("big" if fmt.get("big_endian") else "little")
    assert s["source"]["timestamp_resolution"] == ("ns" if fmt.get("nanos") else "us")
    _same(s, mixed_summary)
    assert_matches_capinfos(path, s)


@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
@pytest.mark.parametrize("tsresol", [6, 9])
def test_pcapng_agrees(tmp_path: Path, mixed: pcapgen.Mixed, mixed_summary: dict[str, Any],
                       big_endian: bool, tsresol: int) -> None:  # fmt: skip
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(mixed.cap.pcapng(big_endian=big_endian, tsresol=tsresol))
    s = summarise_path(path, top=ALL).to_dict()
    assert s["source"]["format"] == "pcapng" and s["warnings"] == []
    _same(s, mixed_summary)
    if big_endian and tsresol == 9:
        assert_matches_tshark(path, s)
    else:
        assert_matches_capinfos(path, s)


@pytest.mark.parametrize(
    ("linktype", "wrap"),
    [(pcapgen.SLL, pcapgen.sll), (pcapgen.SLL2, pcapgen.sll2), (pcapgen.RAW, None),
     (pcapgen.NULL, pcapgen.null)],
    ids=["sll", "sll2", "raw", "null"],
)  # fmt: skip
def test_other_link_types_match_tshark(tmp_path: Path, linktype: int, wrap: Any) -> None:
    def v4(l3: bytes) -> bytes:
        return wrap(l3) if wrap else l3

    def v6(l3: bytes) -> bytes:
        return wrap(l3, v6=True) if wrap else l3

    m = pcapgen.mixed(frame_v4=v4, frame_v6=v6)
    m.cap.linktype = linktype
    path = tmp_path / "link.pcap"
    path.write_bytes(m.cap.pcap())
    s = summarise_path(path, top=ALL).to_dict()
    assert s["source"]["link_types"] == [linktype] and s["warnings"] == []
    assert s["packets"] == len(m.cap.packets)
    assert_matches_tshark(path, s)


def test_snaplen_truncated_packets_match_tshark(tmp_path: Path, mixed: pcapgen.Mixed) -> None:
    """Snap length 54 keeps every TCP header; lengths and sequence space come from IP."""
    path = tmp_path / "snap.pcap"
    path.write_bytes(mixed.cap.pcap(snaplen=54))
    s = summarise_path(path, top=ALL).to_dict()
    assert s["bytes"] == sum(len(p.frame) for p in mixed.cap.packets)
    assert any("too short to read their ports" in w for w in s["warnings"])
    assert s["complete"]
    assert_matches_tshark(path, s, per_packet=False)


# -- a real capture on the loopback interface ----------------------------------


class _Servers:
    """An HTTP-ish TCP server and a UDP echo server on 127.0.0.1."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.ports = (self.tcp.getsockname()[1], self.udp.getsockname()[1])
        self._stop = False
        self.threads = [
            threading.Thread(target=self._serve_tcp, daemon=True),
            threading.Thread(target=self._serve_udp, daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _serve_tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                size = int(conn.recv(64) or b"0")
                conn.sendall(b"x" * size)

    def _serve_udp(self) -> None:
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(2048)
            except OSError:
                return
            self.udp.sendto(data[::-1], peer)

    def close(self) -> None:
        self._stop = True
        self.tcp.close()
        self.udp.close()


def _tcpdump(iface: str, path: Path, bpf: str) -> subprocess.Popen[bytes]:
    """Start tcpdump and wait until it is listening (it says so on stderr)."""
    log = path.with_suffix(".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            ["tcpdump", "-i", iface, "--immediate-mode", "-B", "65536", "-U", "-n", "-s", "0",
             "-w", str(path), bpf],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 10
    while b"listening on" not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f"tcpdump did not start: {log.read_bytes()!r}")
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def loopback_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("lo")
    servers = _Servers()
    tport, uport = servers.ports
    bpf = f"host 127.0.0.1 and (port {tport} or port {uport})"
    paths = {"lo": tmp / "lo.pcap", "any": tmp / "any.pcap"}
    procs = []
    try:
        procs.append(_tcpdump("lo", paths["lo"], bpf))
        procs.append(_tcpdump("any", paths["any"], bpf))
        for i in range(25):
            with socket.create_connection(("127.0.0.1", tport)) as c:
                c.sendall(b"%d" % (100 + 1500 * i))
                c.shutdown(socket.SHUT_WR)
                while c.recv(65536):
                    pass
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            for i in range(10):
                u.sendto(b"ping %d" % i, ("127.0.0.1", uport))
                u.recvfrom(2048)
        time.sleep(0.3)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        servers.close()
    return paths


@pytest.mark.parametrize("iface", ["lo", "any"])
def test_real_loopback_capture_matches_tshark(
    loopback_captures: dict[str, Path], iface: str
) -> None:
    path = loopback_captures[iface]
    s = summarise_path(path, top=ALL).to_dict()
    assert s["warnings"] == []
    assert s["source"]["link_types"] == ([1] if iface == "lo" else [276])
    tcp_convs = sum(1 for c in s["top_conversations_by_packets"] if c["proto"] == "tcp")
    log = path.with_suffix(".log").read_text()
    if " 0 packets dropped by kernel" in log:  # a busy machine can make the kernel drop some
        assert s["tcp"]["syn"] == 25 and s["tcp"]["syn_ack"] == 25
        assert tcp_convs == 25
        assert sum(1 for c in s["top_conversations_by_packets"] if c["proto"] == "udp") == 1
    else:
        assert 0 < tcp_convs <= 25
    assert_matches_tshark(path, s)


def test_real_capture_converted_by_editcap(loopback_captures: dict[str, Path],
                                           tmp_path: Path) -> None:  # fmt: skip
    """The same packets as pcapng and nanosecond pcap (written by Wireshark's editcap)."""
    base = summarise_path(loopback_captures["lo"], top=ALL).to_dict()
    for fmt in ("pcapng", "nsecpcap"):
        out = tmp_path / f"lo.{fmt}"
        wireshark.run("editcap", "-F", fmt, loopback_captures["lo"], out)
        s = summarise_path(out, top=ALL).to_dict()
        assert s["source"]["format"] == ("pcapng" if fmt == "pcapng" else "pcap")
        assert {k: v for k, v in s.items() if k != "source"} == {
            k: v for k, v in base.items() if k != "source"
        }
