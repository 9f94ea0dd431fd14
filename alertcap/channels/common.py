"""What every channel says about a run, read once from the run output and tolerant of gaps.

Boundary: a pure view of an ``alertcap.run/1`` dict (the orchestration output) for the
renderers in this package. Every key may be missing or ``None`` (a failed run has no
summary; older runs have no findings), and nothing here raises on such a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("high", "medium", "low", "info")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Links:
    """Where a reader goes next. Either may be absent (no run page configured, no file).

    The capture link is sent as given: pass the expiring read-only link only to channels
    whose readers should be able to download the capture.
    """

    run_page: str | None = None
    capture: str | None = None


@dataclass(frozen=True)
class Finding:
    kind: str
    severity: str
    sentence: str
    hosts: list[str] = field(default_factory=list)
    ports: list[Any] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "sentence": self.sentence,
                "hosts": list(self.hosts), "ports": list(self.ports),
                "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Digest:
    """The facts a notification shows, already worded; see ``digest``."""

    vm: str
    vm_id: str | None
    outcome: str
    failed: bool
    headline: str
    reason: str | None
    alert_id: str | None
    alert_rule: str | None
    alert_severity: str | None
    fired_at: str | None
    instance_id: str | None
    capture_name: str | None
    started_at: str | None
    finished_at: str | None
    numbers: list[tuple[str, str]]
    findings: list[Finding]
    top_severity: str | None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _num(value: Any) -> float | None:
    # bool is an int subclass; a flag is not a number worth printing.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def count(value: Any) -> str:
    n = _num(value)
    if n is None:
        return "-"
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}".rstrip("0").rstrip(".")


def size(value: Any) -> str:
    n = _num(value)
    if n is None:
        return "-"
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"  # pragma: no cover - the loop always returns


def vm_name(run: dict[str, Any]) -> str:
    vm_id = _str(run.get("vm_id"))
    if vm_id:
        return vm_id.rstrip("/").rsplit("/", 1)[-1]
    return _str(run.get("instance_id")) or "unknown VM"


def findings(summary: dict[str, Any]) -> list[Finding]:
    """The summary's findings, high severity first (stable within a severity)."""
    raw = summary.get("findings")
    out: list[Finding] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        sentence = _str(item.get("sentence"))
        kind = _str(item.get("kind")) or "finding"
        if not sentence:
            sentence = kind.replace("_", " ").replace("-", " ")
        severity = str(item.get("severity") or "info").lower()
        if severity not in _RANK:
            severity = "info"
        hosts = item.get("hosts")
        ports = item.get("ports")
        evidence = item.get("evidence")
        out.append(Finding(
            kind=kind, severity=severity, sentence=sentence,
            hosts=[str(h) for h in hosts] if isinstance(hosts, list) else [],
            ports=list(ports) if isinstance(ports, list) else [],
            evidence=dict(evidence) if isinstance(evidence, dict) else {},
        ))
    return sorted(out, key=lambda f: _RANK[f.severity])


def _numbers(summary: dict[str, Any]) -> list[tuple[str, str]]:
    if not summary:
        return []
    tcp = _dict(summary.get("tcp"))
    rows = [("Packets", count(summary.get("packets"))),
            ("Bytes", size(summary.get("bytes")))]
    duration = _num(summary.get("duration_s"))
    if duration is not None:
        rows.append(("Duration", f"{duration:,.1f} s"))
    conn = _dict(tcp.get("new_connections_per_s"))
    if _num(conn.get("peak")) is not None:
        rows.append(("New TCP connections/s",
                     f"peak {count(conn.get('peak'))}, average {count(conn.get('average'))}"))
    if _num(tcp.get("retransmission_percent")) is not None:
        rows.append(("TCP retransmissions",
                     f"{count(tcp.get('retransmissions'))} "
                     f"({float(tcp['retransmission_percent']):.2f}%)"))
    talkers = summary.get("top_talkers")
    if isinstance(talkers, list) and talkers and isinstance(talkers[0], dict):
        top = talkers[0]
        rows.append(("Top talker", f"{top.get('host', '?')} ({size(top.get('bytes'))})"))
    return rows


def digest(run: dict[str, Any]) -> Digest:
    """Read a run output into the facts every channel shows."""
    run = _dict(run)
    alert = _dict(run.get("alert"))
    wrapper = _dict(run.get("summary"))
    summary = _dict(wrapper.get("summary"))
    capture = _dict(run.get("capture"))
    outcome = _str(run.get("outcome")) or "unknown"
    failed = outcome == "failed"
    vm = vm_name(run)
    found = findings(summary)
    reason = _str(run.get("reason"))
    if failed:
        headline = f"Capture failed on {vm}" + (f": {reason}" if reason else "")
    elif found:
        headline = f"{vm}: {found[0].sentence}"
    elif summary:
        headline = f"{count(summary.get('packets'))} packets captured on {vm}"
    else:
        headline = f"Capture {outcome} on {vm} (no traffic summary)"
    return Digest(
        vm=vm, vm_id=_str(run.get("vm_id")), outcome=outcome, failed=failed,
        headline=headline, reason=reason,
        alert_id=_str(alert.get("alert_id")), alert_rule=_str(alert.get("alert_rule")),
        alert_severity=_str(alert.get("severity")), fired_at=_str(alert.get("fired_at")),
        instance_id=_str(run.get("instance_id")), capture_name=_str(capture.get("name")),
        started_at=_str(run.get("started_at")), finished_at=_str(run.get("finished_at")),
        numbers=_numbers(summary), findings=found,
        top_severity=found[0].severity if found else None,
    )


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
