"""Evidence slices: small pcap files holding only one finding's or one
conversation's packets, so nobody downloads a gigabyte to see one flow.

Boundary: one streaming pass over a capture (any binary ``.read`` stream, like
the summary) -> ``{name: pcap bytes}``.  Selectors come from the summary
(:func:`selectors`: the ``slice`` of each finding and the 5-tuples of the top
conversations); a selector ``{proto, a, a_port, b, b_port}`` matches a packet
in either direction, null fields matching anything.  Memory is bounded: each
slice keeps at most ``max_packets`` packets and ``max_bytes`` bytes (the first
ones; the count of the rest is returned in ``info``).  Output is classic pcap
with the input's link type and timestamp resolution (pcapng input is written
as nanosecond pcap, one link type: the first one seen).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any

from alertcap.pcap.decode import _IP4, _IP6, _NULL, _RAW_IP, _VLAN, _ip6_transport
from alertcap.pcap.reader import CaptureReader, Readable

__all__ = ["SliceInfo", "selectors", "write_slices"]

_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
MAX_PACKETS = 10_000
MAX_BYTES = 16 << 20


@dataclass
class SliceInfo:
    packets: int = 0
    size: int = 0  # bytes of pcap records kept
    dropped: int = 0  # matching packets past the limits
    parts: list[bytes] = field(default_factory=list)


def selectors(summary: dict[str, Any], *, findings: int = 5, conversations: int = 5
              ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Slice names -> selectors for the top findings and conversations."""
    out: dict[str, dict[str, Any]] = {}
    for i, f in enumerate(f for f in summary.get("findings") or [] if f.get("slice")):
        if i >= findings:
            break
        out[f"finding-{i + 1}-{f['kind']}"] = f["slice"]
    seen = list(out.values())
    for i, c in enumerate(summary.get("top_conversations_by_bytes") or []):
        if i >= conversations or c.get("aggregated"):
            continue
        sel = {k: c.get(k) for k in ("proto", "a", "a_port", "b", "b_port")}
        if sel not in seen:
            out[f"conversation-{i + 1}"] = sel
            seen.append(sel)
    return out


class _Matcher:
    def __init__(self, name: str, sel: dict[str, Any]) -> None:
        def packed(h: Any) -> bytes | None:
            if h is None:
                return None
            try:
                return ipaddress.ip_address(h).packed
            except ValueError:
                raise ValueError(f"slice {name!r}: not an IP address: {h!r}") from None

        def port(p: Any) -> int | None:
            if p is None or (isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 65536):
                return p
            raise ValueError(f"slice {name!r}: not a port: {p!r}")

        proto = sel.get("proto")
        if proto is not None and proto not in _PROTO:
            raise ValueError(f"slice {name!r}: unknown protocol {proto!r} (one of {list(_PROTO)})")
        self.proto = _PROTO[proto] if proto is not None else None
        self.a, self.b = packed(sel.get("a")), packed(sel.get("b"))
        self.ap, self.bp = port(sel.get("a_port")), port(sel.get("b_port"))

    def _one(self, src: bytes, dst: bytes, sp: int | None, dp: int | None) -> bool:
        return (
            (self.a is None or self.a == src)
            and (self.b is None or self.b == dst)
            and (self.ap is None or self.ap == sp)
            and (self.bp is None or self.bp == dp)
        )

    def __call__(
        self, proto: int, src: bytes, dst: bytes, sp: int | None, dp: int | None
    ) -> bool:
        if self.proto is not None and proto != self.proto:
            return False
        return self._one(src, dst, sp, dp) or self._one(dst, src, dp, sp)


