"""What each real service refuses, as pure checks the local receiver runs before accepting.

Boundary: no I/O. Each ``check_*`` takes the parsed request and returns the HTTP answer
the real service gives (status, body, content type), or ``None`` when it would accept.
The rules and their sources:

- PagerDuty Events API v2 (developer-docs, docs/events-API-v2/02-Trigger-Events.md and
  01-Overview.md): 202 ``{"status": "success", "message": "Event processed",
  "dedup_key"}``; 400 ``{"status": "invalid event", "message": "Event object is invalid",
  "errors": [...]}``; payloads up to 512 KB.
- Slack incoming webhooks (Slack changelog 2016-05-17 "Improving error conditions for
  Incoming Webhooks", and docs.slack.dev "Sending messages using incoming webhooks"):
  200 ``ok``; plain-text error bodies ``invalid_payload`` / ``no_text`` /
  ``invalid_blocks`` (400), ``no_service`` (404). Blocks are checked with slack_sdk's own
  models: an unknown block type, a block that does not survive the models' round trip
  (unknown attributes), or a failed length validator is ``invalid_blocks``; a message
  holds at most 50 blocks.
- Teams Workflows trigger (Logic Apps request trigger underneath): 202 with no body;
  errors ``{"error": {"code", "message"}}`` with 401 ``DirectApiAuthorizationRequired`` /
  ``DirectApiInvalidAuthorizationSignature`` for the SAS query, 400
  ``TriggerInputSchemaMismatch`` for a body that is not the Adaptive Card message
  envelope. Teams messages are limited to about 28 KB, beyond which posting fails with
  "Request Entity too large" (Microsoft Learn, Connectors > Microsoft Teams, "Known
  issues and limitations"; add-incoming-webhook.md says the same) and render
  Adaptive Cards up to 1.5 (cards-reference.md). The real service answers 202 first and
  fails the flow run later; the local receiver refuses at once so the sender's tests see it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_MAX_BYTES = 512 * 1024
SLACK_MAX_BLOCKS = 50
TEAMS_MAX_BYTES = 28 * 1024
TEAMS_MAX_VERSION = (1, 5)
ADAPTIVE = "application/vnd.microsoft.card.adaptive"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"

    @staticmethod
    def json(status: int, doc: Any) -> Answer:
        return Answer(status, json.dumps(doc).encode())

    @staticmethod
    def text(status: int, text: str) -> Answer:
        return Answer(status, text.encode(), "text/html")


# ---------------------------------------------------------------- PagerDuty Events v2


def pd_invalid(errors: list[str]) -> Answer:
    return Answer.json(400, {"status": "invalid event", "message": "Event object is invalid",
                             "errors": errors})


def _iso8601(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_pagerduty(raw: bytes, routing_keys: frozenset[str] | None) -> tuple[Answer | None,
                                                                           dict[str, Any]]:
    """(None, event) when PagerDuty would accept; (400 answer, {}) otherwise."""
    if len(raw) > PD_MAX_BYTES:
        return pd_invalid([f"Event object is larger than {PD_MAX_BYTES} bytes"]), {}
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return pd_invalid(["Could not parse the request body as JSON"]), {}
    if not isinstance(event, dict):
        return pd_invalid(["Event object must be a JSON object"]), {}
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    elif routing_keys is not None and key not in routing_keys:
        errors.append("Invalid routing key")
    action = event.get("event_action")
    if action not in PD_ACTIONS:
        errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        errors += _pd_payload(event.get("payload"))
    for i, link in enumerate(_list(event, "links", errors)):
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            errors.append(f"'links[{i}].href' is required")
    for i, image in enumerate(_list(event, "images", errors)):
        if not isinstance(image, dict) or not isinstance(image.get("src"), str):
            errors.append(f"'images[{i}].src' is required")
        elif not image["src"].startswith("https://"):
            errors.append(f"'images[{i}].src' must be served via HTTPS")
    return (pd_invalid(errors), {}) if errors else (None, event)


def _list(event: dict[str, Any], name: str, errors: list[str]) -> list[Any]:
    value = event.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        errors.append(f"'{name}' must be an array")
        return []
    return value


def _pd_payload(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        errors.append("'payload.summary' is longer than 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in PD_SEVERITIES:
        errors.append("'payload.severity' is invalid (must be one of critical, error, "
                      "warning, info)")
    ts = payload.get("timestamp")
    if ts is not None and (not isinstance(ts, str) or not _iso8601(ts)):
        errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict | list | str | int | float):
        errors.append("'payload.custom_details' is invalid")
    for name in ("component", "group", "class"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    return errors


# ---------------------------------------------------------------- Slack incoming webhooks

SLACK_PATH = re.compile(r"^T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{24}$")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def slack_block_errors(blocks: Any) -> list[str]:
    """Problems slack_sdk's Block Kit models find in ``blocks`` (empty when valid)."""
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    if len(blocks) > SLACK_MAX_BLOCKS:
        return [f"no more than {SLACK_MAX_BLOCKS} blocks are allowed"]
    errors: list[str] = []
    # The SDK reports unknown types and attributes as warnings on its loggers and drops
    # them; Slack itself refuses such blocks, so a warning here is a failure.
    collect = _Collect()
    root = logging.getLogger("slack_sdk.models")
    root.addHandler(collect)
    try:
        for i, raw in enumerate(blocks):
            if not isinstance(raw, dict):
                errors.append(f"blocks[{i}] is not an object")
                continue
            try:
                block = Block.parse(raw)
                if block is None:
                    errors.append(f"blocks[{i}]: unknown block type {raw.get('type')!r}")
                    continue
                # The SDK drops attributes it does not know (with a debug log); Slack
                # refuses them. A block that does not survive the round trip is refused.
                if block.to_dict() != raw:
                    errors.append(f"blocks[{i}]: attributes slack_sdk does not know: "
                                  f"{sorted(set(raw) - set(block.to_dict()))}")
            except (SlackObjectFormationError, TypeError, ValueError, KeyError) as exc:
                errors.append(f"blocks[{i}]: {exc}")
    finally:
        root.removeHandler(collect)
    errors += collect.messages
    return errors


