"""The channel activities against the local receivers (HTTPS, each service's own rules and
errors): what a channel's owner sees arrive, and how each answer is sorted for retrying."""

from __future__ import annotations

from typing import Any

from activities.channels import (
    ChannelInput,
    ResolveInput,
    resolve_pagerduty,
    run_page_url,
    send_pagerduty,
    send_slack,
    send_teams,
    send_webhook,
)
from alertcap.domain.run import AlertInfo, CaptureSummary, RunResult
from alertcap.domain.vm import VmRef
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings
from tests.channels.conftest import PD_KEY, WEBHOOK_SECRET, receiver, rx  # noqa: F401

VM = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/"
      "Microsoft.Compute/virtualMachines/vm1")
ALERT_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
            "Microsoft.AlertsManagement/alerts/1111")
RUN = RunResult(
    instance_id="alertcap-vm1-0123456789ab", vm=VmRef.parse(VM), outcome="captured",
    alert=AlertInfo(schema="common", alert_id=ALERT_ID, alert_rule="vm1-net", severity="Sev1"),
    started_at="2026-11-24T02:00:00Z", finished_at="2026-11-24T02:05:00Z",
    status_url="https://app.example.net/runtime/webhooks/durabletask/instances/x?taskHub=h",
    summary=CaptureSummary(blob_url="https://a/b.cap", link="https://a/b.cap?sig=read",
                           summary={"packets": 1234, "bytes": 99999}))


def clients(info: dict[str, Any], **env: str) -> Clients:
    base = {"ALERTCAP_STORAGE_ACCOUNT_ID": "/sa", "ALERTCAP_CA_BUNDLE": info["certPath"], "ALERTCAP_TEAMS_URL": info["teams_url"],
            "ALERTCAP_SLACK_URL": info["slack_url"], "ALERTCAP_PAGERDUTY_URL":
            info["pagerduty_url"], "ALERTCAP_PAGERDUTY_ROUTING_KEY": PD_KEY,
            "ALERTCAP_WEBHOOK_URL": info["webhook_url"], "ALERTCAP_WEBHOOK_SECRET":
            WEBHOOK_SECRET, "ALERTCAP_CHANNEL_TIMEOUT_SECONDS": "20"}  # Teams cards are rendered in Chromium
    return Clients(Settings.from_env({**base, **env}))


def deliveries(rx: dict[str, Any], channel: str) -> list[dict[str, Any]]:  # noqa: F811
    r = rx["http"].get(f"{rx['base']}/_localdev/deliveries", params={"channel": channel},
                       timeout=5)
    r.raise_for_status()
    items: list[dict[str, Any]] = r.json()["deliveries"]
    return items


def test_the_run_page_is_on_the_public_base_the_starter_was_reached_at() -> None:
    assert run_page_url(RUN) == "https://app.example.net/api/runs/alertcap-vm1-0123456789ab"


def test_every_channel_is_delivered_and_accepted_by_its_service(rx: dict[str, Any]) -> None:  # noqa: F811
    c = clients(rx)
    for send in (send_teams, send_slack, send_pagerduty, send_webhook):
        out = send(c, ChannelInput(RUN))
        assert out.status == "delivered", (send.name, out)
    for channel in ("teams", "slack", "pagerduty", "webhook"):
        got = deliveries(rx, channel)
        assert len(got) == 1 and got[0]["accepted"], (channel, got)
    alerts = rx["http"].get(f"{rx['base']}/_localdev/pagerduty", timeout=5).json()["alerts"]
    assert [a["status"] for a in alerts.values()] == ["triggered"]


def test_resolve_closes_the_pagerduty_alert_of_the_same_azure_alert(rx: dict[str, Any]) -> None:  # noqa: F811
    c = clients(rx)
    assert send_pagerduty(c, ChannelInput(RUN)).status == "delivered"
    # Azure ids compare case-insensitively: the Resolved notification may differ in case.
    assert resolve_pagerduty(c, ResolveInput(ALERT_ID.upper())).status == "delivered"
    alerts = rx["http"].get(f"{rx['base']}/_localdev/pagerduty", timeout=5).json()["alerts"]
    assert [a["status"] for a in alerts.values()] == ["resolved"]


def test_a_service_outage_is_retryable_and_a_refusal_is_not(rx: dict[str, Any]) -> None:  # noqa: F811
    c = clients(rx)
    rx["http"].post(f"{rx['base']}/_localdev/faults", timeout=5,
                    json={"channel": "slack", "status": 429, "retryAfter": 7, "count": 1})
    out = send_slack(c, ChannelInput(RUN))
    assert (out.status, out.http_status, out.retry_after_seconds) == ("retry", 429, 7.0)
    assert "rate_limited" in (out.error or "")
    rx["http"].post(f"{rx['base']}/_localdev/faults", timeout=5,
                    json={"channel": "teams", "status": 503, "count": 1})
    assert send_teams(c, ChannelInput(RUN)).status == "retry"
    # A Teams URL whose signature is wrong: the workflow refuses it, every time.
    bad = rx["teams_url"].replace("sig=", "sig=x")
    refused = send_teams(clients(rx, ALERTCAP_TEAMS_URL=bad), ChannelInput(RUN))
    assert refused.status == "failed" and refused.http_status in (401, 403)
    assert "sig=" not in (refused.error or "")  # the URL's secret never lands in the output


def test_a_receiver_that_does_not_answer_in_time_is_retryable(rx: dict[str, Any]) -> None:  # noqa: F811
    rx["http"].post(f"{rx['base']}/_localdev/faults", timeout=5,
                    json={"channel": "webhook", "delay": 4, "count": 1})
    out = send_webhook(clients(rx, ALERTCAP_CHANNEL_TIMEOUT_SECONDS="1"), ChannelInput(RUN))
    assert out.status == "retry" and "no answer" in (out.error or "")


def test_the_webhook_is_signed_so_the_receiver_can_verify_it(rx: dict[str, Any]) -> None:  # noqa: F811
    # The receiver accepts only what verifies against its secret (webhook.verify)...
    assert send_webhook(clients(rx), ChannelInput(RUN)).status == "delivered"
    assert deliveries(rx, "webhook")[0]["accepted"]
    # ...and refuses a sender holding another secret: that is not retried.
    other = send_webhook(clients(rx, ALERTCAP_WEBHOOK_SECRET="not-the-receivers-secret"),
                         ChannelInput(RUN))
    assert other.status == "failed" and other.http_status in (400, 401, 403)


def test_an_unconfigured_channel_is_skipped_not_failed() -> None:
    c = Clients(Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": "/sa"}))
    assert send_teams(c, ChannelInput(RUN)).status == "skipped"
    assert resolve_pagerduty(c, ResolveInput(ALERT_ID)).status == "skipped"
