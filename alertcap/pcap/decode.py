"""Packet headers -> flow keys and counters: the per-packet hot loop.

Boundary: given a :class:`~alertcap.pcap.reader.Chunk` of classic pcap records,
decode link layer (Ethernet with 802.1Q/QinQ tags, Linux SLL and SLL2, raw IP,
BSD loopback), IPv4/IPv6 (skipping IPv6 extension headers) and TCP/UDP, and
count every packet into :class:`~alertcap.pcap.tables.Tables`.  No file
formats (``reader.py``) and no reporting (``summary.py``).

Why it looks the way it does: this loop runs once per packet, and CPython
spends most of its time on bytecodes and object creation, so

* one ``struct.unpack_from`` per header, straight from the big read buffer;
* the flow key is *one slice of the packet*: for IPv4 without options the
  source address, destination address, source port and destination port are
  contiguous (IP header bytes 12..24), and likewise for IPv6 without extension
  headers (bytes 8..44) -- so a key costs one ``bytes`` object and is already
  hashable.  Keys are directional; ``summary.py`` pairs directions up once at
  the end, which is far cheaper than canonicalising every packet;
* TCP and UDP protocol totals are not counted per packet: they are the sums of
  the flow tables.  Everything rarer (ICMP, ARP, fragments, truncated headers)
  goes through a method call on ``Tables``;
* attribute lookups are hoisted into locals and the totals are written back to
  ``Tables`` once per chunk.

Flow key layout (see :func:`split_key`): ``src, dst, sport, dport`` -- 4+4+2+2
bytes for IPv4, 16+16+2+2 for IPv6.

Retransmission, as counted here: a TCP segment that carries data (or SYN/FIN)
and whose first sequence number lies before the end of the highest sequence
range already seen in the same direction of the same flow -- Wireshark's basic
rule.  Keep-alives (at most one byte at next_seq - 1) are not counted; unlike
Wireshark we do not split out "fast", "spurious" or "out-of-order" cases.
"""

from __future__ import annotations

import struct

from alertcap.pcap.reader import Chunk
from alertcap.pcap.tables import NEXT, RETX, Tables

__all__ = ["NON_IP_NAMES", "reverse_key", "scan", "split_key"]

_IP4 = struct.Struct(">BxH2xHxB")  # version/IHL, total length, flags/fragment, protocol
_IP6 = struct.Struct(">4xHB")  # payload length, next header
_TCP = struct.Struct(">I4xBB")  # from byte 4: sequence number, data offset, flags
_VLAN = frozenset((0x8100, 0x88A8, 0x9100))
_RAW_IP = frozenset((101, 228, 229, 12, 14))
_NULL = frozenset((0, 108))  # BSD loopback: 4-byte address family
_AF_INET6 = frozenset((10, 24, 28, 30))
# IPv6 extension headers with the generic (next header, length in 8-octet units) layout
_IP6_EXT = frozenset((0, 43, 60, 135, 139, 140, 253, 254))
_MASK32 = 0xFFFFFFFF

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


def reverse_key(key: bytes) -> bytes:
    a = (len(key) - 4) // 2
    return key[a : 2 * a] + key[:a] + key[-2:] + key[2 * a : 2 * a + 2]


def _ip6_transport(buf: bytes, pos: int, end: int, nh: int) -> tuple[int, int]:
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


