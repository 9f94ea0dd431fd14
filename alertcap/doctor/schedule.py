"""The scheduled doctor's memory: notify each distinct problem once, and once more when it
is resolved, instead of every run.

The problems last notified are a JSON document in one blob (`checks.state_blob_url`:
ALERTCAP_DOCTOR_STATE_BLOB, or locally a blob beside the captures in Azurite), keyed by
each problem's fingerprint (check, subject, problem code: not its wording). A run compares
its problems with that set: new fingerprints and gone ones make one email (through
ACS, as a failed run's email goes); nothing new and nothing gone sends nothing. The state
is written only after the email went out, so a failed send is retried by the next run.

Boundary: `plan` is pure; `load_state`, `save_state` and `send` do the I/O through the
app's `Clients` (blob and email clients), so tests hand in fakes.
"""

from __future__ import annotations

import html
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from alertcap.doctor.checks import scrub, state_blob_url
from alertcap.doctor.model import FAIL, Check, Report
from alertcap.sdk.clients import Clients, parse_connection_string
from alertcap.sdk.errors import from_azure

log = logging.getLogger("alertcap.doctor")
STATE_SCHEMA = "alertcap.doctor-state/1"
_NAMESPACE = uuid.UUID("0b5e3d5c-6a4e-4f43-9a57-1d2f0c9e7a31")


@dataclass(frozen=True)
class Plan:
    new: tuple[Check, ...]
    resolved: tuple[dict[str, Any], ...]
    state: dict[str, dict[str, Any]]  # what to remember after notifying

    @property
    def changed(self) -> bool:
        return bool(self.new or self.resolved)


def _entry(c: Check) -> dict[str, Any]:
    return {"check": c.name, "subject": c.subject, "status": c.status, "code": c.code,
            "message": c.message, "fix": c.fix, "fingerprint": c.fingerprint}


def plan(previous: dict[str, dict[str, Any]], report: Report) -> Plan:
    """Failed checks are notified (warnings are shown by the doctor, not emailed)."""
    current = {c.fingerprint: c for c in report.checks if c.status == FAIL}
    new = tuple(c for fp, c in current.items() if fp not in previous)
    resolved = tuple(previous[fp] for fp in previous if fp not in current)
    return Plan(new, resolved, {fp: _entry(c) for fp, c in current.items()})


def render(p: Plan, report: Report, stateless: bool) -> tuple[str, str, str]:
    """(subject, text, html) of the notification."""
    parts = []
    if p.new:
        parts.append(f"{len(p.new)} new problem(s)")
    if p.resolved:
        parts.append(f"{len(p.resolved)} resolved")
    subject = "[alertcap] doctor: " + ", ".join(parts)
    text = ["The alertcap doctor checked what a capture run needs."]
    if p.new:
        text += ["", "New problems (a capture would fail until fixed):"]
        for c in p.new:
            text += [f"- [{c.name}] {c.subject}", f"  {c.message}"]
            text += [f"  fix: {line}" for line in (c.fix or "").splitlines()]
    if p.resolved:
        text += ["", "Resolved:"]
        text += [f"- [{r.get('check')}] {r.get('subject')}: {r.get('message')}"
                 for r in p.resolved]
    still = len(p.state) - len(p.new)
    if still:
        text += ["", f"{still} problem(s) notified before are still open."]
    if stateless:
        text += ["", "ALERTCAP_DOCTOR_STATE_BLOB is not set: every run repeats this email."]
    body = scrub("\n".join(text)) + "\n"
    markup = f"<pre>{html.escape(body)}</pre>"
    return subject, body, markup


