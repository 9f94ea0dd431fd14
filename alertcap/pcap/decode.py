"""Packet headers -> flow keys and counters: the per-packet hot loop.

Boundary: given a :class:`~alertcap.pcap.reader.Chunk` of classic pcap records,
decode link layer (Ethernet with 802.1Q/QinQ tags, Linux SLL and SLL2, raw IP,
BSD loopback), IPv4/IPv6 (skipping IPv6 extension headers) and TCP/UDP, and
count every packet into :class:`~alertcap.pcap.tables.Tables`.  No file
formats (``reader.py``) and no reporting (``summary.py``).

Why it looks the way it does: :func:`scan` runs once per packet, and CPython
spends its time on bytecodes and object creation (about 0.1-0.2 us for each
unpack, slice or method call on the reference machine), so

* the common case -- Ethernet, IPv4 without options, not a fragment, TCP or
  UDP -- is decoded by a single ``struct.unpack_from`` straight from the big
  read buffer (record header aside); IPv6 TCP/UDP without extension headers
  takes the same path after one more unpack, inline, and 802.1Q-tagged frames
  after one more call (:func:`_reframe`); everything else goes to
  :func:`decode`, the readable general decoder, through one function call.
  Reading the record header and the packet headers with one struct was tried
  and measured slower: a struct has one byte order, and turning the
  big-endian fields of a little-endian read back into numbers costs more
  than the second call saves;
* the flow key is *one piece of the packet*: for IPv4 without options the
  source address, destination address, source port and destination port are
  contiguous (IP header bytes 12..24), and likewise for IPv6 without extension
  headers (bytes 8..44) -- so a key is one ``bytes`` object, already hashable.
  Keys are directional; ``summary.py`` pairs directions up once at the end,
  which is far cheaper than canonicalising every packet;
* no grand totals or per-protocol counters are kept per packet: they are sums
  over the tables, and a flow's packet count is the sum of its time slices.
  Rarer traffic (ICMP, ARP, fragments, truncated headers) is counted by method
  calls on ``Tables``;
* in-order TCP data is one comparison; anything else (and SYN, FIN, RST) goes
  to ``Tables.tcp_flags`` / :func:`~alertcap.pcap.tables.track_seq`;
* attribute lookups are hoisted into locals and counters are written back to
  ``Tables`` once per chunk.

Flow key layout (see :func:`split_key`): ``src, dst, sport, dport`` -- 4+4+2+2
bytes for IPv4, 16+16+2+2 for IPv6.

What counts as a retransmission is defined at
:func:`alertcap.pcap.tables.track_seq`.
"""

from __future__ import annotations

import struct

from alertcap.pcap.reader import Chunk
from alertcap.pcap.tables import INSPECT, NEXT, Tables, reverse_key, track_seq

try:  # the optional C accelerator of scan()'s common case (_fastscan.c)
    from alertcap.pcap import _fastscan
except ImportError:  # not built here: scan() alone gives the same counts
    _fastscan = None  # type: ignore[assignment]

__all__ = ["NON_IP_NAMES", "decode", "inspect", "reverse_key", "scan", "split_key", "transport"]

_IP4 = struct.Struct(">BxH2xHxB")  # version/IHL, total length, flags/fragment, protocol
_IP6 = struct.Struct(">4xHB")  # payload length, next header
_TCP = struct.Struct(">I4xBB")  # from byte 4: sequence number, data offset, flags
_VLAN = frozenset((0x8100, 0x88A8, 0x9100))
_RAW_IP = frozenset((101, 228, 229, 12, 14))
_NULL = frozenset((0, 108))  # BSD loopback: 4-byte address family
_AF_INET6 = frozenset((10, 24, 28, 30))
# IPv6 extension headers with the generic (next header, length in 8-octet units) layout
_IP6_EXT = frozenset((0, 43, 60, 135, 139, 140, 253, 254))

