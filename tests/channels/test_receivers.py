"""The local receivers accept what the real services accept and refuse what they refuse,
driven by the renderers' output and, where the vendor ships one, the vendor's own client."""

from __future__ import annotations

import copy
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pagerduty as pd_client
import pytest
import requests
from slack_sdk.webhook import WebhookClient

from alertcap.channels import pagerduty, slack, teams, webhook
from tests.channels.conftest import PD_KEY, WEBHOOK_SECRET
from tests.channels.runs import ALERT_ID, CAPTURED, FAILED, LINKS, NO_SUMMARY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def deliveries(rx: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    r = rx["http"].get(f"{rx['base']}/_localdev/deliveries", params={"channel": channel},
                     timeout=5)
    r.raise_for_status()
    return r.json()["deliveries"]


# ------------------------------------------------------------------ Teams


@pytest.mark.parametrize("run", [CAPTURED, FAILED, NO_SUMMARY], ids=["captured", "failed",
                                                                     "no-summary"])
def test_teams_card_renders_in_microsofts_renderer_with_no_warnings(rx: dict[str, Any],
                                                                   run: dict[str, Any]) -> None:
    r = rx["http"].post(rx["teams_url"], json=teams.render(run, LINKS), timeout=60)
    assert r.status_code == 202, r.text  # the Workflows trigger answers 202 Accepted
    (rec,) = deliveries(rx, "teams")
    assert rec["accepted"] and "?" not in rec["path"]  # the SAS sig is not listed
    png = rec["png"][0]
    data = Path(png).read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 5_000
    shown = rec["rendered_text"][0]
    assert "vm1" in shown and ("Open run" in shown)
    stored = json.loads(Path(rec["file"]).read_text())
    assert stored["body"]["attachments"][0]["content"]["version"] == "1.5"


def test_teams_markdown_in_an_alert_name_renders_as_literal_text(rx: dict[str, Any]) -> None:
    run = copy.deepcopy(CAPTURED)
    run["alert"]["alert_rule"] = "[click me](https://evil.example) **now**"
    r = rx["http"].post(rx["teams_url"], json=teams.render(run, LINKS), timeout=60)
    assert r.status_code == 202, r.text
    (rec,) = deliveries(rx, "teams")
    assert "[click me](https://evil.example) **now**" in rec["rendered_text"][0]
    assert rec["rendered_links"] == 0


def test_teams_refuses_a_retired_connector_messagecard(rx: dict[str, Any]) -> None:
    card = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "text": "x"}
    r = rx["http"].post(rx["teams_url"], json=card, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "TriggerInputSchemaMismatch"


def test_teams_refuses_a_card_microsofts_renderer_reports_problems_with(
        rx: dict[str, Any]) -> None:
    body = teams.render(CAPTURED, LINKS)
    body["attachments"][0]["content"]["body"].append({"type": "Chart.Bogus"})
    r = rx["http"].post(rx["teams_url"], json=body, timeout=60)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "InvalidAdaptiveCard" and "UnknownElementType" in err["message"]
    assert not any(d["accepted"] for d in deliveries(rx, "teams"))


def test_teams_refuses_newer_card_versions_and_oversize_messages(rx: dict[str, Any]) -> None:
    body = teams.render(CAPTURED, LINKS)
    newer = copy.deepcopy(body)
    newer["attachments"][0]["content"]["version"] = "1.6"
    r = rx["http"].post(rx["teams_url"], json=newer, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "UnsupportedCardVersion"
    big = copy.deepcopy(body)
    big["attachments"][0]["content"]["body"].append(
        {"type": "TextBlock", "text": "x" * 30_000})
    r = rx["http"].post(rx["teams_url"], json=big, timeout=10)
    assert r.status_code == 413 and r.json()["error"]["code"] == "RequestEntityTooLarge"


def test_teams_checks_the_workflow_urls_signature(rx: dict[str, Any]) -> None:
    body = teams.render(CAPTURED, LINKS)
    forged = rx["teams_url"].replace("sig=", "sig=x")
    r = rx["http"].post(forged, json=body, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "DirectApiInvalidAuthorizationSignature"
    unsigned = rx["teams_url"].split("&sp=")[0]
    r = rx["http"].post(unsigned, json=body, timeout=10)
    assert r.status_code == 401 and r.json()["error"]["code"] == "DirectApiAuthorizationRequired"


# ------------------------------------------------------------------ Slack


def test_slack_accepts_the_blocks_through_slack_sdks_own_webhook_client(
        rx: dict[str, Any]) -> None:
    body = slack.render(CAPTURED, LINKS)
    tls = ssl.create_default_context(cafile=rx["certPath"])
    resp = WebhookClient(rx["slack_url"], ssl=tls).send(text=body["text"], blocks=body["blocks"])
    assert (resp.status_code, resp.body) == (200, "ok")
    (rec,) = deliveries(rx, "slack")
    assert json.loads(Path(rec["file"]).read_text())["body"]["blocks"] == body["blocks"]


@pytest.mark.parametrize(("payload", "status", "error"), [
    ({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
     400, "invalid_blocks"),  # header text is at most 150 characters
    ({"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x"},
                  "colour": "red"}]}, 400, "invalid_blocks"),  # unknown attribute
    ({"blocks": [{"type": "banner"}]}, 400, "invalid_blocks"),  # unknown block type
    ({"blocks": [{"type": "divider"}] * 51}, 400, "invalid_blocks"),  # 50 blocks at most
    ({"username": "x"}, 400, "no_text"),
])
def test_slack_refuses_what_slack_refuses(rx: dict[str, Any], payload: dict[str, Any],
                                          status: int, error: str) -> None:
    r = rx["http"].post(rx["slack_url"], json=payload, timeout=10)
    assert (r.status_code, r.text) == (status, error)


def test_slack_answers_no_service_and_invalid_payload_like_slack(rx: dict[str, Any]) -> None:
    base = rx["slack_url"].rsplit("/services/", 1)[0]
    r = rx["http"].post(f"{base}/services/not/a/hook", json={"text": "x"}, timeout=10)
    assert (r.status_code, r.text) == (404, "no_service")
    r = rx["http"].post(rx["slack_url"], data=b"{not json", timeout=10,
                      headers={"Content-Type": "application/json"})
    assert (r.status_code, r.text) == (400, "invalid_payload")


# ------------------------------------------------------------------ PagerDuty


def _client(rx: dict[str, Any], key: str = PD_KEY) -> pd_client.EventsApiV2Client:
    return pd_client.EventsApiV2Client(key, base_url=rx["pagerduty_base_url"],
                                       verify=ssl.create_default_context(
                                           cafile=rx["certPath"]))


def test_pagerduty_trigger_then_resolve_through_pagerdutys_own_client(
        rx: dict[str, Any]) -> None:
    event = pagerduty.render(CAPTURED, LINKS, routing_key=PD_KEY)
    fields = {k: v for k, v in event.items() if k not in ("routing_key", "event_action",
                                                          "dedup_key")}
    with _client(rx) as client:
        key = client.send_event("trigger", dedup_key=event["dedup_key"], **fields)
    assert key == event["dedup_key"]
    alerts = rx["http"].get(f"{rx['base']}/_localdev/pagerduty", timeout=5).json()["alerts"]
    assert alerts[key]["status"] == "triggered"
    resolve = pagerduty.render_resolve(ALERT_ID, routing_key=PD_KEY)
    with _client(rx) as client:
        assert client.resolve(resolve["dedup_key"]) == key
    alerts = rx["http"].get(f"{rx['base']}/_localdev/pagerduty", timeout=5).json()["alerts"]
    assert alerts[key]["status"] == "resolved"
    stored = json.loads(Path(deliveries(rx, "pagerduty")[0]["file"]).read_text())
    assert "routing_key" not in stored["body"]  # the integration key is not written down


@pytest.mark.parametrize(("mutate", "error"), [
    (lambda e: e.update(routing_key="short"),
     "Length of 'routing_key' is incorrect (should be 32 characters)"),
    (lambda e: e.update(routing_key="f" * 32), "Invalid routing key"),
    (lambda e: e["payload"].update(summary="s" * 1025),
     "'payload.summary' is longer than 1024 characters"),
    (lambda e: e["payload"].update(severity="high"),
     "'payload.severity' is invalid (must be one of critical, error, warning, info)"),
    (lambda e: e["payload"].pop("source"), "'payload.source' is missing or blank"),
    (lambda e: e.update(dedup_key="k" * 256),
     "'dedup_key' must be a string of at most 255 characters"),
    (lambda e: e.update(event_action="escalate"),
     "'event_action' is invalid (must be one of trigger, acknowledge, resolve)"),
])
def test_pagerduty_refuses_invalid_events_with_its_400_body(rx: dict[str, Any], mutate: Any,
                                                           error: str) -> None:
    # 02-Trigger-Events.md: routing_key 32 characters; summary <= 1024; severity enum;
    # source required; dedup_key <= 255; event_action enum.
    event = pagerduty.render(CAPTURED, LINKS, routing_key=PD_KEY)
    mutate(event)
    r = rx["http"].post(rx["pagerduty_url"], json=event, timeout=10)
    assert r.status_code == 400
    assert r.json() == {"status": "invalid event", "message": "Event object is invalid",
                        "errors": [error]}


def test_pagerduty_client_sees_the_400_as_an_error(rx: dict[str, Any]) -> None:
    with _client(rx, key="x" * 31) as client, pytest.raises(pd_client.Error):
        client.trigger("summary", "source")


# ------------------------------------------------------------------ signed webhook


def _post(rx: dict[str, Any], req: webhook.WebhookRequest) -> requests.Response:
    return rx["http"].post(rx["webhook_url"], data=req.body, headers=req.headers, timeout=10)


def test_webhook_accepts_a_signed_delivery_and_refuses_its_replay(rx: dict[str, Any]) -> None:
    req = webhook.render(CAPTURED, LINKS, secrets=WEBHOOK_SECRET, timestamp=int(time.time()))
    r = _post(rx, req)
    assert r.status_code == 200 and r.json() == {"ok": True, "duplicate": False}
    replay = _post(rx, req)
    assert replay.status_code == 409 and "replayed" in replay.json()["error"]
    # A retry is signed afresh: accepted, flagged as the same event.
    retry = webhook.render(CAPTURED, LINKS, secrets=WEBHOOK_SECRET,
                           timestamp=int(time.time()) + 1)
    assert _post(rx, retry).json() == {"ok": True, "duplicate": True}


@pytest.mark.parametrize(("secret", "age", "reason"), [
    ("not-the-secret", 0, "signature does not match"),
    (WEBHOOK_SECRET, 3600, "timestamp outside the 300 s tolerance (replay?)"),
])
def test_webhook_refuses_wrong_secret_and_stale_timestamp(rx: dict[str, Any], secret: str,
                                                          age: int, reason: str) -> None:
    req = webhook.render(FAILED, LINKS, secrets=secret, timestamp=int(time.time()) - age)
    r = _post(rx, req)
    assert r.status_code == 401 and r.json() == {"error": reason}
    assert not any(d["accepted"] for d in deliveries(rx, "webhook"))


# ------------------------------------------------------------------ faults


def _fault(rx: dict[str, Any], **spec: Any) -> requests.Response:
    return rx["http"].post(f"{rx['base']}/_localdev/faults", json=spec, timeout=5)


def test_fault_answers_429_with_retry_after_once_then_serves(rx: dict[str, Any]) -> None:
    assert _fault(rx, channel="slack", status=429, retryAfter=7, count=1).status_code == 201
    body = slack.render(CAPTURED, LINKS)
    first = rx["http"].post(rx["slack_url"], json=body, timeout=10)
    assert (first.status_code, first.text, first.headers["Retry-After"]) == (
        429, "rate_limited", "7")
    assert rx["http"].post(rx["slack_url"], json=body, timeout=10).status_code == 200


def test_fault_delay_and_status_in_each_services_shape(rx: dict[str, Any]) -> None:
    _fault(rx, channel="pagerduty", status=503, delay=0.4, count=1)
    event = pagerduty.render(CAPTURED, LINKS, routing_key=PD_KEY)
    started = time.monotonic()
    r = rx["http"].post(rx["pagerduty_url"], json=event, timeout=10)
    assert r.status_code == 503 and time.monotonic() - started >= 0.4
    _fault(rx, channel="teams", status=500, count=1)
    r = rx["http"].post(rx["teams_url"], json=teams.render(CAPTURED, LINKS), timeout=10)
    assert r.status_code == 500 and r.json()["error"]["code"] == "InternalServerError"
    rules = rx["http"].get(f"{rx['base']}/_localdev/faults", timeout=5).json()["rules"]
    assert [(f["channel"], f["hits"], f["remaining"]) for f in rules] == [
        ("pagerduty", 1, 0), ("teams", 1, 0)]


def test_bad_fault_rules_get_a_json_400(rx: dict[str, Any]) -> None:
    for spec in ({"channel": "fax", "status": 500}, {"channel": "slack"},
                 {"status": 200}, {"delay": 99}):
        r = _fault(rx, **spec)
        assert r.status_code == 400 and r.json()["error"]["code"] == "BadFault", spec
