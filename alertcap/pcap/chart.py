"""Timeline picture: ``timeline_png(summary) -> bytes``, a PNG for email.

Boundary: draws the summary's ``timeline`` (packets/s, bytes/s and new TCP
connections/s, one panel each) with the alert's firing time and the
before/after boundary marked, into an 8-bit palette PNG written with ``zlib``
and a built-in 5x7 bitmap font.  No Pillow/matplotlib: the function app
package and its cold start stay as they are (see bench/results/pcap.md for
the measurement that chose this), and a PNG is what Outlook and Gmail show
inline (no SVG, no scripts).  Pure: the same summary gives the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime
from typing import Any

__all__ = ["timeline_png"]

# palette index -> RGB
_PALETTE = [
    (255, 255, 255),  # 0 background
    (34, 34, 34),  # 1 text
    (200, 200, 200),  # 2 grid / axes
    (31, 119, 180),  # 3 packets
    (44, 160, 44),  # 4 bytes
    (148, 103, 189),  # 5 connections
    (214, 39, 40),  # 6 alert
    (255, 127, 14),  # 7 split
    (232, 240, 250),  # 8 "after" shading
]
_SERIES = (("packets_per_s", "PACKETS/S", 3), ("bytes_per_s", "BYTES/S", 4),
           ("new_connections_per_s", "NEW TCP CONNECTIONS/S", 5))  # fmt: skip

# 5x7 glyphs, one int per row (bit 4 = leftmost column); lower case is drawn as upper.
_FONT: dict[str, tuple[int, ...]] = {
    "A": (14, 17, 17, 17, 31, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14), "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14), "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14), "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14), "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31), "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14), "9": (14, 17, 17, 15, 1, 2, 12),
    ":": (0, 12, 12, 0, 12, 12, 0), ".": (0, 0, 0, 0, 0, 12, 12),
    "/": (0, 1, 2, 4, 8, 16, 0), "-": (0, 0, 0, 31, 0, 0, 0),
    "+": (0, 4, 4, 31, 4, 4, 0), "%": (24, 25, 2, 4, 8, 19, 3),
    "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    ",": (0, 0, 0, 0, 12, 4, 8), " ": (0, 0, 0, 0, 0, 0, 0),
}  # fmt: skip
_UNKNOWN = (31, 17, 17, 17, 17, 17, 31)


class _Canvas:
    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.rows = [bytearray(w) for _ in range(h)]

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: int) -> None:
        """Fill [x0, x1) x [y0, y1), clipped."""
        x0, x1 = max(x0, 0), min(x1, self.w)
        if x1 <= x0:
            return
        fill = bytes((c,)) * (x1 - x0)
        for y in range(max(y0, 0), min(y1, self.h)):
            self.rows[y][x0:x1] = fill

    def vline(self, x: int, y0: int, y1: int, c: int, dash: int = 0) -> None:
        if 0 <= x < self.w:
            for y in range(max(y0, 0), min(y1, self.h)):
                if not dash or (y // dash) % 2 == 0:
                    self.rows[y][x] = c

    def text(self, x: int, y: int, s: str, c: int = 1) -> int:
        for ch in s.upper():
            glyph = _FONT.get(ch, _UNKNOWN)
            for dy, bits in enumerate(glyph):
                yy = y + dy
                if 0 <= yy < self.h:
                    row = self.rows[yy]
                    for dx in range(5):
                        if bits & (16 >> dx) and 0 <= x + dx < self.w:
                            row[x + dx] = c
            x += 6
        return x

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(r) for r in self.rows)  # filter type 0 per row

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data)))  # fmt: skip

        plte = b"".join(bytes(rgb) for rgb in _PALETTE)
        return (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 3, 0, 0, 0))
                + chunk(b"PLTE", plte)
                + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))  # fmt: skip


def _fmt(v: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if v >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def timeline_png(summary: dict[str, Any], *, width: int = 640, panel_height: int = 70) -> bytes:
    """The timeline of ``summary`` as PNG bytes (a placeholder panel when the
    summary has no timeline, e.g. an empty capture)."""
    tl = summary.get("timeline") or {}
    width = max(int(width), 200)
    panel_height = max(int(panel_height), 30)
    left, right, top, gap = 8, 8, 22, 30
    plot_w = width - left - right
    height = top + len(_SERIES) * (panel_height + gap) + 4
    cv = _Canvas(width, height)
    start = tl.get("start")
    bucket = tl.get("bucket_s") or 0.0
    n = len(tl.get("packets_per_s") or [])
    span = n * bucket
    if start is None or not n or span <= 0:
        cv.text(left, 8, "NO PACKETS: NO TIMELINE")
        return cv.png()
    title = f"UTC {_hms(start)} - {_hms(start + span)} ({span:.1f} S)"
    x = cv.text(left, 6, title)

    def xpos(t: float) -> int:
        return left + round((t - start) / span * (plot_w - 1))

    alert_at, split_at = tl.get("alert_at"), tl.get("split_at")
    after = summary.get("split_basis") == "alert" and isinstance(alert_at, int | float)
    if isinstance(alert_at, int | float) and start <= alert_at <= start + span:
        x = cv.text(x + 12, 6, "| ALERT", 6)
    if after:
        cv.rect(x + 12, 5, x + 22, 13, 8)
        cv.text(x + 26, 6, "AFTER THE ALERT", 1)
    elif isinstance(split_at, int | float):
        split_at = float(split_at)
        cv.text(x + 12, 6, ": 1ST/2ND HALF", 7)
    else:
        split_at = None
    for i, (key, label, color) in enumerate(_SERIES):
        series = [float(v) for v in tl.get(key) or []][:n]
        y0 = top + i * (panel_height + gap) + 10
        y1 = y0 + panel_height
        peak = max(series) if series else 0.0
        cv.text(left, y0 - 10, f"{label}  PEAK {_fmt(peak)}", 1)
        if after and isinstance(alert_at, int | float):
            cv.rect(max(xpos(alert_at), left), y0, left + plot_w, y1, 8)
        cv.rect(left, y1, left + plot_w, y1 + 1, 2)  # x axis
        cv.rect(left, y0, left + 1, y1, 2)  # y axis
        cv.rect(left, y0, left + plot_w, y0 + 1, 2)  # peak line
        if peak > 0:
            # one column per pixel: the maximum of the buckets that fall in it
            for px in range(plot_w):
                b0 = px * n // plot_w
                b1 = max((px + 1) * n // plot_w, b0 + 1)
                v = max(series[b0:b1])
                h = round(v / peak * (panel_height - 2))
                if h:
                    cv.rect(left + px, y1 - h, left + px + 1, y1, color)
        if split_at is not None and not after:
            cv.vline(xpos(split_at), y0, y1, 7, dash=3)
        if isinstance(alert_at, int | float) and start <= alert_at <= start + span:
            cv.vline(xpos(alert_at), y0 - 2, y1 + 1, 6)
            cv.vline(xpos(alert_at) + 1, y0 - 2, y1 + 1, 6)
    return cv.png()
