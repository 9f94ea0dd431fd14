"""The C accelerator (_fastscan.c) changes nothing but the speed.

Every summary here is made twice, with the accelerator and with the pure-Python scan
alone, and the whole summaries (findings, names, timeline, slices' selections) must be
equal: on the captures the other pcap tests build, at read sizes that cut records at
every chunk boundary, with flow tables at their limits, with time going backwards, around
retransmissions and sequence wrap, on the benchmark's traffic, and on seeded random mixes.
"""

from __future__ import annotations

import copy
import io
import random
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alertcap.pcap import decode
from alertcap.pcap.summary import summarise
from alertcap.pcap.tables import Tables
from tests.pcap import pcapgen
from tests.pcap.pcapgen import ACK, FIN, PSH, RST, SYN, Capture, TcpConn, ether, ipv4, ipv6, udp

ROOT = Path(__file__).resolve().parents[2]


def _agree(data: bytes, tables: Tables | None = None, **kw: Any) -> dict[str, Any]:
    """The summary with the accelerator, after checking it equals the pure-Python one at
    the default read size and at 997-byte reads."""
    def run(native: bool, chunk_size: int | None) -> dict[str, Any]:
        return summarise(io.BytesIO(data), top=1000, native=native, chunk_size=chunk_size,
                         tables=copy.deepcopy(tables) if tables else None, **kw).to_dict()

    ref = run(False, None)
    for size in (None, 997):
        assert run(True, size) == ref, f"the accelerator changed the summary (reads {size})"
    return ref


def test_make_setup_built_the_accelerator() -> None:
    assert decode._fastscan is not None, "alertcap/pcap/_fastscan.c is not built: make native"


def test_every_kind_of_capture_file_agrees() -> None:
    m = pcapgen.mixed()
    for data in (m.cap.pcap(), m.cap.pcap(nanos=True, big_endian=True), m.cap.pcapng(),
                 m.cap.pcap(snaplen=60)):
        s = _agree(data)
        assert s["packets"] == len(m.cap.packets)


def test_flow_limits_and_overflow_agree() -> None:
    s = _agree(pcapgen.mixed().cap.pcap(), Tables(max_flows=7, max_hosts=3, max_seconds=2))
    assert s["limits"]["overflow_packets"] > 0  # the limits did bite


def test_time_going_backwards_agrees() -> None:
    m = pcapgen.mixed()
    rnd = random.Random(8)  # noqa: S311 -- reproducible test data
    for p in m.cap.packets:
        if rnd.random() < 0.2:
            p.ts = max(p.ts - rnd.random() * 3, 0.0)
    _agree(m.cap.pcap())


def test_data_around_retransmissions_gaps_and_wrap_agrees() -> None:
    cap = Capture()
    c = TcpConn(cap, "10.0.0.1", 40000, "10.0.0.2", 443, isn=(0xFFFFF000, 5))
    t = c.handshake(0.0)
    for k in range(60):
        c.send(t, 1 if k % 3 else 0, PSH | ACK, bytes(300 + k))
        if k % 9 == 4:  # the same segment again, then a keep-alive, then a gap
            d, s, fl, pl = c.history[-1]
            c.send(t + 0.001, d, fl, pl, seq=s)
            c.send(t + 0.002, d, ACK, b"\0", seq=c.seq[d] - 1)
        if k % 17 == 8:
            c.seq[0] = (c.seq[0] + 5000) & 0xFFFFFFFF
        t += 0.01
    c.send(t, 0, RST | ACK)
    c.send(t + 0.01, 1, PSH | ACK, bytes(10))
    s = _agree(cap.pcap())
    assert s["tcp"]["retransmissions"] >= 7


def test_the_benchmark_traffic_agrees(tmp_path: Path) -> None:
    """bench/pcap_bench.py's traffic (IPv6, VLAN tags, DNS, ICMP, ARP, retransmissions,
    resets, a surge), 40,000 packets, with an alert time inside it."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import pcap_bench
    finally:
        sys.path.remove(str(ROOT / "bench"))
    path = tmp_path / "bench.pcap"
    pcap_bench.generate(path, 40_000)
    s = _agree(path.read_bytes(), alert_time=1_760_000_060)
    assert s["packets"] == 40_000


_FLOWS = [("10.0.0.1", 1000, "10.0.0.2", 80), ("10.0.0.3", 53, "10.0.0.1", 5353),
          ("fd00::1", 2000, "fd00::2", 443), ("10.0.0.2", 80, "10.0.0.1", 1000)]  # fmt: skip


@st.composite
def _mixes(draw: st.DrawFn) -> bytes:
    """Random packets over a few flows: any flags, sequence numbers near each other (in
    order, repeated, gaps), UDP (DNS responses among them), VLAN tags, short snaps, and
    times that mostly go forward."""
    cap = Capture()
    t = 0.0
    for _ in range(draw(st.integers(1, 60))):
        src, sp, dst, dp = draw(st.sampled_from(_FLOWS))
        t = max(t + draw(st.floats(-0.5, 3.0)), 0.0)
        if draw(st.booleans()):
            flags = draw(st.sampled_from([ACK, PSH | ACK, SYN, SYN | ACK, FIN | ACK, RST, 0]))
            seq = draw(st.sampled_from([0, 100, 200, 300, 0xFFFFFFF0])) + draw(st.integers(0, 2))
            l4 = pcapgen.tcp(sp, dp, seq, 0, flags, bytes(draw(st.sampled_from([0, 1, 100]))))
            proto = 6
        else:
            l4, proto = udp(sp, dp, bytes(draw(st.integers(0, 40)))), 17
        v6 = ":" in src
        l3 = ipv6(src, dst, proto, l4) if v6 else ipv4(src, dst, proto, l4)
        vlans = draw(st.sampled_from([(), (), (7,), (7, 8)]))
        frame = ether(l3, v6=v6, vlans=vlans, qinq=len(vlans) > 1)
        cap.add(t, frame[: draw(st.sampled_from([len(frame), len(frame), 60, 40]))])
    return cap.pcap(nanos=draw(st.booleans()), big_endian=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(_mixes(), st.integers(1, 8))
def test_random_mixes_agree(data: bytes, max_flows: int) -> None:
    _agree(data)
    _agree(data, Tables(max_flows=max_flows, max_hosts=2))
