"""Traffic summary of one capture: :func:`summarise` and :class:`Summary`.

Boundary: drives ``reader`` (file format) and ``decode`` (per-packet counting
into ``tables``), then turns the counters into a JSON-safe dict.  Rendering the
dict for people is ``render.py``.  The JSON schema is documented in the package
docstring (``alertcap/pcap/__init__.py``).

Everything here runs once per capture, after the packet loop, over tables whose
size is bounded (see ``tables.py``), so it favours clarity over speed.
"""

from __future__ import annotations

import copy
import gc
import heapq
import ipaddress
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alertcap.pcap import analysis
from alertcap.pcap.decode import NON_IP_NAMES, reverse_key, scan
from alertcap.pcap.findings import AlertSignal, findings, parse_time, verdict
from alertcap.pcap.names import Names
from alertcap.pcap.reader import CHUNK_SIZE, CaptureReader, Readable
from alertcap.pcap.tables import BIN0, BYTES, RETX, State, Tables, packets

__all__ = ["SCHEMA", "Summary", "summarise", "summarise_path"]

SCHEMA = "alertcap.summary/2"

IP_PROTOCOLS = {
    1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6-encap", 44: "ipv6-fragment",
    47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf", 103: "pim", 112: "vrrp",
    132: "sctp",
}  # fmt: skip
TRANSPORT = {6: "tcp", 17: "udp"}


class Summary:
    """The result of :func:`summarise`; :meth:`to_dict` is the stable interface."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict following schema ``alertcap.summary/2`` (a copy)."""
        return copy.deepcopy(self._data)

    @property
    def packets(self) -> int:
        return int(self._data["packets"])

    @property
    def warnings(self) -> list[str]:
        return list(self._data["warnings"])

    def __repr__(self) -> str:
        d = self._data
        return (
            f"<Summary {d['packets']} packets, {d['bytes']} bytes,"
            f" {len(d['warnings'])} warnings>"
        )


def summarise(
    stream: Readable,
    *,
    top: int = 10,
    alert: AlertSignal | None = None,
    alert_time: float | str | None = None,
    tables: Tables | None = None,
    native: bool = True,
    chunk_size: int | None = None,
) -> Summary:
    """Summarise a pcap/pcapng capture read from ``stream`` (anything with ``.read``).

    ``alert`` is the parsed alert's signal (``metric``, ``value``,
    ``threshold``, ``operator``, ``fired_at``; all optional) for the findings;
    ``alert_time`` (UNIX seconds or ISO 8601; default ``alert["fired_at"]``)
    splits the capture into before/after when it falls inside it.
    Raises :class:`~alertcap.pcap.reader.NotACaptureError` if the stream is not
    a capture; damage later in the file gives a partial summary with warnings.
    ``tables`` lets tests use small limits; ``native=False`` leaves the C
    accelerator out (the same counts, slower) and ``chunk_size`` sets the read size,
    for the tests that compare the two.
    """
    reader = CaptureReader(stream, chunk_size=chunk_size or CHUNK_SIZE)
    tb = tables if tables is not None else Tables()
    if tb.names is None:
        tb.names = Names()
    # The packet loop makes a tuple per packet, so the cyclic garbage collector
    # would run every 700 packets and, now and then, walk every flow's state
    # list; nothing in the loop forms a cycle, so it is paused (measured: 3%).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for chunk in reader.chunks():
            scan(chunk, tb, native)
    finally:
        if collecting:
            gc.enable()
    if alert_time is None and alert:
        alert_time = alert.get("fired_at")
    at = parse_time(alert_time)
    return Summary(_build(reader, tb, max(top, 0), at, alert))


def summarise_path(path: str | Path, *, top: int = 10, **kw: Any) -> Summary:
    with open(path, "rb") as f:
        return summarise(f, top=top, **kw)


# -- building the dict ---------------------------------------------------------


def _addr(raw: bytes) -> str:
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return ipaddress.IPv6Address(raw).compressed


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _top(items: Iterable[Any], n: int, key: Callable[[Any], Any]) -> list[Any]:
    return heapq.nlargest(n, items, key=key)