# Negative Tables.non_ip kinds; non-negative kinds are EtherTypes.
SHORT_FRAME = -1
SHORT_IP4 = -2
SHORT_IP6 = -3
UNKNOWN_LINK = -4
NON_IP_NAMES = {
    SHORT_FRAME: "link header truncated",
    SHORT_IP4: "ipv4 header truncated",
    SHORT_IP6: "ipv6 header truncated",
    UNKNOWN_LINK: "unsupported link type",
    0x0806: "arp",
    0x8035: "rarp",
    0x88CC: "lldp",
    0x8863: "pppoe-discovery",
    0x8864: "pppoe",
    0x8847: "mpls",
    0x8848: "mpls",
    0x88E5: "macsec",
    0x888E: "eapol",
}


def split_key(key: bytes) -> tuple[bytes, bytes, int, int]:
    """Directional flow key -> (src address, dst address, sport, dport)."""
    a = (len(key) - 4) // 2
    return key[:a], key[a : 2 * a], key[2 * a] << 8 | key[2 * a + 1], key[-2] << 8 | key[-1]


def _ip6_transport(buf: bytes | bytearray, pos: int, end: int, nh: int) -> tuple[int, int]:
    """Skip IPv6 extension headers: (transport offset, protocol), or -1 as the
    protocol for a non-first fragment or a header chain cut off by the snaplen."""
    while True:
        if nh in _IP6_EXT:
            if pos + 8 > end:
                return pos, -1
            nh, pos = buf[pos], pos + (buf[pos + 1] + 1) * 8
        elif nh == 44:  # fragment header
            if pos + 8 > end:
                return pos, -1
            if (buf[pos + 2] << 8 | buf[pos + 3]) & 0xFFF8:
                return pos, -1  # not the first fragment: no transport header here
            nh, pos = buf[pos], pos + 8
        elif nh == 51:  # authentication header counts in 4-octet units
            if pos + 8 > end:
                return pos, -1
            nh, pos = buf[pos], pos + (buf[pos + 1] + 2) * 4
        else:
            return pos, nh


# The fast path reads, from Ethernet byte 12: EtherType, IPv4 version/IHL, total
# length, flags/fragment offset, protocol, and (assuming a 20-byte IP header)
# the flow key (addresses and ports, 12 bytes) and the TCP sequence number,
# data offset and flags -- all with one unpack, no separate slice.
_FAST = struct.Struct(">HBxH2xHxB2x12sI4xBB")
_FAST_MIN = 14 + 20 + 20  # a TCP header cut short is left to decode(), like tshark does
# IPv4 header (20 bytes) + TCP header, by the TCP data-offset byte: one
# subscript instead of a shift, a mask and a subtraction per segment
_HEADERS = tuple(20 + ((doff >> 2) & 0x3C) for doff in range(256))


_FAST6 = struct.Struct(">HBx36sI4xBB")  # from IPv6 byte 4: payload length, next
# header, the flow key (addresses and ports, 36 bytes), TCP sequence number,
# data offset and flags


def _reframe(
    buf: bytes | bytearray, p: int, end: int, et: int
) -> tuple[int, int, int, int, bytes, int, int, int] | None:
    """The fast path's fields (from ``vihl`` on) for an Ethernet frame that is
    not plain IPv4: IPv4 behind 802.1Q/QinQ tags, or IPv6 TCP/UDP without
    extension headers (behind tags or not).  An IPv6 packet is dressed up as
    IPv4 without options: ``iplen`` = payload length + 20 makes the caller's
    TCP payload arithmetic come out right.  None when decode() must look,
    which then counts the packet exactly as it would have anyway.
    """
    q = p + 14
    while et in _VLAN and q + 4 <= end:
        et = buf[q + 2] << 8 | buf[q + 3]
        q += 4
    if et == 0x0800:
        if q + 40 <= end:  # full IPv4 and TCP headers, as in the untagged case
            return _FAST.unpack_from(buf, q - 2)[1:]
    elif et == 0x86DD and q + 60 <= end:  # full IPv6 and TCP headers
        plen, nh, key, seq, doff, flags = _FAST6.unpack_from(buf, q + 4)
        if nh == 6 or nh == 17:
            return 0x45, plen + 20, 0, nh, key, seq, doff, flags
    return None


