"""Getting the notification out, whatever the email service does: the orchestration retries
on durable timers with backoff, never relying on rewind (preview in Azure, and it fails on
replay when retry timers surround the failure: extension issue #617).

    attempt -> sent: done
            -> failed: wait (first_retry, doubling to max_retry), then attempt again;
               after an operation that definitely ended Failed, with a fresh operation id
               (the service would hand the same failed operation back); an attempt that
               may have reached the service keeps its id, so it is never sent twice
            -> past give_up: the run still completes, its notification marked undelivered

Every channel at once (version 4, `deliver_all`): email and each configured channel of the
run's policy (Teams, Slack, PagerDuty, webhook) are attempted together in `task_all`
rounds; each keeps its own backoff, its own give-up time and its own attempt count, so a
channel that is down for the whole run delays nobody else's delivery and ends marked
"undelivered" in the output's `channels` (email in `notification`, as before). A channel
the service refuses (4xx other than 408/425/429) is given up at once.

`POST /api/runs/{instanceId}/notify` starts `notify_again` to send a finished run's
notification once more from its output.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from activities.channels import (
    SENDERS,
    ChannelAttempt,
    ChannelInput,
    ResolveInput,
    resolve_pagerduty,
)
from activities.notify import NotifyInput
from activities.notify import send as notify
from alertcap.domain.run import ChannelStatus, Notification, RunPolicy, RunResult
from alertcap.domain.wire import Model
from alertcap.errors import PermanentAzureError
from orchestrators.steps import Run, Steps, decoded, first_line, iso, later

NOTIFY_AGAIN_ORCHESTRATOR = "notify_again"
RESOLVE_ORCHESTRATOR = "resolve_pagerduty"


def deliver(run: Run, result: RunResult, key: str) -> Generator[Any, Any, Notification]:
    policy = run.policy
    give_up_at = later(run, policy.notify_give_up_seconds)
    delay = float(policy.notify_first_retry_seconds)
    attempts, fresh = 0, 0
    while True:
        attempts += 1
        try:
            sent = yield from run.call(notify, NotifyInput(
                result, key if fresh == 0 else f"{key}/{fresh}"))
            return replace(sent, attempts=attempts)
        except PermanentAzureError as exc:
            error = first_line(exc)
            fresh += 1  # that operation is over: the next attempt is a new one
        except Exception as exc:  # transient, retries exhausted: it may yet have been sent
            error = first_line(exc)
        retry_at = later(run, delay)
        if retry_at > give_up_at:
            run.info("notification undelivered after %d attempts: %s", attempts, error)
            return Notification(message_id="", recipients=(), status="undelivered",
                                attempts=attempts, error=error)
        run.info("notification attempt %d failed, next at %s: %s", attempts, iso(retry_at), error)
        run.publish("notifying", notifyAttempts=attempts, nextAttemptAt=iso(retry_at),
                    lastError=error)
        yield from run.sleep_until(retry_at)
        delay = min(delay * 2, float(policy.notify_max_retry_seconds))


@dataclass
class _Pending:
    """One channel's delivery state across rounds (orchestrator memory only)."""

    name: str
    give_up_at: datetime
    delay: float
    next_at: datetime
    attempts: int = 0
    fresh: int = 0  # email only: operations known to have ended Failed
    error: str | None = None