def check_slack(path_tail: str, raw: bytes, content_type: str) -> tuple[Answer | None,
                                                                      dict[str, Any]]:
    if not SLACK_PATH.match(path_tail):
        return Answer.text(404, "no_service"), {}
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qs
            doc = json.loads(parse_qs(raw.decode()).get("payload", [""])[0])
        else:
            doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Answer.text(400, "invalid_payload"), {}
    if not isinstance(doc, dict):
        return Answer.text(400, "invalid_payload"), {}
    if not doc.get("text") and not doc.get("blocks") and not doc.get("attachments"):
        return Answer.text(400, "no_text"), {}
    if "blocks" in doc and slack_block_errors(doc["blocks"]):
        return Answer.text(400, "invalid_blocks"), {}
    return None, doc


# ---------------------------------------------------------------- Teams Workflows


def teams_error(status: int, code: str, message: str) -> Answer:
    return Answer.json(status, {"error": {"code": code, "message": message}})


def _version(text: Any) -> tuple[int, int] | None:
    m = re.fullmatch(r"(\d+)\.(\d+)", str(text or ""))
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_teams_envelope(raw: bytes) -> tuple[Answer | None, list[dict[str, Any]]]:
    """(None, cards) for a Workflows message envelope of Adaptive Cards."""
    if len(raw) > TEAMS_MAX_BYTES:
        return teams_error(413, "RequestEntityTooLarge",
                           f"The message is {len(raw)} bytes; Teams takes about "
                           f"{TEAMS_MAX_BYTES} bytes."), []
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return teams_error(400, "InvalidRequestContent",
                           "The request content is not valid JSON."), []

    def mismatch(why: str) -> tuple[Answer, list[dict[str, Any]]]:
        return teams_error(400, "TriggerInputSchemaMismatch",
                           f"The input body for trigger 'manual' of type 'Request' did not "
                           f"match its schema definition: {why}"), []

    if not isinstance(doc, dict) or doc.get("type") != "message":
        return mismatch("'type' must be 'message' (MessageCard payloads are not accepted)")
    attachments = doc.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return mismatch("'attachments' must be a non-empty array")
    cards = []
    for i, att in enumerate(attachments):
        if not isinstance(att, dict) or att.get("contentType") != ADAPTIVE:
            return mismatch(f"attachments[{i}].contentType must be '{ADAPTIVE}'")
        card = att.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return mismatch(f"attachments[{i}].content must be an AdaptiveCard")
        version = _version(card.get("version"))
        if version is None:
            return mismatch(f"attachments[{i}].content.version is missing or malformed")
        if version > TEAMS_MAX_VERSION:
            return teams_error(400, "UnsupportedCardVersion",
                               f"Adaptive Card version {card['version']} is newer than the "
                               "1.5 that Teams renders."), []
        width = (card.get("msteams") or {}).get("width") if isinstance(
            card.get("msteams"), dict) else None
        if width is not None and width != "Full":
            return mismatch(f"attachments[{i}].content.msteams.width must be 'Full'")
        cards.append(card)
    return None, cards
