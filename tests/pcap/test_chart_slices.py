"""The timeline picture (a real PNG with the alert marked) and the evidence
slices (small pcaps that tshark reads back with exactly the selected packets)."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from alertcap.pcap import selectors, summarise, timeline_png, write_slices
from tests.pcap import pcapgen
from tests.pcap.wireshark import capinfos, stats

BASE = 1_760_000_000
ROOT = Path(__file__).resolve().parents[2]


def _decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]], list[bytes]]:
    """(width, height, palette, rows of palette indices) of our 8-bit palette PNGs,
    checking every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, palette = 8, b"", []
    width = height = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert (depth, colour) == (8, 3)
        elif kind == b"PLTE":
            palette = [tuple(body[i : i + 3]) for i in range(0, n, 3)]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    rows = [raw[y * (width + 1) + 1 : (y + 1) * (width + 1)] for y in range(height)]
    assert all(raw[y * (width + 1)] == 0 for y in range(height))
    return width, height, palette, rows  # type: ignore[return-value]


def _mixed_summary(**kw: Any) -> dict[str, Any]:
    return summarise(io.BytesIO(pcapgen.mixed().cap.pcap()), **kw).to_dict()


def test_png_marks_the_alert_and_draws_the_series() -> None:
    s = _mixed_summary(alert_time=BASE + 5.5)
    t = time.perf_counter()
    png = timeline_png(s)
    elapsed = time.perf_counter() - t
    width, _height, palette, rows = _decode_png(png)
    assert (width, palette[6]) == (640, (214, 39, 40))
    tl = s["timeline"]
    span = len(tl["packets_per_s"]) * tl["bucket_s"]
    x_alert = 8 + round(5.5 / span * (640 - 16 - 1))
    red_columns = {x for r in rows[40:] for x, c in enumerate(r) if c == 6}
    assert red_columns == {x_alert, x_alert + 1}
    for colour in (3, 4, 5):  # packets, bytes, connections are all drawn
        assert any(colour in r for r in rows)
    # the surge after the alert is in the bytes panel: shaded "after" area left of
    # the alert line holds no shading
    assert not any(8 in r[: x_alert] for r in rows[30:])
    assert elapsed < 0.5
    assert png == timeline_png(s)  # pure


def test_png_without_packets_is_still_a_picture() -> None:
    w, _h, _, rows = _decode_png(timeline_png({}))
    assert w == 640 and any(1 in r for r in rows)


def test_html_references_the_png_by_content_id() -> None:
    from alertcap.pcap import render_html, render_text

    s = _mixed_summary()
    page = render_html(s)
    assert page.index("Nothing abnormal") < page.index('src="cid:timeline"') < page.index(
        "Capture summary")  # fmt: skip
    text = render_text(s)
    assert "Top conversations by packets (top 5 of 10)" in text


def test_slices_hold_exactly_the_selected_packets(tmp_path: Path) -> None:
    m = pcapgen.mixed()
    data = m.cap.pcap()
    s = summarise(io.BytesIO(data)).to_dict()
    sels = selectors(s)
    assert list(sels) == [f"conversation-{i}" for i in range(1, 6)]
    files, info = write_slices(io.BytesIO(data), sels)
    for i, (name, blob) in enumerate(files.items()):
        conv = s["top_conversations_by_bytes"][i]
        path = tmp_path / f"{name}.pcap"
        path.write_bytes(blob)
        st = stats(path, "frame.number")
        assert info[name].packets == conv["packets"] == st.io[0]
        assert len(st.conv[conv["proto"]]) == 1  # one conversation, nothing else
        assert int(capinfos(path)["Data size"].split()[0]) == conv["bytes"]


def test_finding_slices_and_limits(tmp_path: Path) -> None:
    cap = pcapgen.Capture()
    for port in range(1, 101):
        c = pcapgen.TcpConn(cap, "10.0.0.66", 61000, "10.0.0.4", port, isn=(port, 0))
        c.send(port * 0.01, 0, pcapgen.SYN)
        c.send(port * 0.01 + 0.0001, 1, pcapgen.RST | pcapgen.ACK)
    data = cap.pcap(nanos=True)
    s = summarise(io.BytesIO(data)).to_dict()
    sels = selectors(s)
    assert sels["finding-1-port_scan"] == {"proto": "tcp", "a": "10.0.0.66", "a_port": None,
                                           "b": "10.0.0.4", "b_port": None}  # fmt: skip
    files, info = write_slices(io.BytesIO(data), sels, max_packets=50)
    blob = files["finding-1-port_scan"]
    assert blob[:4] == struct.pack("<I", 0xA1B23C4D)  # nanosecond pcap, like the input
    assert info["finding-1-port_scan"].packets == 50
    assert info["finding-1-port_scan"].dropped == 150
    path = tmp_path / "scan.pcap"
    path.write_bytes(blob)
    assert stats(path, "frame.number").io[0] == 50


def test_cli_png_and_slices(tmp_path: Path) -> None:
    path = tmp_path / "m.pcap"
    path.write_bytes(pcapgen.mixed().cap.pcap())
    out = subprocess.run(
        [sys.executable, "-m", "alertcap.pcap", str(path), "--alert-time",
         "2025-10-09T08:53:25Z", "--png", str(tmp_path / "t.png"), "--slices",
         str(tmp_path / "slices")], capture_output=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert _decode_png((tmp_path / "t.png").read_bytes())[0] == 640
    assert sorted(p.name for p in (tmp_path / "slices").iterdir())[0] == "conversation-1.pcap"
    bad = subprocess.run([sys.executable, "-m", "alertcap.pcap", str(path), "--alert-time",
                          "soon"], capture_output=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and b"not a time" in bad.stderr and b"Traceback" not in bad.stderr


def test_bad_selectors_are_refused_by_name() -> None:
    import pytest

    data = pcapgen.mixed().cap.pcap()
    for sel, message in (({"a": "10.0.0.999"}, "not an IP address"),
                         ({"b_port": 70000}, "not a port"),
                         ({"proto": "sctp"}, "unknown protocol")):  # fmt: skip
        with pytest.raises(ValueError, match=message) as err:
            write_slices(io.BytesIO(data), {"mine": sel})
        assert "'mine'" in str(err.value)
