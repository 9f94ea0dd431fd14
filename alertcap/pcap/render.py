"""Summary dict -> plain text (CLI, email text part) and email-safe HTML.

Boundary: works only from the JSON-safe dict of ``Summary.to_dict()`` (the
email is rendered later from orchestration output, so no live objects), and
tolerates missing keys.  Layout, for the reader woken at 2 AM: the verdict
(what, who, since when, how sure), the findings, then the timeline picture
(HTML: ``<img src="cid:timeline">``; the caller attaches the PNG of
``chart.timeline_png`` inline under that content id), then the tables -- in
the text part each collapsed to its top ``rows`` (default 5).  Every value
that reaches HTML is escaped: addresses,
ports and protocol names are derived from untrusted packets and file bytes.
The HTML uses tables and inline styles only (mail clients drop <style>).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["render_html", "render_text"]


def _num(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:,.3g}"
    return str(v)


def _bytes(v: Any) -> str:
    if not isinstance(v, int | float):
        return "-"
    size = float(v)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{v} B"  # unreachable; keeps type checkers content


def _signed(v: Any) -> str:
    return f"{v:+,}" if isinstance(v, int) else "-"


def _endpoint(host: Any, port: Any) -> str:
    host = str(host)
    if port is None:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _conv(c: dict[str, Any]) -> str:
    names = " / ".join(str(n) for n in (c.get("a_name"), c.get("b_name")) if n)
    return (
        f"{c.get('proto', '?')} {_endpoint(c.get('a'), c.get('a_port'))}"
        f" <-> {_endpoint(c.get('b'), c.get('b_port'))}"
        + (" (many flows)" if c.get("aggregated") else "")
        + (f" ({names})" if names else "")
    )


def _host(r: dict[str, Any]) -> str:
    return str(r.get("host")) + (f" ({r['name']})" if r.get("name") else "")


# One table description, shared by both renderers: (title, key, columns), each
# column (header, cell function, right-aligned).
Column = tuple[str, Callable[[dict[str, Any]], str], bool]
_TABLES: list[tuple[str, str, list[Column]]] = [
    ("Protocols", "protocols", [
        ("protocol", lambda r: str(r.get("name")), False),
        ("packets", lambda r: _num(r.get("packets")), True),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
        ("%", lambda r: _num(r.get("percent")), True),
    ]),
    ("Top conversations by packets", "top_conversations_by_packets", [
        ("conversation", _conv, False),
        ("packets", lambda r: _num(r.get("packets")), True),
        ("A->B", lambda r: _num(r.get("packets_a_to_b")), True),
        ("B->A", lambda r: _num(r.get("packets_b_to_a")), True),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
        ("retrans", lambda r: _num(r.get("retransmissions")), True),
    ]),
    ("Top conversations by bytes", "top_conversations_by_bytes", [
        ("conversation", _conv, False),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
        ("A->B", lambda r: _bytes(r.get("bytes_a_to_b")), True),
        ("B->A", lambda r: _bytes(r.get("bytes_b_to_a")), True),
        ("packets", lambda r: _num(r.get("packets")), True),
    ]),
    ("Top host pairs by packets", "top_host_pairs_by_packets", [
        ("hosts", lambda r: f"{r.get('a')} <-> {r.get('b')}", False),
        ("packets", lambda r: _num(r.get("packets")), True),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
    ]),
    ("Top host pairs by bytes", "top_host_pairs_by_bytes", [
        ("hosts", lambda r: f"{r.get('a')} <-> {r.get('b')}", False),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
        ("packets", lambda r: _num(r.get("packets")), True),
    ]),
    ("Top talkers (bytes sent)", "top_talkers", [
        ("host", _host, False),
        ("bytes", lambda r: _bytes(r.get("bytes")), True),
        ("packets", lambda r: _num(r.get("packets")), True),
    ]),
    ("Top destination ports (packets)", "top_dst_ports", [
        ("port", lambda r: f"{r.get('proto')}/{r.get('port')}", False),
        ("packets", lambda r: _num(r.get("packets")), True),
    ]),
]  # fmt: skip

_CHANGE_COLS: list[Column] = [
    ("first half", lambda r: _num(r.get("first")), True),
    ("second half", lambda r: _num(r.get("second")), True),
    ("change", lambda r: _signed(r.get("change")), True),
]
_CHANGES: list[tuple[str, str, Column]] = [
    ("Conversations", "conversations", ("conversation", _conv, False)),
    ("Destination ports", "dst_ports", ("port", lambda r: f"{r.get('proto')}/{r.get('port')}",
                                        False)),
    ("Talkers (packets sent)", "talkers", ("host", lambda r: str(r.get("host")), False)),
]  # fmt: skip


def _overview(s: dict[str, Any]) -> list[tuple[str, str]]:
    tcp = s.get("tcp") or {}
    nc = tcp.get("new_connections_per_s") or {}
    return [
        ("Packets", _num(s.get("packets"))),
        ("Bytes (on the wire)", _bytes(s.get("bytes"))),
        ("Start (UTC)", str(s.get("start_iso") or "-")),
        ("End (UTC)", str(s.get("end_iso") or "-")),
        ("Duration", f"{_num(s.get('duration_s'))} s"),
        ("Rate", f"{_num(s.get('packets_per_s'))} packets/s, {_bytes(s.get('bytes_per_s'))}/s"),
        ("TCP SYN / SYN-ACK / RST / FIN",
         " / ".join(_num(tcp.get(k)) for k in ("syn", "syn_ack", "rst", "fin"))),
        ("TCP retransmissions",
         f"{_num(tcp.get('retransmissions'))} of {_num(tcp.get('packets'))} TCP packets"
         f" ({_num(tcp.get('retransmission_percent'))}%)"),
        ("New TCP connections/s",
         f"peak {_num(nc.get('peak'))} at {nc.get('peak_at') or '-'},"
         f" average {_num(nc.get('average'))}"),
    ]  # fmt: skip


def _rows(s: dict[str, Any], key: str) -> Sequence[dict[str, Any]]:
    rows = s.get(key)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _change_intro(ch: dict[str, Any]) -> str:
    pk = ch.get("packets") or {}
    return (
        f"Split at {ch.get('split_at_iso')}: first {_num(ch.get('first_half_s'))} s"
        f" ({_num(pk.get('first'))} packets) vs second {_num(ch.get('second_half_s'))} s"
        f" ({_num(pk.get('second'))} packets)."
    )


def _findings(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return list(_rows(summary, "findings"))


def _verdict_lines(summary: dict[str, Any]) -> list[str]:
    v = summary.get("verdict")
    lines = v.get("lines") if isinstance(v, dict) else None
    if isinstance(lines, list) and lines:
        return [str(x) for x in lines]
    return []


def _finding_tag(f: dict[str, Any]) -> str:
    return f"{str(f.get('severity', '?')).upper()}, {f.get('confidence', '?')} confidence"


def render_text(summary: dict[str, Any], *, rows: int | None = 5) -> str:
    """Plain-text report of a summary dict: verdict, findings, then the tables
    with at most ``rows`` rows each (None: all)."""
    limit = rows
    out: list[str] = _verdict_lines(summary)
    found = [f for f in _findings(summary) if f.get("kind") != "nothing_abnormal"]
    if found:
        out += ["", "Findings", "--------"]
        for i, f in enumerate(found, 1):
            out.append(f"{i}. [{_finding_tag(f)}] {f.get('sentence', '')}")
    if summary.get("timeline"):
        out += ["", "(The timeline picture is in the HTML part.)"]
    out += ["", "Capture summary", "==============="]
    for w in summary.get("warnings") or []:
        out.append(f"WARNING: {w}")
    width = max(len(k) for k, _ in _overview(summary))
    out += [f"{k:<{width}}  {v}" for k, v in _overview(summary)]

    def table(title: str, rows_: Sequence[dict[str, Any]], cols: list[Column]) -> None:
        if not rows_:
            return
        rows = list(rows_) if limit is None else list(rows_)[:limit]
        if len(rows) < len(rows_):
            title += f" (top {len(rows)} of {len(rows_)})"
        cells = [[fn(r) for _, fn, _ in cols] for r in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(cols)]

        def line(vals: list[str]) -> str:
            return "  ".join(
                v.rjust(w) if right else v.ljust(w)
                for v, w, (_, _, right) in zip(vals, widths, cols, strict=True)
            ).rstrip()

        out.extend(["", title, "-" * len(title), line([h for h, _, _ in cols])])
        out.extend(line(c) for c in cells)

    for title, key, cols in _TABLES:
        table(title, _rows(summary, key), cols)
    ch = summary.get("changes")
    if isinstance(ch, dict):
        out += ["", "What changed between the first and second half", _change_intro(ch)]
        for title, key, first_col in _CHANGES:
            table(f"{title}", _rows(ch, key), [first_col, *_CHANGE_COLS])
    return "\n".join(out) + "\n"


_TD = "padding:2px 8px;border-bottom:1px solid #ddd;font-family:Consolas,Menlo,monospace;"
_TH = "padding:2px 8px;border-bottom:2px solid #999;text-align:left;font-family:Arial,sans-serif;"
_H = "font-family:Arial,sans-serif;font-size:15px;margin:16px 0 4px 0;"


_SEV_COLOUR = {"high": "#b00020", "medium": "#b35c00", "low": "#555", "info": "#555"}


def render_html(summary: dict[str, Any], *, image_cid: str | None = "timeline") -> str:
    """Email-safe HTML fragment (tables, inline styles, every value escaped):
    verdict, findings, ``<img src="cid:{image_cid}">`` (omitted when None or
    when the summary has no timeline), then the tables."""
    e = html.escape
    parts: list[str] = ['<div style="font-family:Arial,sans-serif;font-size:13px;color:#222;">']
    lines = _verdict_lines(summary)
    v = summary.get("verdict")
    abnormal = isinstance(v, dict) and bool(v.get("abnormal"))
    if lines:
        colour = "#fdecea;border:1px solid #e0a3a3" if abnormal else (
            "#e8f5e9;border:1px solid #9ccc9c")  # fmt: skip
        parts.append(f'<div style="background:{colour};padding:8px;margin:4px 0;">')
        parts.append(f'<div style="font-size:15px;"><b>{e(lines[0])}</b></div>')
        parts.extend(f"<div>{e(x)}</div>" for x in lines[1:])
        parts.append("</div>")
    found = [f for f in _findings(summary) if f.get("kind") != "nothing_abnormal"]
    if found:
        parts.append(f'<h3 style="{_H}">Findings</h3>')
        parts.append('<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;">')
        for i, f in enumerate(found, 1):
            col = _SEV_COLOUR.get(str(f.get("severity")), "#555")
            parts.append(
                f'<tr><td style="{_TD}">{i}</td>'
                f'<td style="{_TD}color:{col};font-weight:bold;">{e(_finding_tag(f))}</td>'
                f'<td style="{_TD}font-family:Arial,sans-serif;">{e(str(f.get("sentence", "")))}'
                "</td></tr>"
            )
        parts.append("</table>")
    if image_cid and summary.get("timeline"):
        parts.append(f'<h3 style="{_H}">Timeline</h3>')
        parts.append(
            f'<img src="cid:{e(image_cid)}" width="640" alt="Timeline: packets/s, bytes/s and'
            ' new TCP connections/s, with the alert marked" style="display:block;border:0;">'
        )
    parts.append(f'<h2 style="{_H}font-size:18px;">Capture summary</h2>')
    for w in summary.get("warnings") or []:
        parts.append(
            '<p style="background:#fff3cd;border:1px solid #e0c36b;padding:6px;margin:4px 0;">'
            f"<b>Warning:</b> {e(str(w))}</p>"
        )
    parts.append('<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;">')
    for k, v in _overview(summary):
        parts.append(f'<tr><th style="{_TH}">{e(k)}</th><td style="{_TD}">{e(v)}</td></tr>')
    parts.append("</table>")

    def table(title: str, rows: Sequence[dict[str, Any]], cols: list[Column]) -> None:
        if not rows:
            return
        parts.append(f'<h3 style="{_H}">{e(title)}</h3>')
        parts.append('<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;">')
        parts.append(
            "<tr>"
            + "".join(
                f'<th style="{_TH}{"text-align:right;" if right else ""}">{e(h)}</th>'
                for h, _, right in cols
            )
            + "</tr>"
        )
        for r in rows:
            parts.append(
                "<tr>"
                + "".join(
                    f'<td style="{_TD}{"text-align:right;" if right else ""}">{e(fn(r))}</td>'
                    for _, fn, right in cols
                )
                + "</tr>"
            )
        parts.append("</table>")

    for title, key, cols in _TABLES:
        table(title, _rows(summary, key), cols)
    ch = summary.get("changes")
    if isinstance(ch, dict):
        parts.append(f'<h3 style="{_H}">What changed between the first and second half</h3>')
        parts.append(f"<p>{e(_change_intro(ch))}</p>")
        for title, key, first_col in _CHANGES:
            table(title, _rows(ch, key), [first_col, *_CHANGE_COLS])
    parts.append("</div>")
    return "\n".join(parts) + "\n"
