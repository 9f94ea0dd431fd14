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
  (a million SYNs from random sources to random ports) peaks at about 75 MB
  for the whole process, summary included (see bench/pcap_bench.py).
* ``syn_per_second`` has one entry per second of capture time that saw a SYN,
  at most ``max_seconds``.

A state list is ``[bytes, retransmissions, next_seq, bin0 .. binN-1]``:
``next_seq`` is the end of the highest TCP sequence range seen in that
direction (-1 before the first segment, None for aggregate rows), and the bins
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

BYTES, RETX, NEXT, BIN0 = 0, 1, 2, 3
_MASK32 = 0xFFFFFFFF
NBINS = 16
MAX_FLOWS = 30_000
MAX_HOSTS = 10_000
MAX_SECONDS = 100_000

State = list  # [bytes, retransmissions, next_seq, bins...]


def new_state(next_seq: int | None = -1) -> State:
    return [0, 0, next_seq, *([0] * NBINS)]


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
    nxt &= _MASK32  # the fast path stores seq + payload unwrapped
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

    def set_units(self, units: int) -> None:
        """Adopt the file's timestamp unit (fixed per file; pcapng is always ns)."""
        if self.units not in (0, units):
            raise ValueError(f"timestamp unit changed from {self.units} to {units}")
        self.units = units

    def advance(self, sec: int, frac: int) -> tuple[int, int, int]:
        """Move the current time slice to the one holding ``sec + frac/units``.

        Returns the new slice's state-list index and its end as (sec, frac).
        """
        t = sec * self.units + frac
        if self.t_first is None:
            self.t_first = t
            self.bin_width = max(self.units // 1000, 1)  # start with 1 ms slices
        t0 = self.t_first
        index = (t - t0) // self.bin_width
        while index >= NBINS:
            self._fold()
            index = (t - t0) // self.bin_width
        index = max(index, 0)
        self.cur = BIN0 + index
        self.bin_end = divmod(t0 + (index + 1) * self.bin_width, self.units)
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
        self.bin_width *= 2

    def new_flow(self, table: dict[bytes, State], key: bytes, proto: int, cur: int) -> State:
        """State for a flow seen for the first time (or an aggregate if full)."""
        if len(self.tcp) + len(self.udp) < self.max_flows or reverse_key(key) in table:
            # Past the limit only the reply direction of a tracked flow gets a row,
            # so conversations stay whole and the tables at most double.
            st = new_state()
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
            st = table[key] = new_state(None)
            return st
        st = self.remainder.get(proto)
        if st is None:
            st = self.remainder[proto] = new_state(None)
        return st

    def tcp_flags(self, st: State, seq: int, payload: int, flags: int, second: int) -> None:
        """Count a SYN, FIN or RST segment (and track its sequence number)."""
        if flags & 2:
            if flags & 16:
                self.syn_ack += 1
            else:
                self.syn += 1
                self.count_syn(second)
        if flags & 4:
            self.rst += 1
        if flags & 1:
            self.fin += 1
        track_seq(self, st, seq, payload, flags)

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
