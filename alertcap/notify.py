"""The notification email, rendered from the orchestration's RunResult dict.

Pure: no I/O, so the same text can be checked in tests and previewed from any finished
run's output. Every value that came from outside (alert text, names, packet contents)
is HTML-escaped; the status URL never carries a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from alertcap import pcap


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str


def _vm_name(vm_id: str) -> str:
    return vm_id.rstrip("/").rsplit("/", 1)[-1]


def _rows(run: dict[str, Any]) -> list[tuple[str, str]]:
    alert = run.get("alert") or {}
    capture = run.get("capture") or {}
    status = run.get("capture_status") or {}
    summary = run.get("summary") or {}
    rows = [
        ("VM", run.get("vm_id", "")),
        ("Outcome", run.get("outcome", "")),
        ("Reason", run.get("reason") or ""),
        ("Alert rule", alert.get("alert_rule") or "(manual start)"),
        ("Alert fired", alert.get("fired_at") or ""),
        ("Severity", alert.get("severity") or ""),
        ("Capture", capture.get("name") or ""),
        ("Capture status", status.get("status") or ""),
        ("Stop reason", status.get("stop_reason") or ""),
        ("Stopped by", run.get("stopped_by") or ""),
        ("Network Watcher errors", ", ".join(status.get("errors") or [])),
        ("Capture file", summary.get("blob_url") or capture.get("storage_path") or ""),
        ("VM-local file", capture.get("local_path") or ""),
        ("Read link", summary.get("link") or ""),
        ("Link expires", summary.get("link_expires") or ""),
        ("Started", run.get("started_at", "")),
        ("Finished", run.get("finished_at", "")),
        ("Status URL", run.get("status_url") or ""),
        ("Instance", run.get("instance_id", "")),
    ]
    return [(k, str(v)) for k, v in rows if v]


def render(run: dict[str, Any]) -> Email:
    vm = _vm_name(str(run.get("vm_id", "")))
    failed = run.get("outcome") != "captured"
    stats = ((run.get("summary") or {}).get("summary")) or None
    if failed:
        subject = f"[alertcap] Capture FAILED on {vm}: {run.get('reason') or 'see details'}"
    else:
        packets = (stats or {}).get("packets")
        caught = f"{packets:,} packets" if isinstance(packets, int) else "capture"
        subject = f"[alertcap] {caught} captured on {vm}"
    rule = (run.get("alert") or {}).get("alert_rule")
    if rule:
        subject += f" (alert: {rule})"
    subject = subject.replace("\r", " ").replace("\n", " ")[:250]

    rows = _rows(run)
    warnings = list(run.get("warnings") or [])
    width = max(len(k) for k, _ in rows)
    text = [subject, ""] + [f"{k.ljust(width)}  {v}" for k, v in rows]
    if warnings:
        text += ["", "Warnings:"] + [f"- {w}" for w in warnings]
    if stats:
        text += ["", pcap.render_text(stats)]

    cell = "padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
    colour = "#b00020" if failed else "#1b5e20"
    html = [
        "<html><body style=\"font-family:Segoe UI,Arial,sans-serif;font-size:14px\">",
        f"<h2 style=\"color:{colour}\">{escape(subject)}</h2>",
        "<table style=\"border-collapse:collapse\">",
    ]
    for k, v in rows:
        value = escape(v)
        if k == "Read link" or (k == "Status URL" and v.startswith("http")):
            value = f"<a href=\"{escape(v, quote=True)}\">{escape(v[:120])}</a>"
        html.append(f"<tr><th style=\"{cell}\">{escape(k)}</th>"
                    f"<td style=\"{cell}\">{value}</td></tr>")
    html.append("</table>")
    if warnings:
        html.append("<p><b>Warnings</b></p><ul>"
                    + "".join(f"<li>{escape(str(w))}</li>" for w in warnings) + "</ul>")
    if stats:
        html.append("<h3>What the capture caught</h3>")
        html.append(pcap.render_html(stats))
    html.append("</body></html>")
    return Email(subject, "\n".join(text) + "\n", "\n".join(html))
