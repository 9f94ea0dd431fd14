"""Delivery to every channel at once (version 4): each channel retried on its own durable
timers, a channel down for the whole run marked undelivered while the others arrive."""

from __future__ import annotations

from typing import Any

from activities.channels import ChannelAttempt, send_pagerduty, send_slack, send_teams, send_webhook
from activities.notify import send as notify
from alertcap.errors import NotificationFailed
from tests.app.orchestration_harness import ActivityFailed
from tests.app.test_orchestrator import Scenario, called, ok, request, run

ALL = ("teams", "slack", "pagerduty", "webhook")


def channels(scenario: Scenario, **answers: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each channel answers its scripted statuses in turn (then "delivered")."""
    sent: dict[str, list[dict[str, Any]]] = {}
    for act in (send_teams, send_slack, send_pagerduty, send_webhook):
        name = act.name.removeprefix("channel_")
        script = iter(answers.get(name, []))
        sent[name] = []

        def answer(payload: dict[str, Any], name: str = name, script: Any = script
                   ) -> dict[str, Any]:
            sent[name].append(payload)
            status = next(script, "delivered")
            return ok(ChannelAttempt(status=status, http_status=202 if status == "delivered"
                                     else 503, error=None if status == "delivered"
                                     else "HTTP 503: down"))
        scenario.handlers[act.name] = answer
    return sent


def test_every_channel_gets_the_finished_run_with_the_email() -> None:
    scenario = Scenario(["Stopped"])
    sent = channels(scenario)
    ctx, out = run(scenario, request(channels=ALL))
    assert [(c["channel"], c["status"], c["attempts"]) for c in out["channels"]] == [
        (c, "delivered", 1) for c in ALL]
    assert out["notification"]["status"] == "Succeeded"
    assert all(len(v) == 1 and v[0]["run"]["outcome"] == "captured" for v in sent.values())
    # Sent together: no timer between the first attempts of email and channels.
    assert called(ctx)[-6:-1] == [notify.name, *(f"channel_{c}" for c in ALL)]


def test_a_channel_down_for_the_whole_run_leaves_the_others_delivered() -> None:
    scenario = Scenario(["Stopped"])
    sent = channels(scenario, slack=["retry"] * 100, teams=["retry", "retry"])
    ctx, out = run(scenario, request(channels=ALL, notify_first_retry_seconds=60,
                                     notify_max_retry_seconds=600,
                                     notify_give_up_seconds=3600))
    by = {c["channel"]: c for c in out["channels"]}
    assert by["slack"]["status"] == "undelivered" and "503" in by["slack"]["error"]
    assert by["teams"]["status"] == "delivered" and by["teams"]["attempts"] == 3
    assert by["pagerduty"]["attempts"] == by["webhook"]["attempts"] == 1
    assert out["notification"]["attempts"] == 1  # the email was not re-sent for Slack
    assert len(sent["pagerduty"]) == 1
    # Slack's own backoff: 60, 120, 240, 480, 600... and given up within the hour.
    assert 4 <= len(sent["slack"]) <= 9
    assert ctx.statuses[-1]["phase"] == "done"
    pending = [s["pending"] for s in ctx.statuses if "pending" in s]
    assert pending and "email" not in pending[-1] and set(pending[-1]) == {"slack"}


def test_a_refusing_channel_is_given_up_at_once() -> None:
    scenario = Scenario(["Stopped"])
    sent = channels(scenario, webhook=["failed"])
    _, out = run(scenario, request(channels=ALL))
    by = {c["channel"]: c for c in out["channels"]}
    assert (by["webhook"]["status"], by["webhook"]["attempts"]) == ("undelivered", 1)
    assert len(sent["webhook"]) == 1


def test_an_email_failure_does_not_hold_back_the_channels_and_is_retried_alone() -> None:
    scenario = Scenario(["Stopped"])
    sent = channels(scenario)
    outcomes = iter([ActivityFailed("notify: 503"), NotificationFailed("ended Failed"), None])

    def email(payload: dict[str, Any]) -> dict[str, Any]:
        failure = next(outcomes)
        scenario.emails.append(payload)
        if isinstance(failure, NotificationFailed):
            return {"error": failure.to_dict()}
        if failure is not None:
            raise failure
        return scenario.notify(payload)

    scenario.handlers[notify.name] = email
    _, out = run(scenario, request(channels=ALL))
    assert out["notification"]["status"] == "Succeeded"
    assert out["notification"]["attempts"] == 3
    assert all(len(v) == 1 for v in sent.values())
    # Email idempotency as before: same key after a transient failure, a fresh one after
    # an operation that definitely ended Failed.
    keys = [e["idempotency_key"] for e in scenario.emails]
    assert keys[0] == keys[1] and keys[2] == keys[0] + "/1"


def test_runs_started_before_version_4_keep_email_only_delivery() -> None:
    scenario = Scenario(["Stopped"])
    sent = channels(scenario)
    ctx, out = run(scenario, request(version=2, channels=ALL))
    assert out["channels"] == []
    assert not any(sent.values())
    assert not any(name.startswith("channel_") for name in called(ctx))


def test_a_resolved_alert_resolves_pagerduty_retrying_an_outage() -> None:
    from activities.channels import resolve_pagerduty
    from alertcap.domain.run import RunPolicy
    from orchestrators.deliver import ResolveRunInput, resolve_run
    from tests.app.orchestration_harness import FakeContext, drive

    answers = iter(["retry", "retry", "delivered"])
    seen: list[dict[str, Any]] = []

    def resolve(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return ok(ChannelAttempt(status=next(answers), http_status=503))

    ctx = FakeContext(ResolveRunInput("/alerts/1", RunPolicy(notify_first_retry_seconds=5))
                      .to_dict(), {resolve_pagerduty.name: resolve})
    out = drive(ctx, resolve_run(ctx))
    assert (out["status"], out["attempts"]) == ("resolved", 3)
    assert [p["alert_id"] for p in seen] == ["/alerts/1"] * 3
    assert len(ctx.timers) == 2
