"""PagerDuty: Events API v2 ``trigger`` for a finished run, ``resolve`` for a resolved alert.

Boundary: builds the JSON body POSTed to ``https://events.pagerduty.com/v2/enqueue``; it
does not send it. Rules from PagerDuty's "Send an Alert Event" page
(developer-docs, docs/events-API-v2/02-Trigger-Events.md): ``routing_key`` is the
32-character integration key; ``event_action`` is trigger, acknowledge or resolve;
``dedup_key`` at most 255 characters; ``payload.summary`` (at most 1,024 characters),
``payload.source`` and ``payload.severity`` (critical, error, warning, info) are required
for a trigger; ``links`` are ``{href, text}``.

Hand-built dicts, not PagerDuty's ``pagerduty`` client: that client is a sender (it posts
in ``send_event``, so it cannot be a pure renderer), and measured here it brings httpx2,
httpcore2, h11, truststore and anyio (3.7 MB) and ~40 ms of import on top of the app's own
imports, to post one JSON document the app can post with the client it already has. The
tests send these bodies through that client against the local receiver instead, so
PagerDuty's own code checks they are what it would send.

One PagerDuty alert per Azure Monitor alert: ``dedup_key`` derives from the alert id (the
same id arrives in the alert's Resolved notification), so each VM run of a multi-VM alert
adds a trigger log entry to that alert and the Resolved notification closes it. A manual
run has no alert; its key derives from the instance id and nothing resolves it but a person.
"""

from __future__ import annotations

import hashlib
from typing import Any

from alertcap.channels.common import Digest, Links, digest, truncate

MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
SEVERITIES = ("critical", "error", "warning", "info")

# Azure Monitor alert severities (Sev0 critical ... Sev4 verbose) onto PagerDuty's four.
_SEVERITY = {"sev0": "critical", "sev1": "error", "sev2": "warning", "sev3": "info",
             "sev4": "info"}


def severity(alert_severity: str | None, *, failed: bool = False) -> str:
    """PagerDuty severity for an Azure alert severity; unknown or absent is ``warning``.

    A run that failed to capture is at least ``error``: the evidence the alert asked for
    is missing and someone has to look now.
    """
    mapped = _SEVERITY.get((alert_severity or "").strip().lower(), "warning")
    if failed and SEVERITIES.index(mapped) > SEVERITIES.index("error"):
        return "error"
    return mapped


def dedup_key(*, alert_id: str | None = None, instance_id: str | None = None) -> str:
    """Stable key: the same Azure alert always maps to the same PagerDuty alert.

    ARM ids compare case-insensitively, so the id is lower-cased before hashing; the hash
    keeps the key far below 255 characters whatever the id's length.
    """
    if alert_id:
        digest_ = hashlib.sha256(alert_id.strip().lower().encode()).hexdigest()
        return "alertcap-alert-" + digest_[:40]
    if instance_id:
        return "alertcap-run-" + hashlib.sha256(instance_id.encode()).hexdigest()[:40]
    raise ValueError("a dedup key needs an alert id or an instance id")


def _summary(d: Digest) -> str:
    parts = [f"[alertcap] {d.headline}"]
    if d.alert_rule:
        parts.append(f"(alert: {d.alert_rule})")
    return truncate(" ".join(parts), MAX_SUMMARY)


def _resource_group(vm_id: str | None) -> str | None:
    parts = (vm_id or "").strip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        return parts[i + 1] if i + 1 < len(parts) else None
    return None


def render(run: dict[str, Any], links: Links, *, routing_key: str) -> dict[str, Any]:
    """The ``trigger`` event for a run that has its result (captured or failed)."""
    d = digest(run)
    details: dict[str, Any] = {
        "outcome": d.outcome, "reason": d.reason, "vm_id": d.vm_id,
        "alert_rule": d.alert_rule, "alert_severity": d.alert_severity,
        "alert_id": d.alert_id, "fired_at": d.fired_at, "instance_id": d.instance_id,
        "capture": d.capture_name, "finished_at": d.finished_at,
        "numbers": dict(d.numbers),
        "findings": [f.as_dict() for f in d.findings],
    }
    payload: dict[str, Any] = {
        "summary": _summary(d),
        "source": d.vm_id or d.vm,
        "severity": severity(d.alert_severity, failed=d.failed),
        "component": "network",
        "class": "capture-failed" if d.failed else (
            d.findings[0].kind if d.findings else "packet-capture"),
        "custom_details": {k: v for k, v in details.items() if v not in (None, [], {})},
    }
    if d.finished_at:
        payload["timestamp"] = d.finished_at
    group = _resource_group(d.vm_id)
    if group:
        payload["group"] = group
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert_id=d.alert_id, instance_id=d.instance_id or d.vm),
        "payload": payload,
        "client": "alertcap",
    }
    event_links = [{"href": href, "text": text} for href, text in (
        (links.run_page, "Run page"), (links.capture, "Capture file")) if href]
    if event_links:
        event["links"] = event_links
    if links.run_page:
        event["client_url"] = links.run_page
    return event


def render_resolve(alert_id: str, *, routing_key: str) -> dict[str, Any]:
    """The ``resolve`` event for an Azure Monitor alert's Resolved notification."""
    return {"routing_key": routing_key, "event_action": "resolve",
            "dedup_key": dedup_key(alert_id=alert_id)}