def _blob_name_parts(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    path = parts.path.lstrip("/").split("/")
    # Azurite (and the local stack) put the account in the path: http://host/account/c/b
    offset = 1 if parts.hostname in ("127.0.0.1", "localhost") else 0
    return f"{parts.scheme}://{parts.netloc}" + ("/" + path[0] if offset else ""), \
        path[offset]


def load_state(clients: Clients, url: str) -> tuple[dict[str, dict[str, Any]], str]:
    """(problems last notified, the state's version: when it was written, "" if never)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        raw = clients.blob(url).download_blob().readall()
    except ResourceNotFoundError:
        return {}, ""  # first run, or the container is not there yet
    except Exception as exc:
        raise from_azure(exc, "read the doctor's state blob") from exc
    try:
        doc = json.loads(raw)
    except ValueError:
        log.warning("doctor state blob is not JSON; starting afresh")
        return {}, ""
    if not isinstance(doc, dict) or not isinstance(doc.get("problems"), dict):
        return {}, ""
    problems = {str(k): v for k, v in doc["problems"].items() if isinstance(v, dict)}
    return problems, str(doc.get("updated") or "")


def save_state(clients: Clients, url: str, state: dict[str, dict[str, Any]]) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    data = json.dumps({"schema": STATE_SCHEMA, "updated": datetime.now(UTC).isoformat(),
                       "problems": state}, indent=1).encode()
    try:
        clients.blob(url).upload_blob(data, overwrite=True)
        return
    except ResourceNotFoundError:
        pass  # the container does not exist yet: make it once, then write
    except Exception as exc:
        raise from_azure(exc, "write the doctor's state blob") from exc
    origin, container = _blob_name_parts(url)
    conn = clients.settings.blob_connection_string
    credential: Any = clients.credential
    if conn:
        keys = parse_connection_string(conn)
        credential = {"account_name": keys.get("accountname", ""),
                      "account_key": keys.get("accountkey", "")}
    service = BlobServiceClient(origin, credential=credential)
    try:
        service.create_container(container)
    except Exception as exc:
        error = from_azure(exc, "create the doctor's state container")
        if getattr(exc, "error_code", None) != "ContainerAlreadyExists":
            raise error from exc
    try:
        clients.blob(url).upload_blob(data, overwrite=True)
    except Exception as exc:
        raise from_azure(exc, "write the doctor's state blob") from exc


def send(clients: Clients, subject: str, text: str, markup: str, key: str) -> str:
    s = clients.settings
    message = {
        "senderAddress": s.email_sender,
        "recipients": {"to": [{"address": r} for r in s.email_recipients]},
        "content": {"subject": subject, "plainText": text, "html": markup},
        "headers": {"x-alertcap-doctor": key},
    }
    try:
        # A re-run with the same problems asks ACS for the same operation, not a 2nd email.
        operation_id = str(uuid.uuid5(_NAMESPACE, key))
        result = clients.email().begin_send(message, operation_id=operation_id,
                                            polling_interval=s.lro_polling_seconds).result()
    except Exception as exc:
        raise from_azure(exc, "send the doctor's email") from exc
    status = str(result.get("status", "Unknown")) if isinstance(result, dict) else "Unknown"
    if status.lower() != "succeeded":
        raise from_azure(RuntimeError(f"email operation ended {status}"), "send the email")
    return status


@dataclass(frozen=True)
class Outcome:
    new: int
    resolved: int
    open: int
    notified: bool
    reason: str


def notify_changes(clients: Clients, report: Report) -> Outcome:
    """Email the problems that are new since the last notification, and the ones gone."""
    s = clients.settings
    url = state_blob_url(s)
    previous, version = load_state(clients, url) if url else ({}, "")
    p = plan(previous, report)
    if not p.changed:
        return Outcome(0, 0, len(p.state), False, "nothing new")
    if not (s.email_sender and s.email_recipients):
        # Keep the state unchanged: once email is configured the problems are sent.
        return Outcome(len(p.new), len(p.resolved), len(p.state), False,
                       "email not configured")
    subject, text, markup = render(p, report, stateless=url is None)
    # The transition from this state version to these problems: a run repeated after a
    # failed state write is the same ACS operation; the same problems coming back after
    # a later state are a new email.
    key = f"doctor:{version or datetime.now(UTC).isoformat()}:" + ",".join(sorted(p.state))
    send(clients, subject, text, markup, key)
    if url:
        save_state(clients, url, p.state)
    return Outcome(len(p.new), len(p.resolved), len(p.state), True, subject)
