"""Reading captures as a stream: formats, damage, unseekable input, tiny chunks."""

from __future__ import annotations

import io
import json
import struct

import pytest

from alertcap.pcap import CaptureReader, NotACaptureError, summarise
from alertcap.pcap.decode import scan
from alertcap.pcap.tables import BIN0, Tables
from tests.pcap import pcapgen
from tests.pcap.pcapgen import ACK, PSH, Capture, TcpConn


def _capture(n: int = 40) -> Capture:
    cap = Capture()
    for i in range(n // 10):
        c = TcpConn(cap, "10.0.0.1", 40000 + i, "10.0.0.2", 443)
        t = c.handshake(i * 0.1)
        for _ in range(2):
            c.send(t, 1, PSH | ACK, bytes(300))
            c.send(t + 0.001, 0, ACK)
            t += 0.002
        c.close(t)
    return cap


def test_records_view_yields_every_packet() -> None:
    cap = _capture()
    recs = list(CaptureReader(io.BytesIO(cap.pcap(nanos=True))).records())
    assert len(recs) == len(cap.packets)
    ts, caplen, wirelen, linktype, data = recs[5]
    assert ts == pytest.approx(cap.base + cap.packets[5].ts, abs=1e-6)
    assert (caplen, wirelen, linktype, data) == (
        len(cap.packets[5].frame), len(cap.packets[5].frame), 1, cap.packets[5].frame,
    )  # fmt: skip


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("chunk_size", [1, 17, 100, 4096])
def test_tiny_chunks_and_short_reads_change_nothing(chunk_size: int, fmt: str) -> None:
    """Records straddling read boundaries are carried over; pipes return short reads."""
    data = _capture().pcap() if fmt == "pcap" else _capture().pcapng()
    whole = summarise(io.BytesIO(data)).to_dict()
    reader = CaptureReader(pcapgen.Unseekable(data, max_read=13), chunk_size=chunk_size)
    tb = Tables()
    for chunk in reader.chunks():
        scan(chunk, tb)
    assert reader.warnings == []
    assert sum(sum(st[BIN0:]) for st in tb.tcp.values()) == whole["packets"]


def test_unseekable_stream_gives_the_same_summary() -> None:
    data = _capture().pcapng()
    assert (
        summarise(pcapgen.Unseekable(data)).to_dict() == summarise(io.BytesIO(data)).to_dict()
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty stream"),
        (b"\xd4\xc3", "only 2 bytes"),
        (b"GIF89a" + bytes(100), "not a pcap or pcapng file"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "header is truncated"),
        (b"\x34\xcd\xb2\xa1" + bytes(40), "Kuznetsov"),
        (b"\n\r\r\nsome text that starts like a pcapng file", "byte-order magic"),
        (b"\n\r\r\n\x1c\0\0\0", "byte-order magic"),
    ],
    ids=["empty", "tiny", "gif", "short-header", "kuznetsov", "crlf-text", "short-shb"],
)
def test_not_a_capture(data: bytes, message: str) -> None:
    with pytest.raises(NotACaptureError, match=message):
        summarise(io.BytesIO(data))


def test_header_only_capture_is_an_empty_summary() -> None:
    s = summarise(io.BytesIO(Capture().pcap())).to_dict()
    assert (s["packets"], s["bytes"], s["warnings"], s["changes"]) == (0, 0, [], None)
    assert s["start"] is None and s["packets_per_s"] is None and s["complete"]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("cut", [1, 9, 30, 200])
def test_truncated_file_gives_partial_summary_and_warning(fmt: str, cut: int) -> None:
    cap = _capture()
    data = cap.pcap() if fmt == "pcap" else cap.pcapng()
    s = summarise(io.BytesIO(data[:-cut])).to_dict()
    assert not s["complete"]
    assert any("truncated" in w for w in s["warnings"]), s["warnings"]
    sizes = [
        16 + len(p.frame) if fmt == "pcap" else 32 + (len(p.frame) + 3) // 4 * 4
        for p in cap.packets
    ]
    end, complete = len(data) - sum(sizes), 0  # file header (pcapng: SHB, IDB, ISB)
    for size in sizes:
        end += size
        complete += end <= len(data) - cut
    assert 0 < s["packets"] == complete < len(cap.packets)


def test_corrupt_record_length_stops_with_warning() -> None:
    cap = _capture()
    data = bytearray(cap.pcap())
    # the 11th record's caplen becomes absurd
    off = 24
    for pk in cap.packets[:10]:
        off += 16 + len(pk.frame)
    struct.pack_into("<I", data, off + 8, 0x7FFFFFF0)
    s = summarise(io.BytesIO(bytes(data))).to_dict()
    assert s["packets"] == 10 and not s["complete"]
    assert any("corrupt record header" in w for w in s["warnings"])


def test_corrupt_pcapng_block_stops_with_warning() -> None:
    data = bytearray(_capture().pcapng())
    # find the 4th enhanced packet block and break its length
    pos, seen = 0, 0
    while True:
        btype, blen = struct.unpack_from("<II", data, pos)
        if btype == 6:
            seen += 1
            if seen == 4:
                struct.pack_into("<I", data, pos + 4, 7)
                break
        pos += blen
    s = summarise(io.BytesIO(bytes(data))).to_dict()
    assert s["packets"] == 3
    assert any("corrupt pcapng block" in w for w in s["warnings"])


