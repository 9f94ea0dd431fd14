"""Findings: what is abnormal in a capture, who does it, since when, how sure.

Boundary: pure functions of the summary dict (``Summary.to_dict()``, schema
``alertcap.summary/2``) and, optionally, the parsed alert's signal -- no packets,
no I/O -- so the CLI, the activity and tests all get the same answer, and the
lead can re-run :func:`findings` on a stored summary with the alert attached.

A finding is ``{kind, severity, confidence, score, culprit, hosts, ports,
since, since_iso, evidence, sentence, slice}``: ``severity`` is "high",
"medium", "low" or "info"; ``confidence`` is "high", "medium" or "low" (one step
lower when the summary's tables overflowed: ``limits.approximate``);
``score`` orders findings (severity first); ``hosts``/``ports`` are those
involved, culprit first; ``evidence`` holds the numbers the sentence quotes;
``slice`` selects the finding's packets for ``slices.write_slices`` (``{proto,
a, a_port, b, b_port}``, null = any, matched in both directions).

Kinds (thresholds are the ``_T`` constants below; ``confidence`` is "high"
at three times a threshold, "medium" at 1.5 times, else "low"):

``connection_churn``
    one originator opens many short TCP connections to one service
    (>= 200 connections and a peak of >= 20/s).
``half_open``
    SYNs to a service left unanswered -- no SYN-ACK, no RST (Zeek ``S0``);
    a SYN flood when the volume is high (>= 100 unanswered, >= 50 %).
``rejected_connections``
    SYNs answered by RST (Zeek ``REJ``; >= 50, >= 50 % of the SYNs).
``port_scan``
    one source, one target, many destination ports (>= 50; or >= 15 when
    at least 80 % were refused or unanswered).
``host_sweep``
    one source, many hosts, one port (>= 20 hosts).
``retransmission_storm``
    >= 5 % of TCP segments retransmitted, at least 100 of them.
``reset_storm``
    >= 100 established connections reset (Zeek ``RSTO``/``RSTR``), at least
    one in three.
``dominant_flow``
    one conversation carries >= 60 % of all bytes (captures over 1 MB).
``large_transfer``
    the capturing VM sent >= 100 MB, or >= 10 MB and >= 80 % of its
    outbound bytes, to one remote address.
``new_peers``
    addresses first seen after the alert (or in the second half when the
    capture does not reach back before the alert) carry >= 20 % of the
    packets since (at least 100).
``dns_failures``
    >= 20 % of >= 20 DNS responses are NXDOMAIN or SERVFAIL.
``dns_query_flood``
    one source sends >= 500 DNS queries at >= 50/s on average.
``icmp_unreachable``
    >= 50 ICMP destination-unreachable messages (a burst of refusals).
``alert_context`` (info)
    ties the alert's metric to the capture: for "Network Out/In" which
    conversations carried the bytes, for flow metrics which sources opened
    the connections.
``nothing_abnormal`` (info)
    none of the above: said plainly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypedDict

__all__ = ["KINDS", "AlertSignal", "findings", "parse_time", "verdict"]


class AlertSignal(TypedDict, total=False):
    metric: str
    value: float
    threshold: float
    operator: str
    fired_at: str | float


KINDS = (
    "connection_churn", "half_open", "rejected_connections", "port_scan", "host_sweep",
    "retransmission_storm", "reset_storm", "dominant_flow", "large_transfer", "new_peers",
    "dns_failures", "dns_query_flood", "icmp_unreachable", "alert_context", "nothing_abnormal",
)  # fmt: skip

_T = {
    "churn_connections": 200, "churn_peak": 20,
    "s0_unanswered": 100, "s0_share": 0.5,
    "rej_count": 50, "rej_share": 0.5,
    "scan_ports": 50, "scan_ports_failed": 15, "scan_failed_share": 0.8,
    "sweep_hosts": 20,
    "retx_percent": 5.0, "retx_count": 100,
    "rst_count": 100, "rst_per_conn": 1 / 3,
    "dominant_share": 0.6, "dominant_min_bytes": 1_000_000,
    "transfer_bytes": 100_000_000, "transfer_min_bytes": 10_000_000, "transfer_share": 0.8,
    "new_share": 0.2, "new_packets": 100,
    "dns_responses": 20, "dns_fail_percent": 20.0,
    "dns_queries": 500, "dns_rate": 50.0,
    "unreachable": 50,
}  # fmt: skip
_SEVERITY = {"high": 3, "medium": 2, "low": 1, "info": 0}
_LABEL = {
    "connection_churn": "connection churn", "half_open": "half-open connections (SYN flood)",
    "rejected_connections": "rejected connections", "port_scan": "port scan",
    "host_sweep": "host sweep", "retransmission_storm": "retransmission storm",
    "reset_storm": "reset storm", "dominant_flow": "one flow dominating bytes",
    "large_transfer": "large transfer", "new_peers": "new peers after the alert",
    "dns_failures": "DNS failures", "dns_query_flood": "DNS query flood",
    "icmp_unreachable": "ICMP unreachable burst",
}  # fmt: skip


def parse_time(v: Any) -> float | None:
    """UNIX seconds from a number or an ISO 8601 string (Azure writes up to 7
    fractional digits and a Z); None for anything else."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if not isinstance(v, str):
        return None
    s = v.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if "." in s:  # fromisoformat takes at most 6 fractional digits before 3.11's rules
        head, _, rest = s.partition(".")
        # the leading digits only: "308+00:00" (3 digits, then the offset) must not borrow
        # the offset's digits
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        tail = rest[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _n(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10 or float(v).is_integer() else f"{v:,.1f}"


def _pct(part: float, whole: float) -> str:
    if not whole:
        return "0 %"
    p = 100.0 * part / whole
    return f"{p:.0f} %" if p >= 1 or p == 0 else f"{p:.1g} %"


def _bytes(v: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(v) < 1000:
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1000
    return f"{v:,.1f} TB"


def _secs(v: float) -> str:
    return f"{v:.1f} s" if v < 10 else f"{v:,.0f} s"


def _ep(host: Any, port: Any) -> str:
    h = str(host)
    if port is None:
        return h
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def _confidence(ratio: float, approximate: bool) -> str:
    levels = ["low", "medium", "high"]
    i = 2 if ratio >= 3 else 1 if ratio >= 1.5 else 0
    return levels[max(i - int(approximate), 0)]


def _sel(proto: str | None = None, a: str | None = None, a_port: int | None = None,
         b: str | None = None, b_port: int | None = None) -> dict[str, Any]:  # fmt: skip
    return {"proto": proto, "a": a, "a_port": a_port, "b": b, "b_port": b_port}


def _f(kind: str, severity: str, ratio: float, approx: bool, sentence: str, *,
       culprit: str | None, hosts: list[str], ports: list[int] | None = None,
       since: float | None = None, evidence: dict[str, Any] | None = None,
       slice_: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "label": _LABEL.get(kind, kind.replace("_", " ")),
        "severity": severity,
        "confidence": _confidence(ratio, approx) if severity != "info" else "high",
        "score": round(_SEVERITY[severity] * 1000 + min(ratio, 999.0), 3),
        "culprit": culprit,
        "hosts": [h for i, h in enumerate(hosts) if h and h not in hosts[:i]],
        "ports": ports or [],
        "since": since,
        "since_iso": _iso(since),
        "evidence": evidence or {},
        "sentence": sentence,
        "slice": slice_,
    }


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def findings(summary: dict[str, Any], alert: AlertSignal | None = None) -> list[dict[str, Any]]:
    """Ranked findings (most severe first); ``nothing_abnormal`` when none."""
    s = summary
    approx = bool((s.get("limits") or {}).get("approximate"))
    conns = s.get("connections") or {}
    tcp = s.get("tcp") or {}
    out: list[dict[str, Any]] = []
    groups = conns.get("top_groups") or []

    for g in groups:
        if g["proto"] != "tcp":
            continue
        n, peak = g["connections"], g["peak_per_s"]
        if n >= _T["churn_connections"] and peak >= _T["churn_peak"]:
            ratio = min(n / _T["churn_connections"], peak / _T["churn_peak"])
            fast = g["closed_within_1s"]
            out.append(_f(
                "connection_churn", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{g['orig']} opened {n:,} connections to {_ep(g['resp'], g['port'])} in "
                f"{_secs(g['span_s'])}, peak {peak:,}/s; {_pct(fast, n)} closed within a second.",
                culprit=g["orig"], hosts=[g["orig"], g["resp"]], ports=[g["port"]],
                since=g["first"], slice_=_sel("tcp", g["orig"], None, g["resp"], g["port"]),
                evidence={"connections": n, "span_s": g["span_s"], "peak_per_s": peak,
                          "closed_within_1s": fast, "states": g["states"]},
            ))  # fmt: skip

    def originators(host: str, port: int) -> list[dict[str, Any]]:
        return [g for g in groups if g["resp"] == host and g["port"] == port]

    for t in conns.get("syn_targets") or []:
        syn, unanswered, rst = t["syn"], t["unanswered"], t["rst"]
        who = originators(t["host"], t["port"])
        culprit = who[0]["orig"] if len(who) == 1 else None
        srcs = f"from {culprit}" if culprit else (
            f"from {len(who)}+ sources" if who else "from many sources")  # fmt: skip
        if unanswered >= _T["s0_unanswered"] and unanswered >= _T["s0_share"] * syn:
            ratio = unanswered / _T["s0_unanswered"]
            out.append(_f(
                "half_open", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{_ep(t['host'], t['port'])} got {syn:,} SYNs {srcs}; {unanswered:,} "
                f"({_pct(unanswered, syn)}) were never answered (half-open, Zeek S0).",
                culprit=culprit, hosts=[culprit or "", t["host"]], ports=[t["port"]],
                since=t["first"], slice_=_sel("tcp", culprit, None, t["host"], t["port"]),
                evidence={"syn": syn, "syn_ack": t["syn_ack"], "rst": rst,
                          "unanswered": unanswered, "sources_seen": len(who)},
            ))  # fmt: skip
        if rst >= _T["rej_count"] and rst >= _T["rej_share"] * syn:
            ratio = rst / _T["rej_count"]
            out.append(_f(
                "rejected_connections", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{_ep(t['host'], t['port'])} refused {rst:,} of {syn:,} connection attempts "
                f"{srcs} with a RST (Zeek REJ).",
                culprit=culprit, hosts=[culprit or "", t["host"]], ports=[t["port"]],
                since=t["first"], slice_=_sel("tcp", culprit, None, t["host"], t["port"]),
                evidence={"syn": syn, "syn_ack": t["syn_ack"], "rst": rst},
            ))  # fmt: skip

    # the same per host: floods and scans spread over many ports and sources
    covered = {f["hosts"][-1] for f in out if f["kind"] in ("half_open", "rejected_connections")}
    for t in conns.get("syn_target_hosts") or []:
        syn, unanswered = t["syn"], t["unanswered"]
        if t["host"] in covered:
            continue
        if unanswered >= _T["s0_unanswered"] and unanswered >= _T["s0_share"] * syn:
            ratio = unanswered / _T["s0_unanswered"]
            out.append(_f(
                "half_open", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{t['host']} got {syn:,} SYNs on many ports; {unanswered:,} "
                f"({_pct(unanswered, syn)}) were never answered (half-open, Zeek S0).",
                culprit=None, hosts=[t["host"]], since=t["first"],
                slice_=_sel("tcp", None, None, t["host"]),
                evidence={"syn": syn, "syn_ack": t["syn_ack"], "rst": t["rst"],
                          "unanswered": unanswered, "per_host": True},
            ))  # fmt: skip

    for sc in conns.get("scanners") or []:
        if _mostly_unseen_starts(sc):
            continue
        failed = sum(v for k, v in sc["states"].items() if k in ("S0", "REJ", "RSTOS0"))
        ports = sc["ports"]
        if ports >= _T["scan_ports"] or (
            ports >= _T["scan_ports_failed"]
            and failed >= _T["scan_failed_share"] * sc["connections"]
        ):
            ratio = ports / _T["scan_ports_failed"]
            out.append(_f(
                "port_scan", "high", ratio, approx,
                f"{sc['orig']} probed {ports:,} {sc['proto'].upper()} ports on {sc['resp']} in "
                f"{_secs(sc['span_s'])}; {failed:,} refused or unanswered"
                f" ({', '.join(f'{k} {v:,}' for k, v in sc['states'].items())})."
                if sc["states"] else
                f"{sc['orig']} sent to {ports:,} {sc['proto'].upper()} ports on {sc['resp']} in "
                f"{_secs(sc['span_s'])}.",
                culprit=sc["orig"], hosts=[sc["orig"], sc["resp"]], ports=sc["sample_ports"],
                since=sc["first"], slice_=_sel(sc["proto"], sc["orig"], None, sc["resp"]),
                evidence={"ports": ports, "connections": sc["connections"],
                          "states": sc["states"], "sample_ports": sc["sample_ports"]},
            ))  # fmt: skip
    for sw in conns.get("sweepers") or []:
        if _mostly_unseen_starts(sw):
            continue
        if sw["hosts"] >= _T["sweep_hosts"]:
            ratio = sw["hosts"] / _T["sweep_hosts"]
            out.append(_f(
                "host_sweep", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{sw['orig']} contacted {sw['hosts']:,} hosts on {sw['proto']}/{sw['port']} in "
                f"{_secs(sw['span_s'])}.",
                culprit=sw["orig"], hosts=[sw["orig"], *sw["sample_hosts"][:5]],
                ports=[sw["port"]], since=sw["first"],
                slice_=_sel(sw["proto"], sw["orig"], None, None, sw["port"]),
                evidence={"hosts": sw["hosts"], "connections": sw["connections"],
                          "states": sw["states"], "sample_hosts": sw["sample_hosts"]},
            ))  # fmt: skip

    retx, tcp_pk = tcp.get("retransmissions", 0), tcp.get("packets", 0)
    pct = tcp.get("retransmission_percent", 0.0)
    if retx >= _T["retx_count"] and pct >= _T["retx_percent"]:
        worst = (s.get("top_conversations_by_retransmissions") or [None])[0]
        ratio = pct / _T["retx_percent"]
        worst_in = (f"; most in {_ep(worst['a'], worst['a_port'])} <-> "
               f"{_ep(worst['b'], worst['b_port'])} ({worst['retransmissions']:,})"
               if worst else "")  # fmt: skip
        out.append(_f(
            "retransmission_storm", "high" if ratio >= 3 else "medium", ratio, approx,
            f"{retx:,} of {tcp_pk:,} TCP segments ({pct:.1f} %) were retransmitted{worst_in}.",
            culprit=worst["a"] if worst else None,
            hosts=[worst["a"], worst["b"]] if worst else [],
            ports=[worst["b_port"]] if worst and worst["b_port"] is not None else [],
            slice_=_sel("tcp", worst["a"], worst["a_port"], worst["b"], worst["b_port"])
            if worst else None,
            evidence={"retransmissions": retx, "tcp_packets": tcp_pk, "percent": pct},
        ))  # fmt: skip

    # Resets of established connections (Zeek RSTO/RSTR); refusals (REJ) are
    # rejected_connections / port_scan evidence instead.
    st_all = conns.get("states") or {}
    aborted = st_all.get("RSTO", 0) + st_all.get("RSTR", 0)
    n_conn = max(conns.get("tcp_connections", 0), 1)
    if aborted >= _T["rst_count"] and aborted >= _T["rst_per_conn"] * n_conn:
        top_s = (conns.get("rst_senders") or [None])[0]
        ratio = aborted / _T["rst_count"]
        out.append(_f(
            "reset_storm", "high" if ratio >= 3 else "medium", ratio, approx,
            f"{aborted:,} of {n_conn:,} TCP connections were reset after they were established"
            f" (RSTO {st_all.get('RSTO', 0):,}, RSTR {st_all.get('RSTR', 0):,})"
            + (f"; {top_s['host']} sent {top_s['rst']:,} RSTs." if top_s else "."),
            culprit=top_s["host"] if top_s else None, hosts=[top_s["host"]] if top_s else [],
            slice_=_sel("tcp", top_s["host"]) if top_s else None,
            evidence={"aborted": aborted, "rst": tcp.get("rst", 0), "tcp_connections": n_conn,
                      "top_sender": top_s},
        ))  # fmt: skip

    total_bytes = s.get("bytes") or 0
    top_b = (s.get("top_conversations_by_bytes") or [None])[0]
    if top_b and total_bytes >= _T["dominant_min_bytes"] and len(
        s.get("top_conversations_by_bytes") or []
    ) > 1 and top_b["bytes"] >= _T["dominant_share"] * total_bytes:
        share = top_b["bytes"] / total_bytes
        out.append(_f(
            "dominant_flow", "low", share / _T["dominant_share"], approx,
            f"One conversation carried {_pct(top_b['bytes'], total_bytes)} of all bytes: "
            f"{top_b['proto']} {_ep(top_b['a'], top_b['a_port'])} <-> "
            f"{_ep(top_b['b'], top_b['b_port'])}, {_bytes(top_b['bytes'])}.",
            culprit=top_b["a"], hosts=[top_b["a"], top_b["b"]],
            ports=[p for p in (top_b["b_port"],) if p is not None],
            slice_=_sel(top_b["proto"], top_b["a"], top_b["a_port"], top_b["b"],
                        top_b["b_port"]),
            evidence={"bytes": top_b["bytes"], "total_bytes": total_bytes,
                      "share": round(share, 4)},
        ))  # fmt: skip

    local = s.get("local_host") or {}
    if local:
        per_remote: dict[str, int] = {}
        for c in local.get("top_outbound") or []:
            remote = c["b"] if c["a"] == local["host"] else c["a"]
            per_remote[remote] = per_remote.get(remote, 0) + c["bytes_out"]
        out_total = local.get("bytes_out") or 0
        for remote, sent in sorted(per_remote.items(), key=lambda kv: -kv[1])[:1]:
            if sent >= _T["transfer_bytes"] or (
                sent >= _T["transfer_min_bytes"] and sent >= _T["transfer_share"] * out_total
            ):
                ratio = sent / _T["transfer_min_bytes"]
                out.append(_f(
                    "large_transfer", "medium", ratio, approx,
                    f"{local['host']} sent {_bytes(sent)} to {remote} "
                    f"({_pct(sent, out_total)} of its outbound bytes) in "
                    f"{_secs(s.get('duration_s') or 0)}.",
                    culprit=local["host"], hosts=[local["host"], remote],
                    slice_=_sel(None, local["host"], None, remote),
                    evidence={"bytes": sent, "bytes_out": out_total},
                ))  # fmt: skip

    np_ = s.get("new_peers") or {}
    if np_ and np_.get("count") and np_.get("packets_after"):
        share = np_["packets"] / np_["packets_after"]
        if np_["packets"] >= _T["new_packets"] and share >= _T["new_share"]:
            top_p = np_["top"][0]
            when = "after the alert" if np_.get("basis") == "alert" else "in the second half"
            ratio = share / _T["new_share"]
            out.append(_f(
                "new_peers", "high" if np_.get("basis") == "alert" and ratio >= 3 else "medium",
                ratio, approx,
                f"{np_['count']:,} peer{'s' if np_['count'] != 1 else ''} first seen {when} "
                f"carried {_pct(np_['packets'], np_['packets_after'])} of the packets since; "
                f"busiest {top_p['host']} ({top_p['packets']:,} packets from "
                f"{top_p['first_seen_iso']}).",
                culprit=top_p["host"], hosts=[p["host"] for p in np_["top"][:5]],
                since=top_p["first_seen"], slice_=_sel(None, top_p["host"]),
                evidence={"count": np_["count"], "packets": np_["packets"],
                          "packets_after": np_["packets_after"], "basis": np_.get("basis"),
                          "peers_before": np_.get("peers_before")},
            ))  # fmt: skip

    d = s.get("dns") or {}
    if d.get("responses", 0) >= _T["dns_responses"] and (
        d.get("failure_percent", 0.0) >= _T["dns_fail_percent"]
    ):
        failed_names = d.get("top_failed_names") or []
        ratio = d["failure_percent"] / _T["dns_fail_percent"]
        rc = d.get("rcodes") or {}
        top_name = (f"; most for {failed_names[0]['name']} ({failed_names[0]['responses']:,})"
                    if failed_names else "")  # fmt: skip
        out.append(_f(
            "dns_failures", "high" if ratio >= 3 else "medium", ratio, approx or d["approximate"],
            f"{d['failures']:,} of {d['responses']:,} DNS responses ({d['failure_percent']:.0f} %)"
            f" were failures (NXDOMAIN {rc.get('NXDOMAIN', 0):,}, SERVFAIL "
            f"{rc.get('SERVFAIL', 0):,}){top_name}.",
            culprit=None, hosts=[], ports=[53], slice_=_sel("udp", None, None, None, 53),
            evidence={"responses": d["responses"], "failures": d["failures"], "rcodes": rc,
                      "top_failed_names": failed_names[:5]},
        ))  # fmt: skip
    dur = s.get("duration_s") or 0.0
    for q in (d.get("top_query_sources") or [])[:1]:
        rate = q["queries"] / dur if dur > 0 else float(q["queries"])
        if q["queries"] >= _T["dns_queries"] and rate >= _T["dns_rate"]:
            ratio = rate / _T["dns_rate"]
            out.append(_f(
                "dns_query_flood", "high" if ratio >= 3 else "medium", ratio, approx,
                f"{q['host']} sent {q['queries']:,} DNS queries in {_secs(dur)} "
                f"({_n(rate)}/s).",
                culprit=q["host"], hosts=[q["host"]], ports=[53],
                slice_=_sel("udp", q["host"], None, None, 53),
                evidence={"queries": q["queries"], "per_s": round(rate, 3)},
            ))  # fmt: skip

    u = s.get("icmp_unreachable") or {}
    if u.get("total", 0) >= _T["unreachable"]:
        t0 = u["top"][0]
        about = _ep(t0["dst"], t0["dst_port"]) if t0.get("dst") else "?"
        ratio = u["total"] / _T["unreachable"]
        out.append(_f(
            "icmp_unreachable", "medium" if ratio >= 3 else "low", ratio, approx,
            f"{u['total']:,} ICMP destination-unreachable messages; {t0['sender']} told "
            f"{t0['receiver']} {t0['count']:,} times that {t0['proto'] or 'ip'} {about} is "
            f"unreachable (code {t0['code']}).",
            culprit=t0["receiver"], hosts=[t0["receiver"], t0["sender"]],
            ports=[t0["dst_port"]] if t0.get("dst_port") is not None else [],
            slice_=_sel(None, t0["sender"], None, t0["receiver"]),
            evidence={"total": u["total"], "top": u["top"][:5]},
        ))  # fmt: skip

    out.sort(key=lambda f: -f["score"])
    ctx = alert_context(s, alert)
    if ctx is not None:
        out.append(ctx)
    if not any(f["severity"] != "info" for f in out):
        out.insert(0, _f(
            "nothing_abnormal", "info", 0.0, approx,
            f"Nothing abnormal found in {s.get('packets', 0):,} packets over "
            f"{_secs(s.get('duration_s') or 0)}.",
            culprit=None, hosts=[],
            evidence={"packets": s.get("packets", 0), "duration_s": s.get("duration_s")},
        ))  # fmt: skip
    return out


def alert_context(s: dict[str, Any], alert: AlertSignal | None) -> dict[str, Any] | None:
    """The ``alert_context`` finding: the alert's metric explained by the capture."""
    if not alert or not isinstance(alert.get("metric"), str):
        return None
    metric = str(alert["metric"])
    m = metric.lower()
    value, thr, op = alert.get("value"), alert.get("threshold"), alert.get("operator") or ""
    head = f"Alert {metric}" + (f" = {_n(value)}" if isinstance(value, int | float) else "") + (
        f" ({op} {_n(thr)})" if isinstance(thr, int | float) else "") + ": "  # fmt: skip
    local = s.get("local_host") or {}
    host = local.get("host")
    groups = (s.get("connections") or {}).get("top_groups") or []
    if "flow" in m and host:
        inbound = "in" in m.split("flow")[0] or m.startswith("inbound")
        rows = [g for g in groups if (g["resp"] if inbound else g["orig"]) == host]
        per: dict[str, int] = {}
        for g in rows:
            k = g["orig"] if inbound else f"{_ep(g['resp'], g['port'])}"
            per[k] = per.get(k, 0) + g["connections"]
        top = sorted(per.items(), key=lambda kv: -kv[1])[:3]
        total = sum(per.values())
        who = ", ".join(f"{k} ({v:,})" for k, v in top) or "none seen"
        sentence = (head + f"the capture saw {total:,} {'inbound' if inbound else 'outbound'} "
                    f"flows {'to' if inbound else 'from'} {host}; "
                    f"{'opened by' if inbound else 'to'} {who}.")  # fmt: skip
        return _f("alert_context", "info", 0.0, False, sentence, culprit=top[0][0] if top and
                  inbound else host, hosts=[host, *(k for k, _ in top if inbound)],
                  evidence={"metric": metric, "flows": total, "top": [
                      {"who": k, "flows": v} for k, v in top]})  # fmt: skip
    if "network" in m and host and ("out" in m or " in" in m or m.endswith("in")):
        out = "out" in m
        rows = local.get("top_outbound" if out else "top_inbound") or []
        field = "bytes_out" if out else "bytes_in"
        total = local.get(field) or 0
        # the top three, without crumbs under 1 % of the total
        top_rows = [r for i, r in enumerate(rows[:3]) if i == 0 or r[field] * 100 >= total]
        who = "; ".join(
            f"{_ep(r['a'], r['a_port'])} <-> {_ep(r['b'], r['b_port'])} "
            f"{_bytes(r[field])} ({_pct(r[field], total)})" for r in top_rows
        ) or "none"
        sentence = head + (f"{host} {'sent' if out else 'received'} {_bytes(total)} in the "
                           f"capture; most in {who}.")  # fmt: skip
        remote = [r["b"] if r["a"] == host else r["a"] for r in top_rows]
        return _f("alert_context", "info", 0.0, False, sentence, culprit=host,
                  hosts=[host, *remote], evidence={"metric": metric, field: total,
                  "top": [{k: r[k] for k in ("proto", "a", "a_port", "b", "b_port", field)}
                          for r in top_rows]})  # fmt: skip
    return _f("alert_context", "info", 0.0, False,
              head + "this metric has no direct counterpart in the packets; see the findings "
              "and the timeline.", culprit=None, hosts=[], evidence={"metric": metric})  # fmt: skip


def _mostly_unseen_starts(group: dict[str, Any]) -> bool:
    """Connections whose SYN the capture never saw (Zeek OTH) have no known originator: the
    side that spoke first in the capture is often the server answering a client's many
    ephemeral ports. A "scan" made of those is the client's churn seen backwards."""
    states = group.get("states") or {}
    return bool(states) and states.get("OTH", 0) * 2 > group.get("connections", 0)


def verdict(found: list[dict[str, Any]], s: dict[str, Any]) -> dict[str, Any]:
    """The first three lines for the 2 AM reader: what, who, since when, how sure."""
    bad = [f for f in found if f["severity"] != "info"]
    lines: list[str] = []
    if not bad:
        lines.append(next(f["sentence"] for f in found if f["kind"] == "nothing_abnormal"))
    else:
        f = bad[0]
        who = f" by {f['culprit']}" if f.get("culprit") else ""
        when = f" since {f['since_iso']}" if f.get("since_iso") else ""
        lines.append(f"ABNORMAL: {f['label']}{who}{when} ({f['severity']} severity, "
                     f"{f['confidence']} confidence).")  # fmt: skip
        lines.append(f["sentence"])
        if len(bad) > 1:
            also = [g["label"] + (f" ({g['culprit']})" if g.get("culprit") else "")
                    for g in bad[1:4]]  # fmt: skip
            more = "." if len(bad) <= 4 else f"; {len(bad) - 4} more."
            lines.append("Also: " + "; ".join(also) + more)
    ctx = next((f for f in found if f["kind"] == "alert_context"), None)
    if ctx is not None and len(lines) < 3:
        lines.append(ctx["sentence"])
    return {"abnormal": bool(bad), "headline": lines[0], "lines": lines[:3]}
