"""Per-connection analysis after the packet pass: the evidence that findings use.

Boundary: reads the bounded ``Tables`` (and ``Names``) that ``decode.scan``
filled and returns JSON-safe dicts for the summary (``summary.py`` places
them; ``findings.py`` judges them).  Runs once per capture over at most
``max_flows`` flows, so it favours clarity over speed.

Connection states follow Zeek's ``conn_state`` vocabulary (Zeek's
``base/protocols/conn/main.zeek``), computed from the TCP control flags seen in
each direction of a 5-tuple (a 5-tuple reused by several connections counts as
one, like the rest of the summary):

``S0`` SYN seen, no reply; ``REJ`` SYN answered by RST; ``RSTOS0`` the
originator sent SYN then RST, no SYN-ACK; ``SH`` the originator sent SYN then
FIN, no SYN-ACK; ``S1`` established, not closed; ``SF`` established and closed
by FINs in both directions; ``S2``/``S3`` established, only the originator /
only the responder sent FIN; ``RSTO``/``RSTR`` established, then aborted by
the originator / responder; ``OTH`` no SYN seen (began before the capture).
The originator is the side that sent the SYN (without ACK), else the side seen
first.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import Counter
from collections.abc import Callable
from typing import Any

from alertcap.pcap.names import RCODES, Names
from alertcap.pcap.tables import (
    BIN0,
    BYTES,
    F_FIN,
    F_RST,
    F_SYN,
    F_SYNACK,
    FIRST,
    LAST,
    State,
    Tables,
    reverse_key,
)  # fmt: skip

__all__ = ["addr", "conn_state", "connections", "dns", "icmp_unreachable", "names_for",
           "new_peers"]  # fmt: skip

CLOSED = frozenset(("SF", "REJ", "RSTO", "RSTR", "RSTOS0", "SH", "S2", "S3"))


def addr(raw: bytes) -> str:
    if len(raw) == 4:
        return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return ipaddress.IPv6Address(raw).compressed


def conn_state(o: int, r: int, replied: bool) -> str:
    """Zeek conn_state from originator/responder flag bits (see module docstring)."""
    if not o & F_SYN:
        return "OTH"
    if not r & F_SYNACK:
        if r & F_RST:
            return "REJ"
        if o & F_RST:
            return "RSTOS0"
        if o & F_FIN:
            return "SH"
        return "OTH" if replied else "S0"
    if o & F_RST:
        return "RSTO"
    if r & F_RST:
        return "RSTR"
    if o & F_FIN:
        return "SF" if r & F_FIN else "S2"
    return "S3" if r & F_FIN else "S1"


def _split(key: bytes) -> tuple[bytes, bytes, int, int]:
    a = (len(key) - 4) // 2
    return key[:a], key[a : 2 * a], key[2 * a] << 8 | key[2 * a + 1], key[-2] << 8 | key[-1]


def _packets(st: State | None) -> int:
    return sum(st[BIN0:]) if st is not None else 0


def connections(tb: Tables, top: int, iso: Callable[[float | None], str | None]) -> dict[str, Any]:
    """Connection states, the busiest (originator, responder, port) groups, and
    scan/sweep candidates (TCP and UDP flows)."""
    units = tb.units or 1
    states: Counter[str] = Counter()
    total = closed = fast = 0
    # One row per connection, and three counting dicts keyed by compact bytes
    # (proto + originator + responder + port, proto + originator + responder,
    # proto + originator + port); a distinct-ports/hosts value is a set only
    # once it has two members.  Only the top groups' rows are gathered later.
    # (With 30,000 flows this is ~15 MB; tuples and sets per group were 40.)
    conns: list[tuple[bytes, bytes, bytes, str | None, int, int, int, int]] = []
    gcount: dict[bytes, int] = {}
    pair_ports: dict[bytes, int | set[int]] = {}
    port_hosts: dict[bytes, bytes | set[bytes]] = {}
    for proto, table in ((6, tb.tcp), (17, tb.udp)):
        pb = bytes((proto,))
        for key, st in table.items():
            rkey = reverse_key(key)
            rst = table.get(rkey)
            if rst is not None and rkey < key:
                continue  # the pair is handled from its other key
            o_key, o, r = key, st, rst
            # the originator: the SYN sender, else the side seen first
            if rst is not None and not st[3] & F_SYN and (
                rst[3] & F_SYN or rst[FIRST] < st[FIRST]
            ):
                o_key, o, r = rkey, rst, st
            state = None
            r_pk = sum(r[BIN0:]) if r is not None else 0
            end = max(o[LAST], r[LAST]) if r is not None else o[LAST]
            if proto == 6:
                state = conn_state(o[3], r[3] if r is not None else 0, r_pk > 0)
                states[state] += 1
                total += 1
                if state in CLOSED:
                    closed += 1
                    if end and end - o[FIRST] < units:
                        fast += 1
            a = (len(o_key) - 4) // 2
            g_key = pb + o_key[: 2 * a] + o_key[-2:]
            p_key = g_key[:-2]
            s_key = pb + o_key[:a] + o_key[-2:]
            conns.append((g_key, p_key, s_key, state, o[FIRST], end, sum(o[BIN0:]) + r_pk,
                          o[BYTES] + (r[BYTES] if r is not None else 0)))  # fmt: skip
            gcount[g_key] = gcount.get(g_key, 0) + 1
            dport = o_key[-2] << 8 | o_key[-1]
            ports = pair_ports.get(p_key)
            if ports is None:
                pair_ports[p_key] = dport
            elif isinstance(ports, int):
                if ports != dport:
                    pair_ports[p_key] = {ports, dport}
            else:
                ports.add(dport)
            dst = o_key[a : 2 * a]
            hosts = port_hosts.get(s_key)
            if hosts is None:
                port_hosts[s_key] = dst
            elif isinstance(hosts, bytes):
                if hosts != dst:
                    port_hosts[s_key] = {hosts, dst}
            else:
                hosts.add(dst)

    def distinct(v: int | bytes | set[Any]) -> int:
        return len(v) if isinstance(v, set) else 1

    top_g = [k for k, _ in heapq.nlargest(top, gcount.items(), key=lambda i: i[1])]
    top_p = [k for k, v in heapq.nlargest(top, pair_ports.items(),
                                          key=lambda i: distinct(i[1])) if distinct(v) > 1]
    top_s = [k for k, v in heapq.nlargest(top, port_hosts.items(),
                                          key=lambda i: distinct(i[1])) if distinct(v) > 1]
    rows_of: dict[bytes, list[int]] = {k: [] for k in (*top_g, *top_p, *top_s)}
    for i, c in enumerate(conns):
        for k in c[:3]:
            rows = rows_of.get(k)
            if rows is not None:
                rows.append(i)

    def common(rows: list[int]) -> dict[str, Any]:
        st_count: Counter[str] = Counter()
        starts: Counter[int] = Counter()
        first, last, n_closed, n_fast, pk, by = 1 << 62, 0, 0, 0, 0, 0
        for i in rows:
            state, start, end, p, b = conns[i][3:]
            if state is not None:
                st_count[state] += 1
                if state in CLOSED:
                    n_closed += 1
                    if end and end - start < units:
                        n_fast += 1
            starts[start // units] += 1
            first, last = min(first, start), max(last, start)
            pk += p
            by += b
        return {
            "connections": len(rows),
            "states": dict(st_count.most_common()),
            "first": first / units,
            "first_iso": iso(first / units),
            "span_s": round((last - first) / units, 6),
            "peak_per_s": max(starts.values()),
            "closed": n_closed,
            "closed_within_1s": n_fast,
            "packets": pk,
            "bytes": by,
        }

    proto_name = {6: "tcp", 17: "udp"}

    def split_g(k: bytes) -> tuple[str, str, str, int]:
        a = (len(k) - 3) // 2
        return proto_name[k[0]], addr(k[1 : 1 + a]), addr(k[1 + a : 1 + 2 * a]), (
            k[-2] << 8 | k[-1])  # fmt: skip

    top_groups = []
    for k in top_g:
        pname, orig, resp, port = split_g(k)
        top_groups.append({"proto": pname, "orig": orig, "resp": resp, "port": port}
                          | common(rows_of[k]))  # fmt: skip
    scanners = []
    for k in top_p:
        pname, orig, resp, _ = split_g(k + b"\0\0")
        ports = pair_ports[k]
        assert isinstance(ports, set)
        scanners.append({"proto": pname, "orig": orig, "resp": resp, "ports": len(ports),
                         "sample_ports": sorted(ports)[:10]} | common(rows_of[k]))  # fmt: skip
    sweepers = []
    for k in top_s:
        a = len(k) - 3
        hosts = port_hosts[k]
        assert isinstance(hosts, set)
        sweepers.append({"proto": proto_name[k[0]], "orig": addr(k[1 : 1 + a]),
                         "port": k[-2] << 8 | k[-1], "hosts": len(hosts),
                         "sample_hosts": sorted(addr(h) for h in list(hosts)[:10])}
                        | common(rows_of[k]))  # fmt: skip
    services = [
        {"host": addr(k[:-2]), "port": k[-2] << 8 | k[-1], "syn": v[0], "syn_ack": v[1],
         "rst": v[2], "unanswered": max(v[0] - v[1] - v[2], 0), "first": v[3] / units,
         "first_iso": iso(v[3] / units)}
        for k, v in heapq.nlargest(top, tb.services.items(), key=lambda i: i[1][0])
    ]  # fmt: skip
    return {
        "tcp_connections": total,
        "states": dict(states.most_common()),
        "closed": closed,
        "closed_within_1s": fast,
        "top_groups": top_groups,
        "scanners": scanners,
        "sweepers": sweepers,
        "syn_targets": services,
        "syn_target_hosts": [
            {"host": addr(k), "syn": v[0], "syn_ack": v[1], "rst": v[2],
             "unanswered": max(v[0] - v[1] - v[2], 0), "first": v[3] / units,
             "first_iso": iso(v[3] / units)}
            for k, v in heapq.nlargest(top, tb.syn_hosts.items(), key=lambda i: i[1][0])
        ],
        "rst_senders": [
            {"host": addr(k), "rst": v}
            for k, v in heapq.nlargest(top, tb.rst_by.items(), key=lambda i: i[1])
        ],
    }


def dns(tb: Tables, top: int) -> dict[str, Any]:
    """DNS queries (UDP packets to port 53, counted per source) and responses."""
    queries: Counter[bytes] = Counter()
    for key, st in tb.udp.items():
        if key[-2:] == b"\x00\x35":
            queries[key[: (len(key) - 4) // 2]] += _packets(st)
    n = tb.names
    out: dict[str, Any] = {"queries": sum(queries.values()),
                           "top_query_sources": [{"host": addr(h), "queries": c}
                                                 for h, c in queries.most_common(top)]}  # fmt: skip
    if n is None:
        return out
    failed = sum(v for k, v in n.rcodes.items() if k in (2, 3))
    out |= {
        "responses": n.dns_responses,
        "rcodes": {RCODES.get(k, f"RCODE{k}"): v for k, v in sorted(n.rcodes.items())},
        "failures": failed,
        "failure_percent": round(100.0 * failed / n.dns_responses, 2) if n.dns_responses else 0.0,
        "top_failed_names": [
            {"name": k[0], "rcode": RCODES.get(k[1], f"RCODE{k[1]}"), "responses": v}
            for k, v in heapq.nlargest(
                top, ((k, v) for k, v in n.qnames.items() if k[1] in (2, 3)), key=lambda i: i[1]
            )
        ],
        "top_names": [
            {"name": k[0], "rcode": RCODES.get(k[1], f"RCODE{k[1]}"), "responses": v,
             "addresses": sorted(addr(a) for a in n.answers.get(k[0], []))}
            for k, v in heapq.nlargest(top, n.qnames.items(), key=lambda i: i[1])
        ],
        "approximate": n.dns_parsed < n.dns_responses or bool(n.dropped),
    }
    return out


def tls_http(names: Names | None, top: int) -> dict[str, Any]:
    if names is None:
        return {"sni": [], "http_hosts": []}
    return {
        "sni": [{"name": k[0], "server": addr(k[1]), "client_hellos": v}
                for k, v in heapq.nlargest(top, names.sni.items(), key=lambda i: i[1])],
        "http_hosts": [{"name": k[0], "server": addr(k[1]), "requests": v}
                       for k, v in heapq.nlargest(top, names.http.items(), key=lambda i: i[1])],
    }  # fmt: skip


def names_for(names: Names | None, hosts: set[str]) -> list[dict[str, str]]:
    """Names the capture gave the listed addresses, one per address."""
    if names is None:
        return []
    out = []
    for h in sorted(hosts):
        try:
            raw = ipaddress.ip_address(h).packed
        except ValueError:
            continue
        found = names.name_of(raw)
        if found is not None:
            out.append({"address": h, "name": found[0], "source": found[1]})
    return out


def icmp_unreachable(tb: Tables, top: int) -> dict[str, Any]:
    u = tb.unreachable
    proto_name = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}
    return {
        "total": sum(u.values()),
        "top": [
            {"sender": addr(k[0]), "receiver": addr(k[1]), "code": k[2],
             "proto": proto_name.get(k[3], str(k[3]) if k[3] >= 0 else None),
             "dst": addr(k[4]) if k[4] else None, "dst_port": k[5] if k[5] >= 0 else None,
             "count": v}
            for k, v in heapq.nlargest(top, u.items(), key=lambda i: i[1])
        ],
    }  # fmt: skip


def host_first_seen(tb: Tables) -> dict[bytes, tuple[int, int, int, int]]:
    """Per address: (first seen, packets, bytes, packets at or after ``split``)
    -- the split part is filled by :func:`new_peers`; here 0."""
    seen: dict[bytes, list[int]] = {}
    rows: list[tuple[bytes, State]] = []
    for table in (tb.tcp, tb.udp):
        rows.extend(table.items())
    rows.extend((k[1:], st) for k, st in tb.other.items())
    rows.extend((k[1:], st) for k, st in tb.overflow.items())
    for key, st in rows:
        a = (len(key) - 4) // 2 if len(key) in (12, 36) else len(key) // 2
        pk = _packets(st)
        for h in (key[:a], key[a : 2 * a]):
            s = seen.get(h)
            if s is None:
                seen[h] = [st[FIRST], pk, st[BYTES]]
            else:
                s[0] = min(s[0], st[FIRST])
                s[1] += pk
                s[2] += st[BYTES]
    return {h: (v[0], v[1], v[2], 0) for h, v in seen.items()}


def new_peers(
    tb: Tables, split: int, local: bytes | None, top: int,
    iso: Callable[[float | None], str | None],
) -> dict[str, Any]:  # fmt: skip
    """Addresses first seen at or after ``split`` (file units), the local host excepted."""
    units = tb.units or 1
    seen = host_first_seen(tb)
    total_after = sum(tb.tl_packets[i] for i in range(len(tb.tl_packets))
                      if tb.t_first is not None
                      and tb.t_first + i * tb.tl_width >= split)  # fmt: skip
    new = [(h, v) for h, v in seen.items() if v[0] >= split and h != local]
    before = sum(1 for h, v in seen.items() if v[0] < split and h != local)
    new_packets = sum(v[1] for _, v in new)
    return {
        "peers_before": before,
        "count": len(new),
        "packets": new_packets,
        "packets_after": total_after,
        "top": [
            {"host": addr(h), "first_seen": v[0] / units, "first_seen_iso": iso(v[0] / units),
             "packets": v[1], "bytes": v[2]}
            for h, v in heapq.nlargest(top, new, key=lambda i: i[1][1])
        ],
    }  # fmt: skip
