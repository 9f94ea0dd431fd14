"""The four renderers, pure: what a reader of each channel would see, and the limits each
service enforces (cited where the rule is)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from alertcap.channels import Links, pagerduty, slack, teams, webhook
from tests.channels.runs import ALERT_ID, CAPTURED, FAILED, LINKS, NO_SUMMARY, captured


def _card_text(card: dict[str, Any]) -> str:
    return json.dumps(card)


# ------------------------------------------------------------------ Teams


def test_teams_body_is_the_workflows_envelope_with_a_full_width_1_5_card() -> None:
    # Workflows "When a Teams webhook request is received" takes this envelope;
    # cards-reference.md: Teams supports Adaptive Cards up to 1.5.
    body = teams.render(CAPTURED, LINKS)
    assert body["type"] == "message"
    (att,) = body["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    assert card["msteams"] == {"width": "Full"}
    assert [(a["title"], a["url"]) for a in card["actions"]] == [
        ("Open run", LINKS.run_page), ("Download capture", LINKS.capture)]


def test_teams_card_leads_with_the_worst_finding_and_lists_all_by_severity() -> None:
    card = teams.card(CAPTURED, LINKS)
    headline = card["body"][1]
    assert "1,562 new TCP connections" in headline["text"] and headline["color"] == "Attention"
    text = _card_text(card)
    order = [text.index(s) for s in ("HIGH", "MEDIUM", "LOW")]
    assert order == sorted(order)
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["VM"] == "vm1" and facts["Packets"] == "28,169"
    assert facts["Alert severity"] == "Sev1" and "peak 156" in facts["New TCP connections/s"]


def test_teams_failed_run_says_failed_and_why_without_findings() -> None:
    card = teams.card(FAILED, Links(run_page=LINKS.run_page))
    text = _card_text(card)
    assert "Capture failed on vm1" in text and "agent is not installed" in text
    assert "Findings" not in text
    assert [a["title"] for a in card["actions"]] == ["Open run"]


def test_teams_escapes_markdown_from_the_alert_so_links_cannot_be_smuggled() -> None:
    card = teams.card(captured(alert_rule="[click](https://evil.example) *now*"), LINKS)
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts["Alert"] == r"\[click\]\(https://evil.example\) \*now\*"


def test_teams_card_stays_under_28_kb_with_hundreds_of_findings() -> None:
    run = captured()
    run["summary"]["summary"]["findings"] = [
        {"kind": "k", "severity": "medium", "sentence": "s" * 300, "hosts": ["h"] * 50}
    ] * 500
    body = teams.render(run, LINKS)
    assert len(json.dumps(body).encode()) < 28 * 1024
    assert "and 490 more on the run page" in _card_text(body)


# ------------------------------------------------------------------ Slack


def _slack_valid(blocks: list[dict[str, Any]]) -> None:
    # Round trip through slack_sdk's models: to_dict() runs its validators.
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        assert block.to_dict() == raw


def test_slack_blocks_carry_the_same_content_and_pass_slack_sdk_validation() -> None:
    body = slack.render(CAPTURED, LINKS)
    _slack_valid(body["blocks"])
    assert body["text"].startswith("[alertcap] vm1: 10.0.0.4 opened 1,562")
    assert body["blocks"][0]["type"] == "header"
    text = json.dumps(body["blocks"])
    assert "Packets*\\n28,169" in text and ":red_circle: *HIGH*" in text
    buttons = next(b for b in body["blocks"] if b["type"] == "actions")["elements"]
    assert [e["url"] for e in buttons] == [LINKS.run_page, LINKS.capture]


def test_slack_escapes_control_sequences_so_an_alert_cannot_ping_the_channel() -> None:
    body = slack.render(captured(alert_rule="<!channel> & <@U123>"), LINKS)
    text = json.dumps(body["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text


def test_slack_truncates_to_block_kit_limits_instead_of_failing() -> None:
    run = captured(alert_rule="r" * 5000)
    run["summary"]["summary"]["findings"][1]["sentence"] = "x" * 5000
    body = slack.render(run, LINKS)
    _slack_valid(body["blocks"])
    assert len(body["blocks"][0]["text"]["text"]) == 150  # header limit


def test_slack_failed_and_summaryless_runs_render() -> None:
    failed = slack.render(FAILED, LINKS)
    _slack_valid(failed["blocks"])
    assert failed["text"].startswith("[alertcap] FAILED: Capture failed on vm1")
    bare = slack.render(NO_SUMMARY, LINKS)
    _slack_valid(bare["blocks"])
    assert "no traffic summary" in bare["text"]


# ------------------------------------------------------------------ PagerDuty

KEY = "0123456789abcdef0123456789abcdef"


def test_pagerduty_trigger_has_the_required_fields_links_and_findings() -> None:
    event = pagerduty.render(CAPTURED, LINKS, routing_key=KEY)
    assert event["event_action"] == "trigger" and event["routing_key"] == KEY
    p = event["payload"]
    assert p["source"] == CAPTURED["vm_id"] and p["severity"] == "error"  # Sev1
    assert p["summary"].startswith("[alertcap] vm1: 10.0.0.4 opened")
    assert "vm1-outbound-flows-unusual" in p["summary"]
    assert p["group"] == "demo-rg" and p["class"] == "connection_burst"
    assert [f["kind"] for f in p["custom_details"]["findings"]] == [
        "connection_burst", "new_destination_port", "retransmissions"]
    assert event["links"] == [{"href": LINKS.run_page, "text": "Run page"},
                              {"href": LINKS.capture, "text": "Capture file"}]


@pytest.mark.parametrize(("sev", "failed", "want"), [
    ("Sev0", False, "critical"), ("Sev1", False, "error"), ("sev2", False, "warning"),
    ("Sev3", False, "info"), ("Sev4", False, "info"), (None, False, "warning"),
    ("Sev3", True, "error"), ("Sev0", True, "critical"), ("bogus", False, "warning"),
])
def test_pagerduty_severity_maps_azure_severities(sev: str | None, failed: bool,
                                                  want: str) -> None:
    assert pagerduty.severity(sev, failed=failed) == want


def test_pagerduty_summary_is_cut_to_1024_characters() -> None:
    # 02-Trigger-Events.md: payload.summary at most 1024 characters.
    run = captured(alert_rule="a" * 3000)
    summary = pagerduty.render(run, LINKS, routing_key=KEY)["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith("…")


def test_pagerduty_resolve_uses_the_key_of_the_trigger_for_the_same_alert() -> None:
    trigger = pagerduty.render(CAPTURED, LINKS, routing_key=KEY)
    resolve = pagerduty.render_resolve(ALERT_ID.upper(), routing_key=KEY)
    assert resolve == {"routing_key": KEY, "event_action": "resolve",
                       "dedup_key": trigger["dedup_key"]}
    assert len(trigger["dedup_key"]) <= 255
    other = captured(alert_id=ALERT_ID.replace("b9569717", "c0000000"))
    assert pagerduty.render(other, LINKS, routing_key=KEY)["dedup_key"] != trigger["dedup_key"]


def test_pagerduty_manual_run_keys_on_the_instance() -> None:
    run = captured()
    run["alert"] = None
    run["requested_by"] = "manual"
    event = pagerduty.render(run, LINKS, routing_key=KEY)
    assert event["dedup_key"] == pagerduty.dedup_key(instance_id=CAPTURED["instance_id"])
    with pytest.raises(ValueError, match="alert id or an instance id"):
        pagerduty.dedup_key()


# ------------------------------------------------------------------ webhook

SECRET = "whsec_test_0123456789"


def test_webhook_signature_verifies_and_body_is_the_run() -> None:
    req = webhook.render(CAPTURED, LINKS, secrets=SECRET, timestamp=1_800_000_000)
    assert webhook.verify(req.body, req.headers["Alertcap-Signature"], SECRET,
                          now=1_800_000_100) == 1_800_000_000
    doc = json.loads(req.body)
    assert doc["type"] == "alertcap.run.finished" and doc["run"] == CAPTURED
    assert doc["links"] == {"run_page": LINKS.run_page, "capture": LINKS.capture}
    assert req.headers["Alertcap-Event-Id"] == doc["id"]


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda b, h: (b.replace(b"vm1", b"vm2"), h), "does not match"),
    (lambda b, h: (b, h.replace("t=1800000000", "t=1800000001")), "does not match"),
    (lambda b, h: (b, None), "missing"),
    (lambda b, h: (b, h.split(",")[0]), "no v1"),
    (lambda b, h: (b, "v1=" + h.split("v1=")[1]), "no timestamp"),
])
def test_webhook_verify_rejects_tampering(mutate: Any, reason: str) -> None:
    req = webhook.render(CAPTURED, LINKS, secrets=SECRET, timestamp=1_800_000_000)
    body, header = mutate(req.body, req.headers["Alertcap-Signature"])
    with pytest.raises(webhook.SignatureError, match=reason):
        webhook.verify(body, header, SECRET, now=1_800_000_000)


def test_webhook_rejects_old_timestamps_and_wrong_secret_and_allows_rotation() -> None:
    req = webhook.render(CAPTURED, LINKS, secrets=["new-secret", SECRET], timestamp=1000)
    sig = req.headers["Alertcap-Signature"]
    with pytest.raises(webhook.SignatureError, match="tolerance"):
        webhook.verify(req.body, sig, SECRET, now=1000 + 301)
    with pytest.raises(webhook.SignatureError, match="does not match"):
        webhook.verify(req.body, sig, "someone-else", now=1000)
    # Mid-rotation the receiver knows either secret; both signatures are in the header.
    assert webhook.verify(req.body, sig, "new-secret", now=1000) == 1000
    assert webhook.verify(req.body, sig, [SECRET], now=1000) == 1000
    with pytest.raises(ValueError, match="non-empty"):
        webhook.render(CAPTURED, LINKS, secrets="", timestamp=1)


def test_webhook_event_id_is_stable_across_retries_and_differs_per_result() -> None:
    a = webhook.render(CAPTURED, LINKS, secrets=SECRET, timestamp=1)
    b = webhook.render(CAPTURED, LINKS, secrets=SECRET, timestamp=99)
    assert a.headers["Alertcap-Event-Id"] == b.headers["Alertcap-Event-Id"]
    assert a.headers["Alertcap-Signature"] != b.headers["Alertcap-Signature"]
    c = webhook.render(FAILED, LINKS, secrets=SECRET, timestamp=1)
    assert c.headers["Alertcap-Event-Id"] != a.headers["Alertcap-Event-Id"]


# ------------------------------------------------------------------ any run at all

_scalar = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40))
_finding = st.dictionaries(
    st.sampled_from(["kind", "severity", "sentence", "hosts", "ports", "evidence"]),
    st.one_of(_scalar, st.lists(_scalar, max_size=3), st.sampled_from(
        ["high", "medium", "low", "info", "HIGH"])))
_run = st.fixed_dictionaries({}, optional={
    "vm_id": st.one_of(st.none(), st.text(max_size=200)),
    "instance_id": st.one_of(st.none(), st.text(min_size=1, max_size=60)),
    "outcome": st.sampled_from(["captured", "failed", None, 3]),
    "reason": _scalar,
    "alert": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "alert_id": st.one_of(st.none(), st.text(max_size=300)),
        "alert_rule": st.text(max_size=2000), "severity": _scalar})),
    "summary": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        "summary": st.one_of(st.none(), st.fixed_dictionaries({}, optional={
            "packets": _scalar, "bytes": _scalar, "duration_s": _scalar,
            "tcp": st.one_of(_scalar, st.fixed_dictionaries({}, optional={
                "retransmission_percent": _scalar, "retransmissions": _scalar,
                "new_connections_per_s": st.dictionaries(st.sampled_from(["peak", "average"]),
                                                         _scalar)})),
            "top_talkers": st.lists(st.one_of(_scalar, st.dictionaries(
                st.sampled_from(["host", "bytes"]), _scalar)), max_size=2),
            "findings": st.one_of(_scalar, st.lists(st.one_of(_scalar, _finding),
                                                    max_size=15)),
        }))})),
})


@settings(derandomize=True, max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(run=_run)
def test_every_renderer_takes_any_run_shape_and_keeps_the_services_limits(
        run: dict[str, Any]) -> None:
    body = teams.render(run, LINKS)
    assert body["attachments"][0]["content"]["body"]
    sl = slack.render(run, LINKS)
    _slack_valid(sl["blocks"])
    assert len(sl["blocks"]) <= 50
    event = pagerduty.render(run, LINKS, routing_key=KEY)
    p = event["payload"]
    assert 0 < len(p["summary"]) <= 1024 and p["source"]
    assert p["severity"] in ("critical", "error", "warning", "info")
    assert len(event["dedup_key"]) <= 255
    json.dumps(event)
    req = webhook.render(run, LINKS, secrets=SECRET, timestamp=5)
    assert webhook.verify(req.body, req.headers["Alertcap-Signature"], SECRET, now=5) == 5
