"""Slack: the run as Block Kit blocks for an incoming webhook.

Boundary: builds the JSON body POSTed to ``https://hooks.slack.com/services/T…/B…/…``; it
does not send it. Blocks are built with ``slack_sdk.models.blocks`` rather than by hand:
``to_dict()`` runs the SDK's validators (header 150 characters, section text 3,000,
ten fields, button text 75, URL 3,000), so a run with a huge alert name fails here, in a
test, instead of as Slack's ``invalid_blocks`` at 3 a.m. Measured cost: slack_sdk is pure
Python with no dependencies, 3.9 MB installed, ~50 ms to import on top of the app's own
imports; it is imported on first use so runs without Slack never pay it.

Top-level ``text`` is the notification and screen-reader fallback Slack asks for whenever
``blocks`` are sent (docs.slack.dev, "Sending messages using incoming webhooks" and
chat.postMessage "text" argument). Text from the alert or capture is escaped the way
Slack's "Formatting text for app surfaces" page says: ``&``, ``<`` and ``>`` only.
"""

from __future__ import annotations

from typing import Any

from alertcap.channels.common import Digest, Finding, Links, digest, truncate

MAX_FINDINGS = 10
_EMOJI = {"high": ":red_circle:", "medium": ":large_orange_circle:",
          "low": ":large_yellow_circle:", "info": ":white_circle:"}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finding_text(f: Finding) -> str:
    text = f"{_EMOJI[f.severity]} *{f.severity.upper()}* {escape(f.sentence)}"
    extra = []
    if f.hosts:
        extra.append("hosts " + ", ".join(escape(h) for h in f.hosts[:5])
                     + (" …" if len(f.hosts) > 5 else ""))
    if f.ports:
        extra.append("ports " + ", ".join(str(p) for p in f.ports[:8])
                     + (" …" if len(f.ports) > 8 else ""))
    if extra:
        text += "\n_" + "; ".join(extra) + "_"
    return truncate(text, 3000)


def _fields(d: Digest) -> list[str]:
    rows: list[tuple[str, str | None]] = [
        ("VM", d.vm),
        ("Outcome", d.outcome + (f" ({d.reason})" if d.reason and not d.failed else "")),
        ("Alert", d.alert_rule), ("Alert severity", d.alert_severity),
        *d.numbers,
    ]
    # A section holds at most ten fields, each at most 2,000 characters.
    return [truncate(f"*{k}*\n{escape(v)}", 2000) for k, v in rows if v][:10]


def render(run: dict[str, Any], links: Links) -> dict[str, Any]:
    """The incoming-webhook body: ``{"text": fallback, "blocks": [...]}``."""
    from slack_sdk.models.blocks import (
        ActionsBlock,
        Block,
        ButtonElement,
        ContextBlock,
        DividerBlock,
        HeaderBlock,
        MarkdownTextObject,
        PlainTextObject,
        SectionBlock,
    )

    d = digest(run)
    title = ("FAILED: " if d.failed else "") + d.headline
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=truncate(title, 150), emoji=True)),
        SectionBlock(fields=[MarkdownTextObject(text=t) for t in _fields(d)]),
    ]
    if d.failed and d.reason:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=truncate(f"*Why:* {escape(d.reason)}", 3000))))
    if d.findings:
        blocks.append(DividerBlock())
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=f"*Findings ({len(d.findings)})*")))
        blocks.extend(SectionBlock(text=MarkdownTextObject(text=_finding_text(f)))
                      for f in d.findings[:MAX_FINDINGS])
        if len(d.findings) > MAX_FINDINGS:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(
                text=f"and {len(d.findings) - MAX_FINDINGS} more on the run page")]))
    elif not d.failed:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text="No findings: nothing in the capture stood out.")]))
    buttons = []
    if links.run_page:
        buttons.append(ButtonElement(text="Open run", url=links.run_page,
                                     action_id="alertcap-open-run"))
    if links.capture:
        buttons.append(ButtonElement(text="Download capture", url=links.capture,
                                     action_id="alertcap-download-capture"))
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    context = " · ".join(x for x in (d.instance_id, d.fired_at and f"fired {d.fired_at}",
                                     d.finished_at and f"finished {d.finished_at}") if x)
    if context:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=escape(context))]))
    return {"text": truncate(f"[alertcap] {title}", 3000),
            "blocks": [b.to_dict() for b in blocks]}
