"""Microsoft Teams: the run as an Adaptive Card for a Workflows webhook.

Boundary: builds the JSON body POSTed to a Teams Workflows trigger ("When a Teams webhook
request is received"); it does not send it. Office 365 connectors (MessageCard) are being
retired, and the Workflows trigger takes Adaptive Cards only, in the Bot Framework
message envelope: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}`` (Microsoft Learn,
"Create incoming webhooks with Workflows for Microsoft Teams").

Card version 1.5: "Teams platform supports v1.5 or earlier of Adaptive Card features"
(msteams-docs, task-modules-and-cards/cards/cards-reference.md). The card uses only 1.0 to
1.3 elements (TextBlock, FactSet, Container, ColumnSet, Action.OpenUrl) so a client
that renders less still shows everything. ``msteams.width = "Full"`` widens it in channels
(cards-format.md, "Full width Adaptive Card"). Teams renders a subset of Markdown in
TextBlock and Fact values, so text from the alert or capture is escaped.
"""

from __future__ import annotations

import re
from typing import Any

from alertcap.channels.common import Digest, Finding, Links, digest, truncate

CARD_VERSION = "1.5"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
MAX_FINDINGS = 10

# Adaptive Card TextBlock colours; "attention" is red, "warning" amber in every host config.
_COLOUR = {"high": "Attention", "medium": "Warning", "low": "Default", "info": "Default"}
_MARKDOWN = re.compile(r"([\\`*_\[\]()#>~|])")


def escape(text: str) -> str:
    """Text shown literally by Teams' Markdown (alert names may contain ``*`` or ``[x](y)``)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": escape(text), "wrap": True, **style}


def _facts(d: Digest) -> list[dict[str, str]]:
    rows: list[tuple[str, str | None]] = [
        ("VM", d.vm),
        ("Outcome", d.outcome + (f" ({d.reason})" if d.reason and not d.failed else "")),
        ("Alert", d.alert_rule),
        ("Alert severity", d.alert_severity),
        ("Fired", d.fired_at),
        ("Capture", d.capture_name),
        *d.numbers,
        ("Run", d.instance_id),
    ]
    return [{"title": escape(k), "value": escape(v)} for k, v in rows if v]


def _finding(f: Finding) -> dict[str, Any]:
    detail = []
    if f.hosts:
        detail.append("hosts " + ", ".join(f.hosts[:5]) + (" …" if len(f.hosts) > 5 else ""))
    if f.ports:
        detail.append("ports " + ", ".join(str(p) for p in f.ports[:8])
                      + (" …" if len(f.ports) > 8 else ""))
    items: list[dict[str, Any]] = [
        {"type": "ColumnSet", "columns": [
            {"type": "Column", "width": "auto", "items": [
                _text(f.severity.upper(), weight="Bolder", color=_COLOUR[f.severity])]},
            {"type": "Column", "width": "stretch", "items": [_text(f.sentence)]},
        ]},
    ]
    if detail:
        items.append(_text("; ".join(detail), isSubtle=True, spacing="None", size="Small"))
    return {"type": "Container", "items": items, "spacing": "Small"}


def card(run: dict[str, Any], links: Links) -> dict[str, Any]:
    """The Adaptive Card alone (what the receiver renders)."""
    d = digest(run)
    colour = "Attention" if d.failed else _COLOUR.get(d.top_severity or "info", "Default")
    body: list[dict[str, Any]] = [
        _text("alertcap · packet capture", size="Small", isSubtle=True),
        _text(truncate(d.headline, 400), size="Large", weight="Bolder", color=colour),
        {"type": "FactSet", "facts": _facts(d)},
    ]
    if d.failed and d.reason:
        body.append(_text(f"Why: {truncate(d.reason, 1000)}", color="Attention"))
    if d.findings:
        body.append(_text(f"Findings ({len(d.findings)})", weight="Bolder",
                          separator=True, spacing="Medium"))
        body.extend(_finding(f) for f in d.findings[:MAX_FINDINGS])
        if len(d.findings) > MAX_FINDINGS:
            body.append(_text(f"and {len(d.findings) - MAX_FINDINGS} more on the run page",
                              isSubtle=True))
    elif not d.failed:
        body.append(_text("No findings: nothing in the capture stood out.", isSubtle=True))
    actions = []
    if links.run_page:
        actions.append({"type": "Action.OpenUrl", "title": "Open run", "url": links.run_page})
    if links.capture:
        actions.append({"type": "Action.OpenUrl", "title": "Download capture",
                        "url": links.capture})
    content: dict[str, Any] = {
        "type": "AdaptiveCard", "$schema": SCHEMA, "version": CARD_VERSION,
        "msteams": {"width": "Full"}, "body": body,
    }
    if actions:
        content["actions"] = actions
    return content


def render(run: dict[str, Any], links: Links) -> dict[str, Any]:
    """The Workflows webhook body: one Adaptive Card attachment in a message envelope."""
    return {"type": "message", "attachments": [
        {"contentType": CONTENT_TYPE, "contentUrl": None, "content": card(run, links)}]}
