"""Send a finished run to Teams, Slack, PagerDuty and a signed webhook; resolve PagerDuty.

Boundary: one activity per channel (the name is in every history: never renamed). Each
renders with its pure renderer (`alertcap.channels`), posts once with the standard
library (`urllib`, a bounded timeout, the local stack's CA when set) and answers with a
`ChannelAttempt`. URLs, keys and secrets come from the settings here, never from the
orchestration input, so they never reach a history or a log line.

Never raises for a delivery problem: the orchestrator (`orchestrators/deliver.py`) retries
each channel on durable timers by itself, so a channel's failure is data:

    delivered   2xx
    retry       429, 5xx, 408, a timeout or a connection error: may work later
    failed      any other 4xx: the service refuses this request (a revoked URL, a bad key);
                sending it again changes nothing
    skipped     the channel is not configured any more

Idempotency: the webhook carries a stable event id, PagerDuty a stable dedup key (a second
trigger adds a log entry to the same alert); Teams and Slack have no idempotency key, so an
activity re-run after a crash may post a card twice (at-least-once, as Durable runs it).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from activities.spec import activity
from alertcap.channels import Links, pagerduty, slack, teams, webhook
from alertcap.domain.run import RunResult
from alertcap.domain.wire import Model
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings

_RETRYABLE = {408, 425, 429}
_MAX_ERROR_BODY = 200


@dataclass(frozen=True)
class ChannelInput(Model):
    run: RunResult
    attempt: int = 1


@dataclass(frozen=True)
class ResolveInput(Model):
    alert_id: str


@dataclass(frozen=True)
class ChannelAttempt(Model):
    status: str  # delivered | retry | failed | skipped
    http_status: int | None = None
    error: str | None = None
    retry_after_seconds: float | None = None


def run_page_url(run: RunResult) -> str | None:
    """`{public base}/api/runs/{instanceId}`: the base is the one the starter was reached
    at, kept (keyless) in the run's status URL."""
    if not run.status_url:
        return None
    parts = urlsplit(run.status_url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}/api/runs/{run.instance_id}"


def links_for(run: RunResult, *, with_capture: bool) -> Links:
    capture = run.summary.link if (with_capture and run.summary) else None
    return Links(run_page=run_page_url(run), capture=capture)


def _context(s: Settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=s.ca_bundle) if s.ca_bundle else \
        ssl.create_default_context()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: our own backoff is long enough


def post(s: Settings, url: str, body: bytes, headers: dict[str, str]) -> ChannelAttempt:
    """POST once; the outcome sorted as the module docstring says. Error texts name the
    status and the service's own words, never the URL (it carries a signature)."""
    if not url.startswith("https://"):  # settings refuse others; never file: or ftp:
        return ChannelAttempt(status="failed", error="the channel URL is not https://")
    request = urllib.request.Request(url, data=body, method="POST",  # noqa: S310 - https only
                                     headers={"Content-Type": "application/json", **headers,
                                              "User-Agent": "alertcap"})
    try:
        with urllib.request.urlopen(request, timeout=s.channel_timeout_seconds,  # noqa: S310
                                    context=_context(s)) as response:
            return ChannelAttempt(status="delivered", http_status=response.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(_MAX_ERROR_BODY * 2).decode("utf-8", "replace").strip()
        error = f"HTTP {exc.code}" + (f": {detail[:_MAX_ERROR_BODY]}" if detail else "")
        retry = exc.code >= 500 or exc.code in _RETRYABLE
        return ChannelAttempt(status="retry" if retry else "failed", http_status=exc.code,
                              error=error,
                              retry_after_seconds=_retry_after(exc.headers.get("Retry-After")))
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return ChannelAttempt(status="retry", error=f"no answer: {type(reason).__name__}: "
                                                    f"{str(reason)[:_MAX_ERROR_BODY]}")


def _json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


@activity("channel_teams", max_attempts=1)
def send_teams(clients: Clients, inp: ChannelInput) -> ChannelAttempt:
    s = clients.settings
    if not s.teams_url:
        return ChannelAttempt(status="skipped", error="ALERTCAP_TEAMS_URL not set")
    body = teams.render(inp.run.to_dict(), links_for(inp.run, with_capture=True))
    return post(s, s.teams_url, _json(body), {})


@activity("channel_slack", max_attempts=1)
def send_slack(clients: Clients, inp: ChannelInput) -> ChannelAttempt:
    s = clients.settings
    if not s.slack_url:
        return ChannelAttempt(status="skipped", error="ALERTCAP_SLACK_URL not set")
    body = slack.render(inp.run.to_dict(), links_for(inp.run, with_capture=True))
    return post(s, s.slack_url, _json(body), {})


@activity("channel_pagerduty", max_attempts=1)
def send_pagerduty(clients: Clients, inp: ChannelInput) -> ChannelAttempt:
    s = clients.settings
    if not s.pagerduty_routing_key:
        return ChannelAttempt(status="skipped", error="ALERTCAP_PAGERDUTY_ROUTING_KEY not set")
    # No capture link: PagerDuty keeps event links for the incident's whole life, longer
    # than the read link lives, and its readers reach the file through the run page.
    body = pagerduty.render(inp.run.to_dict(), links_for(inp.run, with_capture=False),
                            routing_key=s.pagerduty_routing_key)
    return post(s, s.pagerduty_url, _json(body), {})


@activity("channel_webhook", max_attempts=1)
def send_webhook(clients: Clients, inp: ChannelInput) -> ChannelAttempt:
    s = clients.settings
    if not s.webhook_url or not s.webhook_secrets:
        return ChannelAttempt(status="skipped", error="ALERTCAP_WEBHOOK_URL not set")
    # Signed at send time (each retry gets a fresh timestamp, inside the receiver's
    # tolerance); the event id stays the run's, so the receiver drops a second delivery.
    signed = webhook.render(inp.run.to_dict(), links_for(inp.run, with_capture=True),
                            secrets=list(s.webhook_secrets), timestamp=int(time.time()))
    return post(s, s.webhook_url, signed.body, signed.headers)


@activity("channel_pagerduty_resolve", max_attempts=1)
def resolve_pagerduty(clients: Clients, inp: ResolveInput) -> ChannelAttempt:
    s = clients.settings
    if not s.pagerduty_routing_key:
        return ChannelAttempt(status="skipped", error="ALERTCAP_PAGERDUTY_ROUTING_KEY not set")
    body = pagerduty.render_resolve(inp.alert_id, routing_key=s.pagerduty_routing_key)
    return post(s, s.pagerduty_url, _json(body), {})


SENDERS = {"teams": send_teams, "slack": send_slack, "pagerduty": send_pagerduty,
           "webhook": send_webhook}
