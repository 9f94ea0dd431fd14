"""Getting the notification out, whatever the email service does: the orchestration retries
on durable timers with backoff, never relying on rewind (preview in Azure, and it fails on
replay when retry timers surround the failure: extension issue #617).

    attempt -> sent: done
            -> failed: wait (first_retry, doubling to max_retry), then attempt again;
               after an operation that definitely ended Failed, with a fresh operation id
               (the service would hand the same failed operation back); an attempt that
               may have reached the service keeps its id, so it is never sent twice
            -> past give_up: the run still completes, its notification marked undelivered

`POST /api/runs/{instanceId}/notify` starts `notify_again` to send a finished run's
notification once more from its output.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field, replace
from typing import Any

from activities.notify import NotifyInput
from activities.notify import send as notify
from alertcap.domain.run import Notification, RunPolicy, RunResult
from alertcap.domain.wire import Model
from alertcap.errors import PermanentAzureError
from orchestrators.steps import Run, Steps, decoded, first_line, iso, later

NOTIFY_AGAIN_ORCHESTRATOR = "notify_again"


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