def test_garbage_inside_packets_never_crashes() -> None:
    """Random bytes as packet contents, on every link type: counted, never an exception."""
    import random

    rnd = random.Random(5)  # noqa: S311 -- reproducible test data, not secrets
    for linktype in (1, 113, 276, 101, 0, 147):
        cap = Capture(linktype=linktype)
        for i in range(300):
            cap.add(i * 0.01, rnd.randbytes(rnd.randrange(0, 120)))
        s = summarise(io.BytesIO(cap.pcap())).to_dict()
        assert s["packets"] == 300
        assert sum(p["packets"] for p in s["protocols"]) == 300


def _block(btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def test_pcapng_sections_interfaces_and_simple_packets() -> None:
    frame = pcapgen.ether(pcapgen.ipv4("10.0.0.1", "10.0.0.2", 17, pcapgen.udp(1, 2, b"x")))
    cooked = pcapgen.sll(pcapgen.ipv4("10.0.0.3", "10.0.0.4", 17, pcapgen.udp(3, 4, b"y")))
    ns_opt = struct.pack("<HH", 9, 1) + b"\x09\0\0\0" + struct.pack("<HH", 0, 0)
    t_us, t_ns = 1_760_000_000 * 10**6, 1_760_000_001 * 10**9

    def epb(iface: int, ts: int, data: bytes) -> bytes:
        return _block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                     len(data)) + data)  # fmt: skip

    section = b"".join([
        _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)),
        _block(1, struct.pack("<HHI", pcapgen.ETH, 0, 0)),
        _block(1, struct.pack("<HHI", pcapgen.SLL, 0, 0) + ns_opt),
        epb(0, t_us, frame),
        epb(1, t_ns, cooked),
        _block(3, struct.pack("<I", len(frame)) + frame),  # simple packet: interface 0
        epb(7, t_us, frame),  # no such interface
        _block(0x0BAD, b"custom block, skipped"),
    ])  # fmt: skip
    second = Capture(packets=[pcapgen.Packet(5.0, frame)]).pcapng(big_endian=True)
    s = summarise(io.BytesIO(section + second), top=100).to_dict()
    assert s["packets"] == 4
    assert s["source"]["link_types"] == [pcapgen.ETH, pcapgen.SLL]
    assert s["source"]["byte_order"] == "big"  # of the last section
    assert s["start"] == pytest.approx(1_760_000_000.0) and s["end"] == pytest.approx(
        1_760_000_005.0
    )
    hosts = {(p["a"], p["b"]): p["packets"] for p in s["top_host_pairs_by_packets"]}
    assert hosts == {("10.0.0.1", "10.0.0.2"): 3, ("10.0.0.3", "10.0.0.4"): 1}
    (warning,) = s["warnings"]
    assert "names undefined interface 7" in warning
    assert s["complete"] is False  # the reader reported something about the file


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_mutated_files_never_crash(fmt: str) -> None:
    """Flipped bytes anywhere after the file header: a summary (maybe with warnings)."""
    import random

    rnd = random.Random(fmt)  # noqa: S311 -- reproducible test data, not secrets
    cap = _capture(30)
    for p in cap.packets[::4]:  # some IPv6 and VLAN-tagged packets too
        p.frame = pcapgen.ether(pcapgen.ipv6("fd00::1", "fd00::2", 6, p.frame[34:]), v6=True,
                                vlans=[7])  # fmt: skip
    data = cap.pcap() if fmt == "pcap" else cap.pcapng()
    header = 24 if fmt == "pcap" else 28
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            mutated[rnd.randrange(header, len(mutated))] = rnd.randrange(256)
        s = summarise(io.BytesIO(bytes(mutated[: rnd.randrange(header, len(mutated) + 1)])))
        d = s.to_dict()
        assert sum(p["packets"] for p in d["protocols"]) == d["packets"]
        assert json.loads(json.dumps(d, allow_nan=False)) == d


def test_text_stream_is_refused() -> None:
    with pytest.raises(TypeError, match="binary"):
        summarise(io.StringIO("not bytes"))  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("stream", ["bytesio", "unseekable"])
def test_records_survive_buffer_reuse_and_jumbo_frames(fmt: str, stream: str) -> None:
    """The read buffer is reused and grows for records larger than it."""
    cap = _capture(20)
    jumbo = pcapgen.ether(pcapgen.ipv4("10.0.0.9", "10.0.0.8", 17, pcapgen.udp(9, 9, bytes(9000))))
    cap.packets.insert(7, pcapgen.Packet(0.15, jumbo))
    data = cap.pcap() if fmt == "pcap" else cap.pcapng()
    src = io.BytesIO(data) if stream == "bytesio" else pcapgen.Unseekable(data)
    recs = list(CaptureReader(src, chunk_size=1000).records())
    assert [r[4] for r in recs] == [p.frame for p in cap.packets]
    assert all(type(r[4]) is bytes for r in recs)