def scan(chunk: Chunk, tb: Tables, native: bool = True) -> None:
    """Count every complete record of ``chunk`` into ``tb``; set ``chunk.used``.

    ``native``: let the C accelerator (when built) count the packets of the fast path
    (Ethernet and its tags, IPv4/IPv6 TCP/UDP of a known flow, in order); it stops at any
    other packet, which this loop counts, and is called again after it.
    """
    buf = chunk.data
    n = chunk.size
    rec = chunk.record.unpack_from
    max_caplen = chunk.max_caplen
    lt = chunk.linktype
    # Records shorter than this never take the fast path (nor do non-Ethernet ones).
    fast_min = _FAST_MIN if lt == 1 else 1 << 62
    tb.set_units(chunk.units)
    fast = _FAST.unpack_from
    reframe = _reframe
    fast6 = _FAST6.unpack_from
    tcp_hdr = _TCP.unpack_from
    headers = _HEADERS
    tcp = tb.tcp
    udp = tb.udp
    new_flow = tb.new_flow
    tcp_flags = tb.tcp_flags
    advance = tb.advance
    units = tb.units
    cur = tb.cur
    be_sec, be_frac = tb.bin_end
    # packets and bytes of the current timeline bucket: locals, flushed by advance()
    tpk = tby = 0
    off = 0
    last = -1
    last_header = n - 16
    fast_c = _fastscan.run if native and _fastscan is not None and lt == 1 else None
    little = chunk.record.format[0] == "<"
    while off <= last_header:
        if fast_c is not None:
            off, pk, by, done = fast_c(buf, off, n, little, max_caplen, fast_min, be_sec,
                                       be_frac, tcp, udp, cur)  # fmt: skip
            if pk:
                tpk += pk
                tby += by
                last = done
            if off > last_header:
                break
        ts_sec, ts_frac, caplen, wirelen = rec(buf, off)
        p = off + 16
        end = p + caplen
        if end > n or caplen > max_caplen:
            break  # incomplete here (the reader carries it over) or corrupt
        last = off
        off = end
        if ts_sec >= be_sec and (ts_sec > be_sec or ts_frac >= be_frac):
            cur, be_sec, be_frac = advance(ts_sec, ts_frac, tpk, tby)
            tpk = tby = 0
        tpk += 1
        tby += wirelen

        if caplen >= fast_min:
            # The fast path; its TCP branch is the hottest code in this package.
            et, vihl, iplen, frag, proto, key, seq, doff, flags = fast(buf, p + 12)
            if et != 0x0800:
                # IPv6 and 802.1Q tags (a tenth of the benchmark's packets) are
                # rewritten into the same fields, or vihl = 0 leaves them to decode().
                if et == 0x86DD and p + 74 <= end:  # untagged IPv6, full TCP header:
                    # inline, as a call costs as much as the unpack
                    iplen, proto, key, seq, doff, flags = fast6(buf, p + 18)
                    if proto == 6 or proto == 17:
                        vihl, iplen, frag = 0x45, iplen + 20, 0
                    else:
                        vihl = 0
                else:
                    hdr = reframe(buf, p, end, et)
                    if hdr is None:
                        vihl = 0
                    else:
                        vihl, iplen, frag, proto, key, seq, doff, flags = hdr
            if vihl == 0x45 and not frag & 0x1FFF:
                if proto == 6:
                    try:
                        st = tcp[key]  # a subscript is cheaper than .get(); misses are rare
                    except KeyError:
                        st = new_flow(tcp, key, 6, ts_sec * units + ts_frac)
                    st[0] += wirelen
                    st[cur] += 1
                    payload = iplen - headers[doff]
                    if flags & 7:  # SYN, FIN or RST: rare, so a call is fine
                        tcp_flags(st, key, seq, payload, flags, ts_sec, ts_frac)
                    elif payload > 0:
                        if seq == st[NEXT]:
                            st[NEXT] = seq + payload  # in order: the common case
                        else:
                            nxt = st[NEXT]
                            if nxt is not None and nxt >= INSPECT:
                                inspect(buf, p, end, lt, 6, tb)
                            track_seq(tb, st, seq, payload, flags)
                    continue
                if proto == 17:
                    try:
                        st = udp[key]
                    except KeyError:
                        st = new_flow(udp, key, 17, ts_sec * units + ts_frac)
                    st[0] += wirelen
                    st[cur] += 1
                    if st[2]:  # a DNS response
                        inspect(buf, p, end, lt, 17, tb)
                    continue

        # Everything else: the general decoder, then the same counting.
        found = decode(buf, p, end, lt, wirelen, cur, tb)
        if found is None:
            continue
        key, proto, l4, l4len = found
        table = tcp if proto == 6 else udp
        st = table.get(key) or new_flow(table, key, proto, ts_sec * units + ts_frac)
        st[0] += wirelen
        st[cur] += 1
        if proto == 6:
            seq, doff, flags = tcp_hdr(buf, l4 + 4)
            payload = l4len - ((doff >> 2) & 0x3C)
            if flags & 7:
                tcp_flags(st, key, seq, payload, flags, ts_sec, ts_frac)
            elif payload > 0:
                nxt = st[NEXT]
                if nxt is not None and nxt >= INSPECT:
                    inspect(buf, p, end, lt, 6, tb)
                track_seq(tb, st, seq, payload, flags)
        elif st[2]:
            inspect(buf, p, end, lt, 17, tb)

    chunk.used = off
    if tpk:
        tb.tl_packets[tb.tcur] += tpk
        tb.tl_bytes[tb.tcur] += tby
    if last >= 0:
        ts_sec, ts_frac = rec(buf, last)[:2]
        tb.t_last = ts_sec * tb.units + ts_frac
    tb.cur = cur