def scan(chunk: Chunk, tb: Tables) -> None:
    """Count every complete record of ``chunk`` into ``tb``; set ``chunk.used``."""
    buf = chunk.data
    n = len(buf)
    rec = chunk.record.unpack_from
    max_caplen = chunk.max_caplen
    lt = chunk.linktype
    tb.set_units(chunk.units)
    units = tb.units
    ip4 = _IP4.unpack_from
    ip6 = _IP6.unpack_from
    tcp_hdr = _TCP.unpack_from
    tcp = tb.tcp
    udp = tb.udp
    tcp_get = tcp.get
    udp_get = udp.get
    new_flow = tb.new_flow
    other_ip = tb.other_ip
    non_ip = tb.count_non_ip
    count_syn = tb.count_syn
    vlan = _VLAN
    raw_ip = lt in _RAW_IP
    null = lt in _NULL
    cur = tb.cur
    bin_end = tb.bin_end
    t = tb.t_last
    packets = nbytes = captured = 0
    syn = syn_ack = rst = fin = retx = data_segs = short = 0
    off = 0
    while off + 16 <= n:
        ts_sec, ts_frac, caplen, wirelen = rec(buf, off)
        p = off + 16
        end = p + caplen
        if end > n or caplen > max_caplen:
            break  # incomplete here (the reader carries it over) or corrupt
        off = end
        packets += 1
        nbytes += wirelen
        captured += caplen
        t = ts_sec * units + ts_frac
        if t >= bin_end:
            cur, bin_end = tb.advance(t)

        # -- link layer: q = network header offset, et = EtherType ----------
        if lt == 1:
            q = p + 14
            if q > end:
                non_ip(SHORT_FRAME, wirelen)
                continue
            et = buf[p + 12] << 8 | buf[p + 13]
        elif lt == 113:  # Linux cooked v1
            q = p + 16
            if q > end:
                non_ip(SHORT_FRAME, wirelen)
                continue
            et = buf[p + 14] << 8 | buf[p + 15]
        elif lt == 276:  # Linux cooked v2
            q = p + 20
            if q > end:
                non_ip(SHORT_FRAME, wirelen)
                continue
            et = buf[p] << 8 | buf[p + 1]
        elif raw_ip:
            q = p
            if q >= end:
                non_ip(SHORT_FRAME, wirelen)
                continue
            et = 0x86DD if buf[q] >> 4 == 6 else 0x0800
        elif null:
            q = p + 4
            if q > end:
                non_ip(SHORT_FRAME, wirelen)
                continue
            # host byte order of the capturing machine: the value is small,
            # so whichever end byte is non-zero carries it
            af = buf[p] | buf[p + 3]
            et = 0x0800 if af == 2 else 0x86DD if af in _AF_INET6 else 0
        else:
            non_ip(UNKNOWN_LINK, wirelen)
            continue
        if et != 0x0800 and et != 0x86DD:
            while et in vlan and q + 4 <= end:
                et = buf[q + 2] << 8 | buf[q + 3]
                q += 4

        # -- network layer: key = addresses + ports, l4 = transport offset --
        if et == 0x0800:
            if q + 20 > end:
                non_ip(SHORT_IP4, wirelen)
                continue
            vihl, iplen, frag, proto = ip4(buf, q)
            ihl = (vihl & 15) << 2
            l4 = q + ihl
            if not (
                ((proto == 6 and l4 + 14 <= end) or (proto == 17 and l4 + 4 <= end))
                and not frag & 0x1FFF
                and ihl >= 20
            ):
                if (proto == 6 or proto == 17) and not frag & 0x1FFF:
                    short += 1
                other_ip(proto, buf[q + 12 : q + 20], wirelen, cur)
                continue
            key = buf[q + 12 : q + 24] if ihl == 20 else buf[q + 12 : q + 20] + buf[l4 : l4 + 4]
            l4len = iplen - ihl
        elif et == 0x86DD:
            if q + 40 > end:
                non_ip(SHORT_IP6, wirelen)
                continue
            plen, proto = ip6(buf, q)
            l4 = q + 40
            if proto != 6 and proto != 17:
                l4, proto = _ip6_transport(buf, l4, end, proto)
            if not ((proto == 6 and l4 + 14 <= end) or (proto == 17 and l4 + 4 <= end)):
                if proto == 6 or proto == 17:
                    short += 1
                # -1: a non-first fragment or a cut-off header chain; file it as "fragment"
                other_ip(44 if proto < 0 else proto, buf[q + 8 : q + 40], wirelen, cur)
                continue
            key = buf[q + 8 : q + 44] if l4 == q + 40 else buf[q + 8 : q + 40] + buf[l4 : l4 + 4]
            l4len = plen - (l4 - q - 40)
        else:
            non_ip(et, wirelen)
            continue

        # -- transport layer --------------------------------------------------
        if proto == 6:
            st = tcp_get(key)
            if st is None:
                st = new_flow(tcp, key, 6, cur)
            st[0] += 1
            st[1] += wirelen
            st[cur] += 1
            seq, doff, flags = tcp_hdr(buf, l4 + 4)
            if flags & 7:
                if flags & 2:
                    if flags & 16:
                        syn_ack += 1
                    else:
                        syn += 1
                        count_syn(ts_sec)
                if flags & 4:
                    rst += 1
                if flags & 1:
                    fin += 1
            payload = l4len - ((doff >> 2) & 0x3C)
            if payload > 0 or flags & 3:
                nxt = st[NEXT]
                if nxt is not None:
                    data_segs += 1
                    seg_end = (seq + payload + (flags & 1) + ((flags >> 1) & 1)) & _MASK32
                    if nxt < 0:
                        st[NEXT] = seg_end
                    else:
                        behind = (nxt - seq) & _MASK32
                        if 0 < behind < 0x80000000 and (behind != 1 or payload > 1 or flags & 3):
                            retx += 1
                            st[RETX] += 1
                        if 0 < ((seg_end - nxt) & _MASK32) < 0x80000000:
                            st[NEXT] = seg_end
        else:
            st = udp_get(key)
            if st is None:
                st = new_flow(udp, key, 17, cur)
            st[0] += 1
            st[1] += wirelen
            st[cur] += 1

    chunk.used = off
    tb.cur = cur
    tb.bin_end = bin_end
    tb.t_last = t
    tb.packets += packets
    tb.wire_bytes += nbytes
    tb.captured_bytes += captured
    tb.syn += syn
    tb.syn_ack += syn_ack
    tb.rst += rst
    tb.fin += fin
    tb.retransmissions += retx
    tb.data_segments += data_segs
    tb.short_packets += short