def deliver_all(run: Run, result: RunResult, key: str
                ) -> Generator[Any, Any, tuple[Notification, tuple[ChannelStatus, ...]]]:
    """Email and every channel of the policy, concurrently; see the module docstring."""
    policy = run.policy
    start = run.now
    pending = {name: _Pending(name, start + timedelta(seconds=policy.notify_give_up_seconds),
                              float(policy.notify_first_retry_seconds), start)
               for name in ("email", *(c for c in policy.channels if c in SENDERS))}
    email: Notification | None = None
    done: dict[str, ChannelStatus] = {}
    while pending:
        due = [p for p in pending.values() if p.next_at <= run.now]
        tasks = []
        for p in due:
            p.attempts += 1
            if p.name == "email":
                tasks.append(run.task(notify, NotifyInput(
                    result, key if p.fresh == 0 else f"{key}/{p.fresh}")))
            else:
                tasks.append(run.task(SENDERS[p.name], ChannelInput(result, p.attempts)))
        values: list[Any] | None
        together = run.ctx.task_all(tasks)
        try:
            values = yield together
        except Exception:  # one failed, and task_all fails fast: read each below
            values = None
        for index, p in enumerate(due):
            retry_after = 0.0
            try:
                # After a failed task_all, each task is awaited on its own: the SDK answers
                # a task yielded again with its recorded result (TaskOrchestrationExecutor).
                value = values[index] if values is not None else (yield tasks[index])
                if p.name == "email":
                    sent = run.unwrap(notify, value)
                    email = replace(sent, attempts=p.attempts)
                    del pending[p.name]
                    continue
                attempt: ChannelAttempt = run.unwrap(SENDERS[p.name], value)
            except PermanentAzureError as exc:
                p.error, p.fresh = first_line(exc), p.fresh + 1
                attempt = ChannelAttempt(status="retry", error=p.error)
            except Exception as exc:  # transient, retries exhausted
                p.error = first_line(exc)
                attempt = ChannelAttempt(status="retry", error=p.error)
            if attempt.status in ("delivered", "skipped", "failed"):
                status = {"delivered": "delivered", "failed": "undelivered"}.get(
                    attempt.status, f"skipped: {attempt.error}")
                done[p.name] = ChannelStatus(p.name, status, p.attempts, attempt.error
                                             if attempt.status == "failed" else None,
                                             attempt.http_status)
                del pending[p.name]
                if attempt.status == "failed":
                    run.info("%s refused the run: %s", p.name, attempt.error)
                continue
            p.error = attempt.error
            retry_after = attempt.retry_after_seconds or 0.0
            wait = max(p.delay, min(retry_after, float(policy.notify_max_retry_seconds)))
            p.next_at = later(run, wait)
            p.delay = min(p.delay * 2, float(policy.notify_max_retry_seconds))
            if p.next_at > p.give_up_at:
                run.info("%s undelivered after %d attempts: %s", p.name, p.attempts, p.error)
                if p.name == "email":
                    email = Notification(message_id="", recipients=(), status="undelivered",
                                         attempts=p.attempts, error=p.error)
                else:
                    done[p.name] = ChannelStatus(p.name, "undelivered", p.attempts, p.error,
                                                 attempt.http_status)
                del pending[p.name]
            else:
                run.info("%s attempt %d failed, next at %s: %s", p.name, p.attempts,
                         iso(p.next_at), p.error)
        if pending:
            wake = min(p.next_at for p in pending.values())
            fields: dict[str, Any] = {"pending": {
                p.name: {"attempts": p.attempts, "nextAttemptAt": iso(p.next_at),
                         "lastError": p.error} for p in pending.values()}}
            if "email" in pending:  # the email's fields where they were before version 4
                e = pending["email"]
                fields.update(notifyAttempts=e.attempts, nextAttemptAt=iso(e.next_at),
                              lastError=e.error)
            run.publish("notifying", **fields)
            yield from run.sleep_until(wake)
    assert email is not None  # email is always among the channels and leaves with a status
    order = [c for c in policy.channels if c in done]
    return email, tuple(done[c] for c in order)


@dataclass(frozen=True)
class NotifyAgainInput(Model):
    result: RunResult
    key: str  # a fresh idempotency key for this request: a new email, once
    policy: RunPolicy = field(default_factory=RunPolicy)


def notify_again_run(ctx: Any) -> Steps:
    inp = NotifyAgainInput.from_dict(decoded(ctx.get_input()))
    run = Run(ctx, inp.policy, {"vm": inp.result.vm.name, "of": inp.result.instance_id})
    run.publish("notifying")
    notification = yield from deliver(run, inp.result, inp.key)
    run.publish("done", status=notification.status)
    return notification.to_dict()


@dataclass(frozen=True)
class ResolveRunInput(Model):
    alert_id: str
    policy: RunPolicy = field(default_factory=RunPolicy)


def resolve_run(ctx: Any) -> Steps:
    """An Azure alert's Resolved notification: resolve its PagerDuty alert (same dedup key
    as the trigger), retried on durable timers like any channel."""
    inp = ResolveRunInput.from_dict(decoded(ctx.get_input()))
    run = Run(ctx, inp.policy, {"alert": inp.alert_id[-60:]})
    give_up_at = later(run, inp.policy.notify_give_up_seconds)
    delay, attempts = float(inp.policy.notify_first_retry_seconds), 0
    while True:
        attempts += 1
        out = yield from run.call(resolve_pagerduty, ResolveInput(inp.alert_id))
        if out.status != "retry":
            break
        retry_at = later(run, max(delay, out.retry_after_seconds or 0.0))
        if retry_at > give_up_at:
            break
        run.publish("resolving", attempts=attempts, lastError=out.error,
                    nextAttemptAt=iso(retry_at))
        yield from run.sleep_until(retry_at)
        delay = min(delay * 2, float(inp.policy.notify_max_retry_seconds))
    status = {"delivered": "resolved", "retry": "undelivered", "failed": "undelivered"}.get(
        out.status, out.status)
    run.publish("done", status=status)
    return ChannelStatus("pagerduty", status, attempts, out.error, out.http_status).to_dict()