def inspect(buf: bytes | bytearray, p: int, end: int, lt: int, proto: int, tb: Tables) -> None:
    """Hand the TCP/UDP payload of the packet at ``buf[p:end]`` to ``tb.names``."""
    if tb.names is None:
        return
    found = transport(buf, p, end, lt)
    if found is None:
        return
    l4, stop, dst = found
    if proto == 6:
        start = l4 + ((buf[l4 + 12] >> 2) & 0x3C)
        tb.names.tcp_payload(bytes(buf[start:stop]), bytes(dst))
    else:
        tb.names.dns_response(buf[l4 + 8 : stop])


def transport(
    buf: bytes | bytearray, p: int, end: int, lt: int
) -> tuple[int, int, bytes | bytearray] | None:
    """(transport header offset, end of the IP payload within the capture,
    destination address) of a TCP/UDP packet; None if it is not one.  Side-effect free, for the rare
    packets whose payload is read."""
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
        q, et = p + 4, (0x0800 if af == 2 else 0x86DD if af in _AF_INET6 else -1)
    else:
        return None
    while et in _VLAN and q + 4 <= end:
        et = buf[q + 2] << 8 | buf[q + 3]
        q += 4
    if et == 0x0800 and q + 20 <= end:
        vihl, iplen, _frag, proto = _IP4.unpack_from(buf, q)
        l4 = q + ((vihl & 15) << 2)
        stop = min(end, q + iplen) if iplen else end
        dst = buf[q + 16 : q + 20]
    elif et == 0x86DD and q + 40 <= end:
        plen, proto = _IP6.unpack_from(buf, q)
        l4 = q + 40
        if proto != 6 and proto != 17:
            l4, proto = _ip6_transport(buf, l4, end, proto)
        stop = min(end, q + 40 + plen) if plen else end
        dst = buf[q + 24 : q + 40]
    else:
        return None
    if (proto == 6 and l4 + 20 <= stop) or (proto == 17 and l4 + 8 <= stop):
        return l4, stop, dst
    return None