class _Halves:
    """Splits a state list's time slices at the boundary nearest ``at`` (file
    units; default mid-capture)."""

    def __init__(self, tb: Tables, at: int | None = None) -> None:
        used = tb.cur - BIN0 + 1
        self.split = 0
        self.split_t = 0
        if tb.t_first is None or used < 2:
            return
        t0, width = tb.t_first, tb.bin_width
        mid = (t0 + tb.t_last) / 2 if at is None else at
        self.split = min(range(1, used), key=lambda s: abs(t0 + s * width - mid))
        self.split_t = t0 + self.split * width

    def __call__(self, st: State) -> tuple[int, int, int]:
        """(packets, first half, second half) of a state list."""
        total = sum(st[BIN0:])
        first = sum(st[BIN0 : BIN0 + self.split])
        return total, first, total - first


def _build(
    reader: CaptureReader, tb: Tables, top: int, alert_at: float | None,
    alert: AlertSignal | None,
) -> dict[str, Any]:  # fmt: skip
    units = tb.units or 1
    t_first = tb.t_first / units if tb.t_first is not None else None
    t_last = tb.t_last / units if tb.t_first is not None else None
    duration = max((t_last or 0.0) - (t_first or 0.0), 0.0)
    # before/after the alert when the capture reaches back before it
    basis = "alert" if (
        alert_at is not None and t_first is not None and t_last is not None
        and t_first < alert_at <= t_last
    ) else "halves"  # fmt: skip
    halves = _Halves(tb, round(alert_at * units) if basis == "alert" and alert_at else None)

    # Directional rows: (proto, key, state, packets, first half, second half),
    # the slice sums taken once per row.  TCP/UDP rows first (key is addrs+ports,
    # or addrs only for the aggregates of flows past the table limit), then the
    # IP traffic without ports.
    flow_rows: list[tuple[int, bytes, State, int, int, int]] = []
    for proto, table in ((6, tb.tcp), (17, tb.udp)):
        for k, st in table.items():
            flow_rows.append((proto, k, st, *halves(st)))
    for k, st in tb.overflow.items():
        flow_rows.append((k[0], k[1:], st, *halves(st)))
    all_rows = flow_rows + [(k[0], k[1:], st, *halves(st)) for k, st in tb.other.items()]
    rest = [halves(st) for st in tb.remainder.values()]  # per protocol only, no rows

    # The packet loop keeps no grand totals: every packet is in exactly one row.
    total_packets = sum(r[3] for r in all_rows) + sum(r[0] for r in rest)
    total_bytes = sum(r[2][BYTES] for r in all_rows)
    total_bytes += sum(st[BYTES] for st in tb.remainder.values())
    for pk, by in tb.non_ip.values():
        total_packets += pk
        total_bytes += by

    # Bidirectional conversations (TCP/UDP only, like tshark's conv,tcp/udp),
    # keyed by protocol byte + directional key of the first direction seen.
    convs: dict[bytes, list[int]] = {}
    for proto, key, st, pk, first, second in flow_rows:
        if len(key) in (8, 32):
            back = bytes((proto,)) + key[len(key) // 2 :] + key[: len(key) // 2]
        else:
            back = bytes((proto,)) + reverse_key(key)
        fwd = bytes((proto,)) + key
        c = convs.get(back) if back != fwd else None
        if c is not None:
            c[2] += pk
            c[3] += st[BYTES]
        else:
            c = convs.setdefault(fwd, [0] * 7)
            c[0] += pk
            c[1] += st[BYTES]
        c[4] += st[RETX]
        c[5] += first
        c[6] += second

    def conv_out(item: tuple[bytes, list[int]]) -> dict[str, Any]:
        pkey, c = item
        proto, key = pkey[0], pkey[1:]
        aggregated = len(key) in (8, 32)
        a = (len(key) if aggregated else len(key) - 4) // 2
        return {
            "proto": TRANSPORT[proto],
            "a": _addr(key[:a]),
            "a_port": None if aggregated else key[2 * a] << 8 | key[2 * a + 1],
            "b": _addr(key[a : 2 * a]),
            "b_port": None if aggregated else key[2 * a + 2] << 8 | key[2 * a + 3],
            "packets": c[0] + c[2],
            "bytes": c[1] + c[3],
            "packets_a_to_b": c[0],
            "bytes_a_to_b": c[1],
            "packets_b_to_a": c[2],
            "bytes_b_to_a": c[3],
            "retransmissions": c[4],
            "aggregated": aggregated,
        }

    # Host pairs (every IP packet, like tshark's conv,ip), talkers, ports.
    pairs: dict[bytes, list[int]] = {}
    talkers: dict[bytes, list[int]] = {}
    ports: dict[tuple[int, int], list[int]] = {}
    for proto, key, st, pk, first, second in all_rows:
        a = (len(key) - 4) // 2 if len(key) in (12, 36) else len(key) // 2
        src, dst = key[:a], key[a : 2 * a]
        back = dst + src
        p = pairs.get(back) if back != src + dst else None
        if p is not None:
            p[2] += pk
            p[3] += st[BYTES]
        else:
            p = pairs.setdefault(src + dst, [0] * 4)
            p[0] += pk
            p[1] += st[BYTES]
        t = talkers.setdefault(src, [0] * 4)
        t[0] += st[BYTES]
        t[1] += pk
        t[2] += first
        t[3] += second
        if len(key) in (12, 36) and proto in TRANSPORT:
            pr = ports.setdefault((proto, key[-2] << 8 | key[-1]), [0] * 3)
            pr[0] += pk
            pr[1] += first
            pr[2] += second
    for pkey, count in tb.overflow_ports.items():
        ports.setdefault((pkey >> 16, pkey & 0xFFFF), [0] * 3)[0] += count

    def pair_out(item: tuple[bytes, list[int]]) -> dict[str, Any]:
        key, p = item
        a = len(key) // 2
        return {
            "a": _addr(key[:a]),
            "b": _addr(key[a:]),
            "packets": p[0] + p[2],
            "bytes": p[1] + p[3],
            "packets_a_to_b": p[0],
            "bytes_a_to_b": p[1],
            "packets_b_to_a": p[2],
            "bytes_b_to_a": p[3],
        }

    # Protocol mix.
    mix: dict[str, list[int]] = {}
    ip_versions = {"ipv4": 0, "ipv6": 0}
    for proto, key, st, pk, _first, _second in all_rows:
        m = mix.setdefault(IP_PROTOCOLS.get(proto, f"ip-proto-{proto}"), [0, 0])
        m[0] += pk
        m[1] += st[BYTES]
        ip_versions["ipv4" if len(key) in (8, 12) else "ipv6"] += pk
    for proto, st in tb.remainder.items():
        m = mix.setdefault(IP_PROTOCOLS.get(proto, f"ip-proto-{proto}"), [0, 0])
        m[0] += packets(st)
        m[1] += st[BYTES]
    for kind, (pk, by) in tb.non_ip.items():
        m = mix.setdefault(NON_IP_NAMES.get(kind, f"ethertype-0x{kind:04x}"), [0, 0])
        m[0] += pk
        m[1] += by
    protocols = [
        {
            "name": name,
            "packets": pk,
            "bytes": by,
            "percent": round(100.0 * pk / total_packets, 2) if total_packets else 0.0,
        }
        for name, (pk, by) in sorted(mix.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]

    # SYNs per second.
    sps = tb.syn_per_second
    peak_sec = max(sps, key=lambda s: (sps[s], -s)) if sps else None
    new_conn = {
        "peak": sps[peak_sec] if peak_sec is not None else 0,
        "peak_at": _iso(peak_sec) if peak_sec is not None else None,
        "average": round(tb.syn / duration, 3) if duration > 0 else float(tb.syn),
        "seconds_with_syns": len(sps),
    }

    # What changed between the halves.
    changes: dict[str, Any] | None = None
    if halves.split:
        def grew(items: Iterable[tuple[Any, list[int]]], fi: int) -> list[Any]:
            return _top(
                ((k, v[fi], v[fi + 1]) for k, v in items if v[fi] != v[fi + 1]),
                top,
                key=lambda r: (abs(r[2] - r[1]), r[2]),
            )

        split_t = halves.split_t / units
        conv_changes = []
        for pkey, first, second in grew(convs.items(), 5):
            d = conv_out((pkey, convs[pkey]))
            conv_changes.append(
                {k: d[k] for k in ("proto", "a", "a_port", "b", "b_port", "aggregated")}
                | {"first": first, "second": second, "change": second - first}
            )
        changes = {
            "basis": basis,
            "split_at": split_t,
            "split_at_iso": _iso(split_t),
            "first_half_s": round(split_t - (t_first or 0.0), 6),
            "second_half_s": round((t_last or 0.0) - split_t, 6),
            "packets": {
                # Non-IP packets carry no time slices: they are in neither half.
                "first": sum(r[4] for r in all_rows) + sum(r[1] for r in rest),
                "second": sum(r[5] for r in all_rows) + sum(r[2] for r in rest),
            },
            "conversations": conv_changes,
            "dst_ports": [
                {"proto": TRANSPORT[k[0]], "port": k[1], "first": f, "second": s, "change": s - f}
                for k, f, s in grew(ports.items(), 1)
            ],
            "talkers": [
                {"host": _addr(k), "first": f, "second": s, "change": s - f}
                for k, f, s in grew(talkers.items(), 2)
            ],
        }

    warnings = list(reader.warnings)
    if tb.short_packets:
        warnings.append(
            f"{tb.short_packets} TCP/UDP packets were captured too short to read their ports"
            " (snap length); they count in totals and host pairs only"
        )
    if tb.overflow_packets:
        warnings.append(
            f"flow table full ({tb.max_flows} flows): {tb.overflow_packets} packets of later"
            " flows are counted per host pair without ports (conversations marked aggregated)"
        )
    if tb.remainder:
        warnings.append(
            f"host table full ({tb.max_hosts} host pairs): "
            f"{sum(packets(st) for st in tb.remainder.values())} packets counted per protocol only"
        )
    if tb.dropped_seconds:
        warnings.append(f"{tb.dropped_seconds} SYNs fell outside the per-second table")
    unknown = tb.non_ip.get(-4)
    if unknown:
        warnings.append(
            f"link type {reader.linktypes} is not decoded: {unknown[0]} packets counted only"
        )

    tcp_packets = next((m[0] for name, m in mix.items() if name == "tcp"), 0)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "complete": not reader.warnings,
        "warnings": warnings,
        "source": {
            "format": reader.format,
            "byte_order": reader.byte_order,
            "timestamp_resolution": "ns" if reader.units == 1_000_000_000 else "us",
            "link_types": list(reader.linktypes),
            "snaplen": reader.snaplen,
            "bytes_read": reader.bytes_read,
        },
        "packets": total_packets,
        "bytes": total_bytes,
        "start": t_first,
        "end": t_last,
        "start_iso": _iso(t_first),
        "end_iso": _iso(t_last),
        "duration_s": round(duration, 6),
        "packets_per_s": round(total_packets / duration, 3) if duration > 0 else None,
        "bytes_per_s": round(total_bytes / duration, 3) if duration > 0 else None,
        "ip_versions": ip_versions,
        "protocols": protocols,
        "top_conversations_by_packets": [
            conv_out(i) for i in _top(convs.items(), top, key=lambda i: i[1][0] + i[1][2])
        ],
        "top_conversations_by_bytes": [
            conv_out(i) for i in _top(convs.items(), top, key=lambda i: i[1][1] + i[1][3])
        ],
        "top_host_pairs_by_packets": [
            pair_out(i) for i in _top(pairs.items(), top, key=lambda i: i[1][0] + i[1][2])
        ],
        "top_host_pairs_by_bytes": [
            pair_out(i) for i in _top(pairs.items(), top, key=lambda i: i[1][1] + i[1][3])
        ],
        "top_talkers": [
            {"host": _addr(k), "bytes": v[0], "packets": v[1]}
            for k, v in _top(talkers.items(), top, key=lambda i: i[1][0])
        ],
        "top_dst_ports": [
            {"proto": TRANSPORT[k[0]], "port": k[1], "packets": v[0]}
            for k, v in _top(ports.items(), top, key=lambda i: i[1][0])
        ],
        "tcp": {
            "syn": tb.syn,
            "syn_ack": tb.syn_ack,
            "rst": tb.rst,
            "fin": tb.fin,
            "retransmissions": tb.retransmissions,
            "packets": tcp_packets,
            "retransmission_percent": (
                round(100.0 * tb.retransmissions / tcp_packets, 3) if tcp_packets else 0.0
            ),
            "new_connections_per_s": new_conn,
        },
        "changes": changes,
        "limits": {
            "max_flows": tb.max_flows,
            "flows_tracked": len(tb.tcp) + len(tb.udp),
            "max_host_pairs": tb.max_hosts,
            "overflow_packets": tb.overflow_packets,
            "approximate": bool(tb.overflow_packets or tb.remainder),
        },
    }

    # -- schema /2 additions: evidence, names, timeline, findings ------------
    # The capturing VM: the address in the most packets (every packet of a VM
    # capture has it on one side).
    host_packets: dict[bytes, int] = {}
    for key, p in pairs.items():
        a = len(key) // 2
        for h in (key[:a], key[a:]):
            host_packets[h] = host_packets.get(h, 0) + p[0] + p[2]
    local = max(host_packets, key=lambda h: host_packets[h]) if host_packets else None
    out["local_host"] = None
    if local is not None:
        local_s = _addr(local)
        # (bytes the VM sent, bytes it received, conversation key) per conversation
        flows_of_local: list[tuple[int, int, bytes]] = []
        for conv_key, c in convs.items():
            ends = conv_key[1:]
            half = (len(ends) if len(ends) in (8, 32) else len(ends) - 4) // 2
            if ends[:half] == local:
                flows_of_local.append((c[1], c[3], conv_key))
            elif ends[half : 2 * half] == local:
                flows_of_local.append((c[3], c[1], conv_key))
        outbound = [(b, conv_out((k, convs[k])))
                    for b, _r, k in _top(flows_of_local, top, key=lambda r: r[0])]
        inbound = [(r, conv_out((k, convs[k])))
                   for _b, r, k in _top(flows_of_local, top, key=lambda r: r[1])]  # fmt: skip
        received = 0
        for k, p in pairs.items():
            a = len(k) // 2
            received += p[1] if k[a:] == local else p[3] if k[:a] == local else 0
        out["local_host"] = {
            "host": local_s,
            "packet_percent": round(100.0 * host_packets[local] / total_packets, 2)
            if total_packets else 0.0,
            "bytes_out": talkers.get(local, [0, 0])[0],
            "bytes_in": received,
            "top_outbound": [
                d | {"bytes_out": b} for b, d in _top(outbound, top, key=lambda r: r[0]) if b
            ],
            "top_inbound": [
                d | {"bytes_in": b} for b, d in _top(inbound, top, key=lambda r: r[0]) if b
            ],
        }  # fmt: skip
    out["connections"] = analysis.connections(tb, top, _iso)
    out["top_conversations_by_retransmissions"] = [
        conv_out(i) for i in _top(convs.items(), top, key=lambda i: i[1][4]) if i[1][4]
    ]
    out["dns"] = analysis.dns(tb, top)
    out["tls_http"] = analysis.tls_http(tb.names, top)
    out["icmp_unreachable"] = analysis.icmp_unreachable(tb, top)
    # New peers use the exact alert time (first-seen times are exact), else the
    # mid-capture slice boundary.
    split_units = halves.split_t if basis == "halves" else round((alert_at or 0.0) * units)
    out["new_peers"] = None
    if halves.split:
        out["new_peers"] = analysis.new_peers(tb, split_units, local, top, _iso) | {
            "basis": basis, "split_at": split_units / units,
            "split_at_iso": _iso(split_units / units),
        }  # fmt: skip
    out["timeline"] = _timeline(tb, t_first, alert_at, changes)
    out["alert_at"] = alert_at
    out["alert_at_iso"] = _iso(alert_at)
    out["split_basis"] = basis
    out["findings"] = findings(out, alert)
    out["verdict"] = verdict(out["findings"], out)
    hosts = {h for f in out["findings"] for h in f.get("hosts", [])}
    for table_name in ("top_conversations_by_packets", "top_conversations_by_bytes"):
        for row in out[table_name]:
            hosts.update((row["a"], row["b"]))
    for row in out["top_talkers"]:
        hosts.add(row["host"])
    out["names"] = analysis.names_for(tb.names, hosts)
    named = {n["address"]: n["name"] for n in out["names"]}
    for table_name in ("top_conversations_by_packets", "top_conversations_by_bytes"):
        for row in out[table_name]:
            row["a_name"], row["b_name"] = named.get(row["a"]), named.get(row["b"])
    for row in out["top_talkers"]:
        row["name"] = named.get(row["host"])
    for f in out["findings"]:
        f["names"] = {h: named[h] for h in f.get("hosts", []) if h in named}
    if tb.names is not None and tb.names.dropped:
        warnings.append(f"name tables full: {tb.names.dropped} names not kept")
    return out


def _timeline(
    tb: Tables, t_first: float | None, alert_at: float | None, changes: dict[str, Any] | None
) -> dict[str, Any] | None:
    if t_first is None or not tb.tl_width:
        return None
    units = tb.units or 1
    n = tb.tcur + 1
    width = tb.tl_width / units
    return {
        "start": t_first,
        "bucket_s": width,
        "packets_per_s": [round(v / width, 3) for v in tb.tl_packets[:n]],
        "bytes_per_s": [round(v / width, 3) for v in tb.tl_bytes[:n]],
        "new_connections_per_s": [round(v / width, 3) for v in tb.tl_syn[:n]],
        "alert_at": alert_at,
        "split_at": changes["split_at"] if changes else None,
    }