def _fields(buf: bytes | bytearray, p: int, end: int, lt: int
            ) -> tuple[int, bytes, bytes, int | None, int | None] | None:  # fmt: skip
    """(IP protocol, src, dst, sport, dport) of an IP packet; ports None if absent."""
    if lt == 1:
        q, et = p + 14, (buf[p + 12] << 8 | buf[p + 13] if p + 14 <= end else -1)
    elif lt == 113:
        q, et = p + 16, (buf[p + 14] << 8 | buf[p + 15] if p + 16 <= end else -1)
    elif lt == 276:
        q, et = p + 20, (buf[p] << 8 | buf[p + 1] if p + 20 <= end else -1)
    elif lt in _RAW_IP:
        q, et = p, ((0x86DD if buf[p] >> 4 == 6 else 0x0800) if p < end else -1)
    elif lt in _NULL:
        af = buf[p] | buf[p + 3] if p + 4 <= end else -1
        q, et = p + 4, (0x0800 if af == 2 else 0x86DD if af in (10, 24, 28, 30) else -1)
    else:
        return None
    while et in _VLAN and q + 4 <= end:
        et = buf[q + 2] << 8 | buf[q + 3]
        q += 4
    if et == 0x0800 and q + 20 <= end:
        vihl, _len, frag, proto = _IP4.unpack_from(buf, q)
        src, dst = bytes(buf[q + 12 : q + 16]), bytes(buf[q + 16 : q + 20])
        l4 = q + ((vihl & 15) << 2)
        if frag & 0x1FFF:
            return proto, src, dst, None, None
    elif et == 0x86DD and q + 40 <= end:
        _plen, proto = _IP6.unpack_from(buf, q)
        src, dst = bytes(buf[q + 8 : q + 24]), bytes(buf[q + 24 : q + 40])
        l4, proto = _ip6_transport(buf, q + 40, end, proto)
        if proto < 0:
            return 44, src, dst, None, None
    else:
        return None
    if proto in (6, 17) and l4 + 4 <= end:
        return proto, src, dst, buf[l4] << 8 | buf[l4 + 1], buf[l4 + 2] << 8 | buf[l4 + 3]
    return proto, src, dst, None, None


def write_slices(
    stream: Readable, sels: dict[str, dict[str, Any]], *,
    max_packets: int = MAX_PACKETS, max_bytes: int = MAX_BYTES,
) -> tuple[dict[str, bytes], dict[str, SliceInfo]]:  # fmt: skip
    """One pass over ``stream``: ``({name: pcap bytes}, {name: SliceInfo})``.

    Raises ValueError (naming the slice) for a selector that is not an IP
    address, port or known protocol, before reading the stream."""
    matchers = {name: _Matcher(name, sel) for name, sel in sels.items()}
    reader = CaptureReader(stream)
    info = {name: SliceInfo() for name in sels}
    header: tuple[int, int] | None = None  # (link type, units)
    le = struct.Struct("<IIII")
    if not matchers:
        return {}, {}
    for chunk in reader.chunks():
        if header is None:
            header = (chunk.linktype, chunk.units)
        buf, n, rec = chunk.data, chunk.size, chunk.record
        same_link = chunk.linktype == header[0]
        off = 0
        while off + 16 <= n:
            ts_sec, ts_frac, caplen, wirelen = rec.unpack_from(buf, off)
            end = off + 16 + caplen
            if end > n or caplen > chunk.max_caplen:
                break
            if same_link:
                got = _fields(buf, off + 16, end, chunk.linktype)
                if got is not None:
                    for name, match in matchers.items():
                        if match(*got):
                            si = info[name]
                            if si.packets >= max_packets or si.size + caplen + 16 > max_bytes:
                                si.dropped += 1
                                continue
                            si.parts.append(le.pack(ts_sec, ts_frac, caplen, wirelen))
                            si.parts.append(bytes(buf[off + 16 : end]))
                            si.packets += 1
                            si.size += caplen + 16
            off = end
        chunk.used = off
    linktype, units = header or (1, 1_000_000)
    magic = 0xA1B2C3D4 if units == 1_000_000 else 0xA1B23C4D
    head = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, reader.snaplen or 262144, linktype)
    out = {}
    for name, si in info.items():
        out[name] = head + b"".join(si.parts)
        si.parts = []
    return out, info
