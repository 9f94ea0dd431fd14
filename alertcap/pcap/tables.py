"""Bounded counting tables that :func:`alertcap.pcap.decode.scan` fills.

Boundary: plain counters keyed by raw header bytes; no decoding (that is
``decode.py``) and no presentation (``summary.py`` turns these into a Summary).

Memory is bounded by construction:

* ``tcp`` / ``udp`` hold one state list per *directional* flow (5-tuple in the
  direction the packet travelled), ``max_flows`` of them together -- plus, past
  that limit, the reply directions of flows already tracked (so at most twice
  ``max_flows``).
* Once that limit is reached, packets of other new flows are counted
  per (protocol, source host, destination host) in ``overflow`` -- exact
  packet/byte counts, ports lost -- and their destination port in
  ``overflow_ports`` (a plain packet count: no time slices, so these packets
  are missing from the per-port "what changed" figures).  ``overflow`` is
  itself limited to ``max_hosts`` entries; beyond it, and beyond ``max_hosts``
  entries in ``other``, packets are counted only per IP protocol in
  ``remainder``.  Totals therefore stay exact; only the breakdown gets
  coarser, and the summary says so.  With the default limits, the worst case
  (a million SYNs from random sources to random ports) peaks at about 100 MB
  for the whole process, summary and findings included (see
  bench/pcap_bench.py).
* ``syn_per_second`` has one entry per second of capture time that saw a SYN,
  at most ``max_seconds``.
* ``services`` (TCP SYNs per destination address+port, and the SYN-ACKs and
  RSTs that came back) and ``rst_by`` (RSTs per sender) hold at most
  ``max_hosts`` entries each; they keep SYN-flood and reset evidence exact
  when the flow table is full.
* The timeline (``tl_packets``, ``tl_bytes``, ``tl_syn``) has ``TL_BINS``
  buckets, 16 per flow slice, folded together with the slices.

A state list is ``[bytes, retransmissions, next_seq, flags, first, last,
bin0 .. binN-1]``: ``next_seq`` is the end of the highest TCP sequence range
seen in that direction (-1 before the first segment, None for aggregate rows;
``INSPECT`` added to it means "look at the next data segment's payload", which
``track_seq`` masks away; UDP rows hold 0, or 1 for DNS responses whose payload
is read), ``flags`` the ``F_*`` bits of the TCP control segments seen in that
direction, ``first`` the time of its first packet and ``last`` that of its last
FIN/RST (0: none), both in file units, and the bins
count packets per time slice of the capture (a row's packet count is their
sum: one increment per packet instead of two).  Total packets and bytes are
likewise sums over the tables.  The slices start at the first packet and
double in width (adjacent slices summed) whenever the capture outgrows
``NBINS`` of them, so at the end the capture is covered by between
``NBINS/2`` and ``NBINS`` equal slices; "first half vs second half" is read
off them at the slice boundary closest to the middle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import add
from typing import Any

BYTES, RETX, NEXT, FLAGS, FIRST, LAST, BIN0 = 0, 1, 2, 3, 4, 5, 6
# FLAGS bits, per direction of a flow
F_SYN, F_SYNACK, F_FIN, F_RST = 1, 2, 4, 8
INSPECT = 1 << 40  # added to next_seq: beyond any unwrapped seq + payload
_MASK32 = 0xFFFFFFFF
NBINS = 16
TL_PER_BIN = 16
TL_BINS = NBINS * TL_PER_BIN
MAX_FLOWS = 30_000
MAX_HOSTS = 10_000
MAX_SECONDS = 100_000

State = list  # [bytes, retransmissions, next_seq, flags, first, last, bins...]


def new_state(next_seq: int | None = -1, first: int = 0) -> State:
    return [0, 0, next_seq, 0, first, 0, *([0] * NBINS)]


def track_seq(tb: Tables, st: State, seq: int, payload: int, flags: int) -> None:
    """Sequence bookkeeping off the in-order fast path: counts retransmissions.

    A retransmission is a TCP segment that carries data (or SYN/FIN) and whose
    first sequence number lies before the end of the highest sequence range
    already seen in the same direction of the same flow -- Wireshark's basic
    rule.  Keep-alives (at most one byte at next_seq - 1) are not counted; unlike
    Wireshark we do not split out "fast", "spurious" or "out-of-order" cases.
    """
    nxt = st[NEXT]
    if nxt is None or (payload <= 0 and not flags & 3):
        return  # an aggregate row, or a segment that occupies no sequence space
    seg_end = (seq + payload + (flags & 1) + ((flags >> 1) & 1)) & _MASK32
    if nxt < 0:
        st[NEXT] = seg_end
        return
    nxt &= _MASK32  # also drops an INSPECT mark: the payload has been looked at;
    # the fast path stores seq + payload unwrapped
    behind = (nxt - seq) & _MASK32
    if 0 < behind < 0x80000000 and (behind != 1 or payload > 1 or flags & 3):
        st[RETX] += 1
        tb.retransmissions += 1
    if 0 < ((seg_end - nxt) & _MASK32) < 0x80000000:
        st[NEXT] = seg_end
    else:
        st[NEXT] = nxt


def packets(st: State) -> int:
    return sum(st[BIN0:])


def reverse_key(key: bytes) -> bytes:
    """The flow key of the other direction (src/dst addresses and ports swapped)."""
    a = (len(key) - 4) // 2
    return key[a : 2 * a] + key[:a] + key[-2:] + key[2 * a : 2 * a + 2]


@dataclass
class Tables:
    max_flows: int = MAX_FLOWS
    max_hosts: int = MAX_HOSTS
    max_seconds: int = MAX_SECONDS
    # key: src addr + dst addr + src port + dst port (12 bytes IPv4, 36 IPv6)
    tcp: dict[bytes, State] = field(default_factory=dict)
    udp: dict[bytes, State] = field(default_factory=dict)
    # key: protocol byte + src addr + dst addr: IP traffic without tracked ports
    other: dict[bytes, State] = field(default_factory=dict)
    overflow: dict[bytes, State] = field(default_factory=dict)
    overflow_ports: dict[int, int] = field(default_factory=dict)  # proto << 16 | port
    remainder: dict[int, State] = field(default_factory=dict)  # IP protocol -> state
    non_ip: dict[int, list[int]] = field(default_factory=dict)  # see decode.NON_IP_NAMES
    syn_per_second: dict[int, int] = field(default_factory=dict)
    # dst addr + dst port -> [SYNs to it, SYN-ACKs from it, RSTs from it, first SYN time]
    services: dict[bytes, list[int]] = field(default_factory=dict)
    rst_by: dict[bytes, int] = field(default_factory=dict)  # src addr -> RSTs sent
    # dst addr -> [SYNs to it, SYN-ACKs from it, RSTs from it, first SYN time]: the
    # same per host, for floods and scans spread over many ports
    syn_hosts: dict[bytes, list[int]] = field(default_factory=dict)
    # (icmp sender, receiver, unreachable code, inner proto, inner dst, inner dport) -> count
    unreachable: dict[tuple[bytes, bytes, int, int, bytes, int], int] = field(
        default_factory=dict
    )
    names: Any = None  # a names.Names when payload inspection is on
    # timeline: packets, bytes and SYNs per bucket of tl_width file units
    tl_packets: list[int] = field(default_factory=lambda: [0] * TL_BINS)
    tl_bytes: list[int] = field(default_factory=lambda: [0] * TL_BINS)
    tl_syn: list[int] = field(default_factory=lambda: [0] * TL_BINS)
    tl_width: int = 0
    tcur: int = 0  # current timeline bucket
    # totals
    syn: int = 0
    syn_ack: int = 0
    rst: int = 0
    fin: int = 0
    retransmissions: int = 0
    short_packets: int = 0  # captured too short to decode the transport header
    overflow_packets: int = 0
    dropped_seconds: int = 0
    # time, in the file's timestamp units (``units`` per second)
    units: int = 0
    t_first: int | None = None
    t_last: int = 0
    bin_width: int = 0
    cur: int = BIN0  # state-list index of the current time slice
    bin_end: tuple[int, int] = (-1, 0)  # (sec, frac): the first packet calls advance()
    t_bucket: int = 0  # start of the current timeline bucket (file units)

    def set_units(self, units: int) -> None:
        """Adopt the file's timestamp unit (fixed per file; pcapng is always ns)."""
        if self.units not in (0, units):
            raise ValueError(f"timestamp unit changed from {self.units} to {units}")
        self.units = units

    def advance(self, sec: int, frac: int, pk: int = 0, by: int = 0) -> tuple[int, int, int]:
        """Move to the timeline bucket (and time slice) holding ``sec + frac/units``.

        ``pk``/``by`` are the packets and bytes the caller counted since the
        last call: they belong to the bucket being left.  Returns the new
        slice's state-list index and the bucket's end as (sec, frac).
        """
        t = sec * self.units + frac
        if self.t_first is None:
            self.t_first = t
            # 1.024 ms slices to start with (the same for us and ns files),
            # divisible into timeline buckets
            self.bin_width = max(self.units // 1_000_000, 1) * 1024
            self.tl_width = self.bin_width // TL_PER_BIN
        self.tl_packets[self.tcur] += pk
        self.tl_bytes[self.tcur] += by
        t0 = self.t_first
        index = (t - t0) // self.bin_width
        while index >= NBINS:
            self._fold()
            index = (t - t0) // self.bin_width
        tindex = max((t - t0) // self.tl_width, 0)
        self.tcur = tindex
        self.cur = BIN0 + tindex // TL_PER_BIN
        self.t_bucket = t0 + tindex * self.tl_width
        self.bin_end = divmod(self.t_bucket + self.tl_width, self.units)
        return self.cur, self.bin_end[0], self.bin_end[1]

    def _fold(self) -> None:
        """Double the slice width: slice i becomes slices 2i + 2i+1."""
        zeros = [0] * (NBINS // 2)
        for table in (
            self.tcp, self.udp, self.other, self.overflow, self.remainder
        ):
            for st in table.values():
                # map(add, even, odd): the pairwise sums without a Python-level loop
                st[BIN0:] = [*map(add, st[BIN0::2], st[BIN0 + 1 :: 2]), *zeros]
        tz = [0] * (TL_BINS // 2)
        for name in ("tl_packets", "tl_bytes", "tl_syn"):
            tl = getattr(self, name)
            setattr(self, name, [*map(add, tl[::2], tl[1::2]), *tz])
        self.bin_width *= 2
        self.tl_width *= 2

    def new_flow(self, table: dict[bytes, State], key: bytes, proto: int, t: int) -> State:
        """State for a flow first seen at ``t`` (file units), or an aggregate if full."""
        if len(self.tcp) + len(self.udp) < self.max_flows or reverse_key(key) in table:
            # Past the limit only the reply direction of a tracked flow gets a row,
            # so conversations stay whole and the tables at most double.
            if proto == 6:
                st = new_state(-1, t)
            else:  # DNS responses (source port 53) get their payload read
                st = new_state(int(key[-4:-2] == b"\x00\x35" and self.names is not None), t)
            table[key] = st
            return st
        # Not stored under ``key``, so later packets of this flow come back here.
        self.overflow_packets += 1
        half = (len(key) - 4) // 2
        port_key = proto << 16 | int.from_bytes(key[-2:], "big")
        ports = self.overflow_ports
        ports[port_key] = ports.get(port_key, 0) + 1
        return self._aggregate(self.overflow, bytes((proto,)) + key[: 2 * half], proto)

    def other_ip(self, proto: int, addrs: bytes | bytearray, wirelen: int, cur: int) -> None:
        """Count an IP packet whose ports we don't track (ICMP, fragments, ...)."""
        key = bytes((proto,)) + addrs
        st = self.other.get(key)
        if st is None:
            st = self._aggregate(self.other, key, proto)
        st[BYTES] += wirelen
        st[cur] += 1

    def _aggregate(self, table: dict[bytes, State], key: bytes, proto: int) -> State:
        st = table.get(key)
        if st is not None:
            return st
        if len(table) < self.max_hosts:
            st = table[key] = new_state(None, self.t_bucket)
            return st
        st = self.remainder.get(proto)
        if st is None:
            st = self.remainder[proto] = new_state(None, self.t_bucket)
        return st

    def tcp_flags(
        self, st: State, key: bytes, seq: int, payload: int, flags: int, sec: int, frac: int
    ) -> None:
        """Count a SYN, FIN or RST segment (and track its sequence number)."""
        a = (len(key) - 4) // 2
        if flags & 0x17 == 2:
            # A bare SYN, the whole of a SYN flood or scan: one straight path.
            self.syn += 1
            self.tl_syn[self.tcur] += 1
            st[FLAGS] |= F_SYN
            sps = self.syn_per_second
            if sec in sps:
                sps[sec] += 1
            elif len(sps) < self.max_seconds:
                sps[sec] = 1
            else:
                self.dropped_seconds += 1
            dst = key[a : 2 * a]
            skey = dst + key[-2:]
            svc = self.services.get(skey)
            if svc is None and len(self.services) < self.max_hosts:
                svc = self.services[skey] = [0, 0, 0, sec * self.units + frac]
            if svc is not None:
                svc[0] += 1
            host = self.syn_hosts.get(dst)
            if host is None and len(self.syn_hosts) < self.max_hosts:
                host = self.syn_hosts[dst] = [0, 0, 0, sec * self.units + frac]
            if host is not None:
                host[0] += 1
            nxt = st[NEXT]
            if nxt is None:
                return  # an aggregate row: no sequence tracking
            if nxt == -1:  # the flow's first segment (track_seq's first case)
                nxt = st[NEXT] = (seq + payload + 1) & _MASK32
            else:
                track_seq(self, st, seq, payload, flags)
            if self.names is not None:
                st[NEXT] += INSPECT  # read the client's first data: TLS SNI, HTTP Host
            return
        if flags & 2:
            if flags & 16:
                self.syn_ack += 1
                st[FLAGS] |= F_SYNACK
                svc = self.services.get(key[:a] + key[-4:-2])
                if svc is not None:
                    svc[1] += 1
                    host = self.syn_hosts.get(key[:a])
                    if host is not None:
                        host[1] += 1
            else:
                self.syn += 1
                self.tl_syn[self.tcur] += 1
                st[FLAGS] |= F_SYN
                self.count_syn(sec)
                skey = key[a : 2 * a] + key[-2:]
                svc = self.services.get(skey)
                if svc is None and len(self.services) < self.max_hosts:
                    svc = self.services[skey] = [0, 0, 0, sec * self.units + frac]
                if svc is not None:
                    svc[0] += 1
                host = self.syn_hosts.get(skey[:-2])
                if host is None and len(self.syn_hosts) < self.max_hosts:
                    host = self.syn_hosts[skey[:-2]] = [0, 0, 0, sec * self.units + frac]
                if host is not None:
                    host[0] += 1
        if flags & 4:
            self.rst += 1
            st[FLAGS] |= F_RST
            st[LAST] = sec * self.units + frac
            src = key[:a]
            if src in self.rst_by or len(self.rst_by) < self.max_hosts:
                self.rst_by[src] = self.rst_by.get(src, 0) + 1
            svc = self.services.get(src + key[-4:-2])
            if svc is not None:
                svc[2] += 1
                host = self.syn_hosts.get(src)
                if host is not None:
                    host[2] += 1
        if flags & 1:
            self.fin += 1
            st[FLAGS] |= F_FIN
            st[LAST] = sec * self.units + frac
        track_seq(self, st, seq, payload, flags)
        if flags & 18 == 2 and self.names is not None and st[NEXT] is not None:
            st[NEXT] += INSPECT  # read the client's first data: TLS SNI, HTTP Host

    def count_unreachable(
        self, sender: bytes | bytearray, receiver: bytes | bytearray, code: int,
        inner: bytes | bytearray, v6: bool,
    ) -> None:
        """An ICMP destination unreachable; ``inner`` is the quoted IP header + 4 bytes."""
        proto, dst, dport = -1, b"", -1
        if not v6 and len(inner) >= 20:
            ihl = (inner[0] & 15) * 4
            proto, dst = inner[9], bytes(inner[16:20])
            if proto in (6, 17) and len(inner) >= ihl + 4:
                dport = inner[ihl + 2] << 8 | inner[ihl + 3]
        elif v6 and len(inner) >= 40:
            proto, dst = inner[6], bytes(inner[24:40])
            if proto in (6, 17) and len(inner) >= 44:
                dport = inner[42] << 8 | inner[43]
        k = (bytes(sender), bytes(receiver), code, proto, dst, dport)
        u = self.unreachable
        if k in u or len(u) < self.max_hosts:
            u[k] = u.get(k, 0) + 1

    def count_non_ip(self, kind: int, wirelen: int) -> None:
        c = self.non_ip.get(kind)
        if c is None:
            c = self.non_ip[kind] = [0, 0]
        c[0] += 1
        c[1] += wirelen

    def count_syn(self, second: int) -> None:
        sps = self.syn_per_second
        if second in sps:
            sps[second] += 1
        elif len(sps) < self.max_seconds:
            sps[second] = 1
        else:
            self.dropped_seconds += 1
