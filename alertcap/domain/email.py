"""The notification email, rendered from the orchestration's typed RunResult.

Pure: no I/O, so the same text can be checked in tests and previewed from any finished
run's output. Every value that came from outside (alert text, names, packet contents)
is HTML-escaped; the status URL never carries a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from alertcap import pcap
from alertcap.domain.run import InstanceSummary, RunResult

TIMELINE_CID = "timeline"


@dataclass(frozen=True)
class Inline:
    """An image the HTML shows by content id (an inline attachment: Outlook and Gmail show
    these; they block remote images, and neither runs SVG or scripts)."""

    content_id: str
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    inline: tuple[Inline, ...] = ()


def _instance_line(one: InstanceSummary) -> str:
    packets = (one.summary or {}).get("packets")
    counted = f"{packets:,} packets, " if isinstance(packets, int) else ""
    return f"{counted}{one.link or one.blob_url}"


def _rows(run: RunResult) -> list[tuple[str, str]]:
    alert, capture, status = run.alert, run.capture, run.capture_status
    summary = run.summary
    rows = [
        ("VM", run.vm.id),
        ("Outcome", run.outcome),
        ("Reason", run.reason or ""),
        ("Alert rule", alert.alert_rule or "(manual start)"),
        ("Alert fired", alert.fired_at or ""),
        ("Severity", alert.severity or ""),
        ("Capture", capture.name if capture else ""),
        ("Capture status", status.status if status else ""),
        ("Stop reason", (status.stop_reason if status else None) or ""),
        ("Stopped by", run.stopped_by or ""),
        ("Network Watcher errors", ", ".join(status.errors) if status else ""),
        ("Capture file", (summary.blob_url if summary else None)
         or (capture.storage_path if capture else None) or ""),
        ("VM-local file", (capture.local_path if capture else None) or ""),
        # A scale set: one file per captured instance (packets, then where it is).
        *((f"Instance {i.instance_id}", _instance_line(i))
          for i in (summary.instances if summary else ())),
        ("Read link", (summary.link if summary else None) or ""),
        ("Link expires", (summary.link_expires if summary else None) or ""),
        ("Started", run.started_at),
        ("Finished", run.finished_at),
        ("Status URL", run.status_url or ""),
        ("Instance", run.instance_id),
    ]
    return [(k, str(v)) for k, v in rows if v]


def render(run: RunResult) -> Email:
    vm = run.vm.name
    failed = run.outcome != "captured"
    stats = (run.summary.summary if run.summary else None) or None
    if failed:
        subject = f"[alertcap] Capture FAILED on {vm}: {run.reason or 'see details'}"
    else:
        packets = (stats or {}).get("packets")
        verdict = (stats or {}).get("verdict") or {}
        if verdict.get("abnormal") and verdict.get("headline"):
            subject = f"[alertcap] {vm}: {verdict['headline']}"
        elif isinstance(packets, int):
            subject = f"[alertcap] {packets:,} packets captured on {vm}"
        else:  # no summary: say so, not "capture captured"
            subject = f"[alertcap] Capture finished on {vm} (no summary)"
    rule = run.alert.alert_rule
    if rule:
        subject += f" (alert: {rule})"
    subject = subject.replace("\r", " ").replace("\n", " ")[:250]

    rows = _rows(run)
    warnings = list(run.warnings)
    inline = _timeline(stats)
    width = max(len(k) for k, _ in rows)
    # The answer first (verdict, findings, tables with their top rows), then the details.
    text = [subject, ""]
    if stats:
        text += [pcap.render_text(stats, rows=5), ""]
    slices = run.summary.slices if run.summary else ()
    if slices:
        text += ["Evidence (small pcaps of the findings' and top conversations' packets):"]
        text += [f"- {e.name}: {e.packets:,} packets  {e.link or e.url}" for e in slices] + [""]
    harvest = run.harvest if run.harvest and run.harvest.standby else None
    if harvest:  # standby: the ring's files from before the alert, each with its link
        text += [f"Before the alert (standby ring; ALERT AT {harvest.alert_time}, window "
                 f"{harvest.window_start} to {harvest.window_end}):"]
        text += [f"- closed {f.closed_at}: {f.size_bytes:,} bytes  {f.link or f.url}"
                 for f in harvest.files] or ["- no ring file covers the window"]
        text += [""]
    if warnings:
        text += ["Warnings:"] + [f"- {w}" for w in warnings] + [""]
    text += ["Details", "-------"] + [f"{k.ljust(width)}  {v}" for k, v in rows]

    cell = "padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"
    colour = "#b00020" if failed else "#1b5e20"
    html = [
        "<html><body style=\"font-family:Segoe UI,Arial,sans-serif;font-size:14px\">",
        f"<h2 style=\"color:{colour}\">{escape(subject)}</h2>",
    ]
    if stats:
        html.append(pcap.render_html(stats, image_cid=TIMELINE_CID if inline else None))
    if slices:
        html.append("<h3>Evidence</h3><ul>" + "".join(
            f"<li><a href=\"{escape(e.link or e.url, quote=True)}\">{escape(e.name)}.pcap</a>"
            f" ({e.packets:,} packets)</li>" for e in slices) + "</ul>")
    if harvest:
        html.append(
            f"<h3>Before the alert (standby ring)</h3><p><b>Alert at "
            f"{escape(str(harvest.alert_time))}</b>; window {escape(str(harvest.window_start))}"
            f" to {escape(str(harvest.window_end))}</p><ul>" + "".join(
                f"<li><a href=\"{escape(f.link or f.url, quote=True)}\">closed "
                f"{escape(f.closed_at)}</a> ({f.size_bytes:,} bytes)</li>"
                for f in harvest.files) + "</ul>")
    if warnings:
        html.append("<p><b>Warnings</b></p><ul>"
                    + "".join(f"<li>{escape(str(w))}</li>" for w in warnings) + "</ul>")
    html += ["<h3>Details</h3>", "<table style=\"border-collapse:collapse\">"]
    for k, v in rows:
        value = escape(v)
        if k == "Read link" or (k == "Status URL" and v.startswith("http")):
            value = f"<a href=\"{escape(v, quote=True)}\">{escape(v[:120])}</a>"
        html.append(f"<tr><th style=\"{cell}\">{escape(k)}</th>"
                    f"<td style=\"{cell}\">{value}</td></tr>")
    html.append("</table>")
    html.append("</body></html>")
    return Email(subject, "\n".join(text) + "\n", "\n".join(html), inline)


def _timeline(stats: dict[str, Any] | None) -> tuple[Inline, ...]:
    if not stats or not stats.get("timeline"):
        return ()
    return (Inline(TIMELINE_CID, "timeline.png", "image/png", pcap.timeline_png(stats)),)
