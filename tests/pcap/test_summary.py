"""Summary semantics: retransmissions, header decoding, bounded tables, halves, schema."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from alertcap.pcap import SCHEMA, summarise, summarise_path
from alertcap.pcap.tables import BIN0, Tables
from tests.pcap import pcapgen
from tests.pcap.pcapgen import ACK, FIN, PSH, SYN, Capture, TcpConn, ether, ipv4, ipv6, udp


def _summary(cap: Capture, **kw: Any) -> dict[str, Any]:
    return summarise(io.BytesIO(cap.pcap()), top=1000, **kw).to_dict()


def _conn(isn: tuple[int, int] = (1000, 5000)) -> tuple[Capture, TcpConn]:
    cap = Capture()
    c = TcpConn(cap, "10.0.0.1", 40000, "10.0.0.2", 80, isn=isn)
    c.handshake(0.0)
    return cap, c


def test_in_order_data_is_not_retransmitted_even_across_sequence_wrap() -> None:
    cap, c = _conn(isn=(0xFFFFF000, 0xFFFFFF00))
    for k in range(20):
        c.send(0.1 + k * 0.01, k % 2, PSH | ACK, bytes(700))
    c.close(1.0)
    s = _summary(cap)
    assert s["tcp"]["retransmissions"] == 0
    assert s["tcp"]["packets"] == len(cap.packets)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # (seq offset relative to next_seq, payload length, flags) after 2 x 100 bytes
        ((-100, 100, PSH | ACK), 1),  # the last segment again
        ((-200, 200, PSH | ACK), 1),  # both again, in one segment
        ((-50, 150, PSH | ACK), 1),  # overlaps old and new data: still starts in the past
        ((-1, 1, ACK), 0),  # keep-alive with one garbage byte
        ((-1, 0, ACK), 0),  # keep-alive without payload
        ((0, 100, PSH | ACK), 0),  # just the next segment
        ((0, 0, FIN | ACK), 0),  # the FIN
    ],
    ids=["dup", "both", "overlap", "keepalive1", "keepalive0", "next", "fin"],
)
def test_retransmission_rule(script: tuple[int, int, int], expected: int) -> None:
    cap, c = _conn()
    c.send(0.1, 0, PSH | ACK, bytes(100))
    c.send(0.2, 0, PSH | ACK, bytes(100))
    off, length, flags = script
    c.send(0.5, 0, flags, bytes(length), seq=c.seq[0] + off)
    s = _summary(cap)
    assert s["tcp"]["retransmissions"] == expected
    conv = s["top_conversations_by_packets"][0]
    assert conv["retransmissions"] == expected


def test_syn_and_fin_retransmissions_count() -> None:
    cap = Capture()
    c = TcpConn(cap, "10.0.0.1", 40000, "10.0.0.2", 80)
    c.send(0.0, 0, SYN)
    c.send(1.0, 0, SYN, seq=c.seq[0] - 1)
    c.send(1.001, 1, SYN | ACK)
    c.send(1.002, 0, ACK)
    c.send(1.1, 0, FIN | ACK)
    c.send(1.5, 0, FIN | ACK, seq=c.seq[0] - 1)
    s = _summary(cap)
    assert s["tcp"]["retransmissions"] == 2
    assert (s["tcp"]["syn"], s["tcp"]["syn_ack"], s["tcp"]["fin"]) == (2, 1, 2)


def test_ipv6_extension_headers_and_fragments() -> None:
    cap = Capture()
    seg = pcapgen.tcp(1234, 443, 1, 0, SYN)
    hop, dst_opts = (0, b"\x01\x04\0\0\0\0"), (60, b"\x01\x04\0\0\0\0")
    first_frag = (44, struct_frag(offset=0, more=True))
    cap.add(0.0, ether(ipv6("fd00::1", "fd00::2", 6, seg, ext=[hop, dst_opts]), v6=True))
    cap.add(0.1, ether(ipv6("fd00::1", "fd00::2", 17, udp(5000, 53, b"q"), ext=[first_frag]),
                       v6=True))  # fmt: skip
    later_frag = (44, struct_frag(offset=8, more=False))
    cap.add(0.2, ether(ipv6("fd00::1", "fd00::2", 17, bytes(40), ext=[later_frag]), v6=True))
    s = _summary(cap)
    convs = {(c["proto"], c["a_port"], c["b_port"]) for c in s["top_conversations_by_packets"]}
    assert convs == {("tcp", 1234, 443), ("udp", 5000, 53)}
    assert {p["name"]: p["packets"] for p in s["protocols"]} == {
        "tcp": 1, "udp": 1, "ipv6-fragment": 1,
    }  # fmt: skip
    assert s["top_host_pairs_by_packets"][0]["packets"] == 3
    assert s["ip_versions"] == {"ipv4": 0, "ipv6": 3}


def struct_frag(offset: int, more: bool) -> bytes:
    return (offset << 3 | more).to_bytes(2, "big") + (77).to_bytes(4, "big")


def test_ipv4_options_fragments_vlan_and_qinq() -> None:
    cap = Capture()
    seg = pcapgen.tcp(1111, 22, 1, 0, SYN)
    cap.add(0.0, ether(ipv4("10.1.1.1", "10.2.2.2", 6, seg, options=b"\x01\x01\x01\x00")))
    cap.add(0.1, ether(ipv4("10.1.1.1", "10.2.2.2", 6, seg), vlans=[5]))
    cap.add(0.2, ether(ipv4("10.1.1.1", "10.2.2.2", 6, seg), vlans=[5, 6], qinq=True))
    cap.add(0.3, ether(ipv4("10.1.1.1", "10.2.2.2", 17, bytes(16), frag=0x0004)))
    s = _summary(cap)
    (conv,) = s["top_conversations_by_packets"]
    assert (conv["a"], conv["a_port"], conv["b"], conv["b_port"], conv["packets"]) == (
        "10.1.1.1", 1111, "10.2.2.2", 22, 3,
    )  # fmt: skip
    assert {p["name"]: p["packets"] for p in s["protocols"]} == {"tcp": 3, "udp": 1}
    assert s["top_host_pairs_by_packets"][0]["packets"] == 4


def test_bounded_tables_keep_totals_exact() -> None:
    """A port scan far beyond the limits: totals exact, breakdown coarser, and said so."""
    cap = Capture()
    for i in range(600):
        src = f"10.0.{i % 30}.1"
        cap.add(i * 0.001, ether(ipv4(src, "10.9.9.9", 6, pcapgen.tcp(50000, i + 1, 1, 0, SYN))))
        cap.add(i * 0.001, ether(ipv4(f"10.1.{i}.1" if i < 256 else "10.3.3.3", "10.9.9.9", 1,
                                      pcapgen.icmp_echo())))  # fmt: skip
    tb = Tables(max_flows=50, max_hosts=10)
    s = summarise(io.BytesIO(cap.pcap()), top=10_000, tables=tb).to_dict()
    assert s["packets"] == 1200 and s["tcp"]["syn"] == 600
    assert {p["name"]: p["packets"] for p in s["protocols"]} == {"tcp": 600, "icmp": 600}
    assert s["limits"] == {
        "max_flows": 50, "flows_tracked": 50, "max_host_pairs": 10, "overflow_packets": 550,
        "approximate": True,
    }  # fmt: skip
    assert any("flow table full" in w for w in s["warnings"])
    assert any("host table full" in w for w in s["warnings"])
    convs = s["top_conversations_by_packets"]
    assert sum(c["packets"] for c in convs) == 600 - sum(tb.remainder[6][BIN0:])
    assert sum(1 for c in convs if c["aggregated"]) == 10
    assert all(c["a_port"] is None for c in convs if c["aggregated"])
    # destination ports stay exact: every port got one SYN
    assert len(s["top_dst_ports"]) == 600
    assert {p["packets"] for p in s["top_dst_ports"]} == {1}
    assert len(tb.tcp) + len(tb.udp) == 50 and len(tb.overflow) == 10 and len(tb.other) == 10


def test_what_changed_between_the_halves() -> None:
    m = pcapgen.mixed()
    s = _summary(m.cap)
    ch = s["changes"]
    client, cport, server, sport = m.surge
    top = ch["conversations"][0]
    assert (top["a"], top["a_port"], top["b"], top["b_port"]) == (client, cport, server, sport)
    assert (top["first"], top["second"], top["change"]) == (*m.surge_packets, 390)
    # packets *to* port 8443: the SYN-ACK of the handshake went the other way
    assert ch["dst_ports"][0] == {"proto": "tcp", "port": 8443, "first": 9, "second": 400,
                                  "change": 391}  # fmt: skip
    assert ch["talkers"][0]["host"] == client and ch["talkers"][0]["change"] == 391
    assert ch["packets"]["first"] + ch["packets"]["second"] == s["packets"] - 5  # 5 ARP
    assert ch["first_half_s"] + ch["second_half_s"] == pytest.approx(s["duration_s"])
    assert abs(ch["first_half_s"] - ch["second_half_s"]) <= s["duration_s"] / 8


def test_new_connections_per_second() -> None:
    cap = Capture()
    for i in range(5):
        cap.add(0.1 * i, ether(ipv4("10.0.0.1", "10.0.0.2", 6, pcapgen.tcp(1000 + i, 80, 1, 0,
                                                                            SYN))))  # fmt: skip
    for i in range(12):
        cap.add(3.0 + 0.05 * i, ether(ipv4("10.0.0.1", "10.0.0.2", 6,
                                           pcapgen.tcp(2000 + i, 80, 1, 0, SYN))))  # fmt: skip
    cap.add(4.0, ether(ipv4("10.0.0.2", "10.0.0.1", 6, pcapgen.tcp(80, 2000, 1, 2, SYN | ACK))))
    s = _summary(cap)
    nc = s["tcp"]["new_connections_per_s"]
    assert nc["peak"] == 12 and nc["seconds_with_syns"] == 2
    assert nc["peak_at"] == "2025-10-09T08:53:23Z"  # base + 3 s
    assert nc["average"] == pytest.approx(17 / 4.0, abs=1e-3)


def test_schema_top_and_copy(tmp_path: Any) -> None:
    m = pcapgen.mixed()
    path = tmp_path / "m.pcap"
    path.write_bytes(m.cap.pcap())
    summary = summarise_path(path, top=3)
    d = summary.to_dict()
    assert d["schema"] == SCHEMA == "alertcap.summary/2"
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    for key in ("top_conversations_by_packets", "top_conversations_by_bytes", "top_talkers",
                "top_host_pairs_by_packets", "top_host_pairs_by_bytes", "top_dst_ports"):
        assert len(d[key]) == 3, key  # fmt: skip
    by_pk = [c["packets"] for c in d["top_conversations_by_packets"]]
    assert by_pk == sorted(by_pk, reverse=True)
    assert d["source"] == {"format": "pcap", "byte_order": "little",
                           "timestamp_resolution": "us", "link_types": [1],
                           "snaplen": 262144, "bytes_read": path.stat().st_size}  # fmt: skip
    assert d["packets_per_s"] == pytest.approx(d["packets"] / d["duration_s"], rel=1e-3)
    assert d["bytes_per_s"] == pytest.approx(d["bytes"] / d["duration_s"], rel=1e-3)
    d["packets"] = -1
    assert summary.to_dict()["packets"] == summary.packets == len(m.cap.packets)


def test_replies_of_tracked_flows_are_tracked_past_the_limit() -> None:
    cap = Capture()
    for i in range(60):  # 60 requests first: 50 tracked flows, 10 aggregated
        cap.add(i * 0.01, ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000 + i, 53, b"q"))))
    for i in range(60):
        cap.add(1 + i * 0.01, ether(ipv4("10.0.0.2", "10.0.0.1", 17, udp(53, 1000 + i, b"r"))))
    tb = Tables(max_flows=50)
    s = summarise(io.BytesIO(cap.pcap()), top=1000, tables=tb).to_dict()
    whole = [c for c in s["top_conversations_by_packets"] if not c["aggregated"]]
    assert len(whole) == 50 and all(c["packets_b_to_a"] == 1 for c in whole)
    assert len(tb.udp) == 100 and s["limits"]["overflow_packets"] == 20
    (agg,) = (c for c in s["top_conversations_by_packets"] if c["aggregated"])
    assert (agg["packets_a_to_b"], agg["packets_b_to_a"]) == (10, 10)


@pytest.mark.parametrize("snaplen", [47, 48, 53, 54])
def test_tcp_header_cut_short_is_not_a_flow(snaplen: int) -> None:
    """Ports are taken only from a complete TCP header, on every path."""
    cap, c = _conn()
    c.send(0.1, 0, PSH | ACK, bytes(100))
    s = summarise(io.BytesIO(cap.pcap(snaplen=snaplen)), top=100).to_dict()
    flows = sum(c["packets"] for c in s["top_conversations_by_packets"])
    assert flows == (len(cap.packets) if snaplen >= 54 else 0)
    assert s["top_host_pairs_by_packets"][0]["packets"] == len(cap.packets)
    assert bool(s["warnings"]) == (snaplen < 54)
