"""The doctor's results: one `Check` per thing looked at, a `Report` of them, and their
two renderings (JSON for scripts, a text table for people).

Boundary: pure data and formatting, no I/O. A check's `fingerprint` names the *problem*
(check, subject, problem code), not its wording, so a message that carries a changing
number (sessions in use) is still the same problem for the scheduled notification.
"""

from __future__ import annotations

import hashlib
import textwrap
from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"
_ORDER = {FAIL: 0, WARN: 1, OK: 2}
SCHEMA = "alertcap.doctor/1"


@dataclass(frozen=True)
class Check:
    name: str  # what kind of check: "watcher", "agent", "storage", "permissions", ...
    subject: str  # what it is about: a resource id, a region, a setting name
    status: str  # ok | warn | fail
    message: str
    fix: str | None = None  # the exact command or setting change, for warn/fail
    code: str = ""  # the problem, stable across runs ("" when ok)

    @property
    def fingerprint(self) -> str:
        key = "|".join((self.name, self.subject.lower(), self.code or self.status))
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"check": self.name, "subject": self.subject,
                                "status": self.status, "message": self.message}
        if self.status != OK:
            body["fix"] = self.fix
            body["code"] = self.code
            body["fingerprint"] = self.fingerprint
        return body


def ok(name: str, subject: str, message: str) -> Check:
    return Check(name, subject, OK, message)


def warn(name: str, subject: str, code: str, message: str, fix: str | None) -> Check:
    return Check(name, subject, WARN, message, fix, code)


def fail(name: str, subject: str, code: str, message: str, fix: str | None) -> Check:
    return Check(name, subject, FAIL, message, fix, code)


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    targets: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)

    @property
    def problems(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status != OK)

    @property
    def healthy(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in (OK, WARN, FAIL)}

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "ok": self.healthy, "counts": self.counts(),
                "targets": list(self.targets),
                "checks": [c.to_json() for c in sorted(self.checks, key=_sort_key)]}


def _sort_key(c: Check) -> tuple[int, str, str]:
    return (_ORDER.get(c.status, 3), c.name, c.subject.lower())


def short(subject: str) -> str:
    """An ARM id as people read it: the last type/name pairs, not the subscription."""
    parts = subject.strip("/").split("/")
    if len(parts) >= 4 and parts[0].lower() == "subscriptions":
        if len(parts) >= 8:
            return "/".join((parts[3], *parts[-1:]))  # resource group / name
        return parts[3] if len(parts) >= 4 else subject
    return subject


def render_text(report: Report, width: int = 100) -> str:
    """A readable table: status, check, subject, message; each problem's fix under it."""
    rows = sorted(report.checks, key=_sort_key)
    name_w = max([len(c.name) for c in rows] + [5])
    subj_w = min(max([len(short(c.subject)) for c in rows] + [7]), 36)
    lines = [f"{'STATUS':6}  {'CHECK':{name_w}}  {'SUBJECT':{subj_w}}  MESSAGE"]
    indent = 6 + 2 + name_w + 2 + subj_w + 2
    for c in rows:
        subject = short(c.subject)
        if len(subject) > subj_w:
            subject = "…" + subject[-(subj_w - 1):]
        msg = textwrap.wrap(c.message, max(width - indent, 30)) or [""]
        lines.append(f"{c.status.upper():6}  {c.name:{name_w}}  {subject:{subj_w}}  {msg[0]}")
        lines.extend(" " * indent + m for m in msg[1:])
        if c.status != OK and c.fix:
            for i, f in enumerate(c.fix.splitlines()):
                lines.append(" " * indent + ("fix: " if i == 0 else "     ") + f)
    n = report.counts()
    verdict = ("all is well" if not report.problems else
               "problems found" if report.failures else "warnings only")
    lines.append("")
    lines.append(f"{n[OK]} ok, {n[WARN]} warning(s), {n[FAIL]} failed: {verdict}")
    lines.extend(report.notes)
    return "\n".join(lines) + "\n"