def decode(
    buf: bytes | bytearray, p: int, end: int, lt: int, wirelen: int, cur: int, tb: Tables
) -> tuple[bytes, int, int, int] | None:
    """The general decoder for one packet at ``buf[p:end]``.

    Returns ``(flow key, 6 or 17, transport offset, transport length)`` for a
    TCP/UDP packet whose ports are present; counts anything else into ``tb``
    itself and returns None.
    """
    # -- link layer: q = network header offset, et = EtherType --------------
    if lt == 1:
        q = p + 14
        et = buf[p + 12] << 8 | buf[p + 13] if q <= end else -1
    elif lt == 113:  # Linux cooked v1
        q = p + 16
        et = buf[p + 14] << 8 | buf[p + 15] if q <= end else -1
    elif lt == 276:  # Linux cooked v2
        q = p + 20
        et = buf[p] << 8 | buf[p + 1] if q <= end else -1
    elif lt in _RAW_IP:
        q = p
        et = (0x86DD if buf[q] >> 4 == 6 else 0x0800) if q < end else -1
    elif lt in _NULL:
        q = p + 4
        # host byte order of the capturing machine: the value is small,
        # so whichever end byte is non-zero carries it
        af = buf[p] | buf[p + 3] if q <= end else -1
        et = 0x0800 if af == 2 else 0x86DD if af in _AF_INET6 else -1 if af < 0 else 0
    else:
        tb.count_non_ip(UNKNOWN_LINK, wirelen)
        return None
    if et < 0:
        tb.count_non_ip(SHORT_FRAME, wirelen)
        return None
    while et in _VLAN and q + 4 <= end:
        et = buf[q + 2] << 8 | buf[q + 3]
        q += 4

    # -- network layer ------------------------------------------------------
    if et == 0x0800:
        if q + 20 > end:
            tb.count_non_ip(SHORT_IP4, wirelen)
            return None
        vihl, iplen, frag, proto = _IP4.unpack_from(buf, q)
        ihl = (vihl & 15) << 2
        l4 = q + ihl
        if proto == 1 and buf[l4 : l4 + 1] == b"\x03" and not frag & 0x1FFF:
            tb.count_unreachable(buf[q + 12 : q + 16], buf[q + 16 : q + 20], buf[l4 + 1],
                                 buf[l4 + 8 : min(end, l4 + 72)], False)  # fmt: skip
        if frag & 0x1FFF or ihl < 20 or not (
            (proto == 6 and l4 + 20 <= end) or (proto == 17 and l4 + 8 <= end)
        ):
            if (proto == 6 or proto == 17) and not frag & 0x1FFF:
                tb.short_packets += 1
            tb.other_ip(proto, buf[q + 12 : q + 20], wirelen, cur)
            return None
        # bytes(): the read buffer is reused, and a bytearray is no dict key
        key = bytes(buf[q + 12 : q + 20] + buf[l4 : l4 + 4])
        return key, proto, l4, iplen - ihl
    if et == 0x86DD:
        if q + 40 > end:
            tb.count_non_ip(SHORT_IP6, wirelen)
            return None
        plen, proto = _IP6.unpack_from(buf, q)
        l4 = q + 40
        if proto != 6 and proto != 17:
            l4, proto = _ip6_transport(buf, l4, end, proto)
        if proto == 58 and buf[l4 : l4 + 1] == b"\x01" and l4 + 2 <= end:
            tb.count_unreachable(buf[q + 8 : q + 24], buf[q + 24 : q + 40], buf[l4 + 1],
                                 buf[l4 + 8 : min(end, l4 + 92)], True)  # fmt: skip
        if not ((proto == 6 and l4 + 20 <= end) or (proto == 17 and l4 + 8 <= end)):
            if proto == 6 or proto == 17:
                tb.short_packets += 1
            # -1: a non-first fragment or a cut-off header chain; file it as "fragment"
            tb.other_ip(44 if proto < 0 else proto, buf[q + 8 : q + 40], wirelen, cur)
            return None
        key = bytes(buf[q + 8 : q + 40] + buf[l4 : l4 + 4])
        return key, proto, l4, plen - (l4 - q - 40)
    tb.count_non_ip(et, wirelen)
    return None
