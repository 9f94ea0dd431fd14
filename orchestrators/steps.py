"""What every orchestrator here is made of: the context's clock in one form, activity calls
by reference with their failures sorted, the custom status, and durable sleeps.

Deterministic by construction: time comes only from `ctx.current_utc_datetime`, waiting
only from durable timers, I/O only through activities.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import azure.durable_functions as df

from activities.spec import Activity
from alertcap.domain.run import RunPolicy
from alertcap.domain.wire import Model
from alertcap.errors import permanent_from_dict

log = logging.getLogger("alertcap.orchestrator")

I = TypeVar("I", bound=Model)  # noqa: E741
O = TypeVar("O", bound=Model)  # noqa: E741
Steps = Generator[Any, Any, Any]


def iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def first_line(exc: BaseException, limit: int = 300) -> str:
    return (str(getattr(exc, "message", None) or exc).split("\n")[0])[:limit]


def decoded(raw: Any) -> Any:
    """Inputs arrive as JSON text: the Durable extension stores what the Python SDK sends
    (already JSON) as a string, so one more decode is the rule, not an exception."""
    while isinstance(raw, str):
        raw = json.loads(raw)
    return raw


class Run:
    """Per-replay helpers bound to one context and one run policy."""

    def __init__(self, ctx: Any, policy: RunPolicy, status: dict[str, Any]) -> None:
        self.ctx = ctx
        self.policy = policy
        self.retry = df.RetryOptions(policy.retry_first_interval_ms, policy.retry_max_attempts)
        self.status = status

    @property
    def now(self) -> datetime:
        moment: datetime = self.ctx.current_utc_datetime
        return moment.replace(tzinfo=None)

    def call(self, act: Activity[I, O], inp: I) -> Generator[Any, Any, O]:
        """Run an activity: its output, or its permanent error raised as the tree's class.
        Transient faults were retried by RetryOptions; when they run out, the SDK raises."""
        return self.unwrap(act, (yield self.task(act, inp)))

    def task(self, act: Activity[I, O], inp: I) -> Any:
        """The activity's Durable task, not yet awaited (for task_all); see `unwrap`."""
        retry = self.retry
        if act.max_attempts is not None and act.max_attempts < retry.max_number_of_attempts:
            retry = df.RetryOptions(retry.first_retry_interval_in_milliseconds, act.max_attempts)
        return self.ctx.call_activity_with_retry(act.name, retry, inp.to_dict())

    @staticmethod
    def unwrap(act: Activity[I, O], envelope: Any) -> O:
        envelope = decoded(envelope)
        if "error" in envelope:
            raise permanent_from_dict(envelope["error"])
        return act.output.from_dict(envelope["value"])

    def sleep_until(self, moment: datetime) -> Steps:
        # Computed in naive UTC; handed back in the context clock's own form (the SDK
        # compares it with current_utc_datetime, which is timezone-aware in Durable 1.7).
        yield self.ctx.create_timer(moment.replace(tzinfo=self.ctx.current_utc_datetime.tzinfo))

    def timer(self, moment: datetime) -> Any:
        return self.ctx.create_timer(moment.replace(tzinfo=self.ctx.current_utc_datetime.tzinfo))

    def publish(self, phase: str, **fields: Any) -> None:
        self.status = {**self.status, "phase": phase, **fields}
        self.ctx.set_custom_status(self.status)

    def info(self, message: str, *args: Any) -> None:
        if not self.ctx.is_replaying:
            log.info("[%s] " + message, self.ctx.instance_id, *args)


def later(run: Run, seconds: float) -> datetime:
    return run.now + timedelta(seconds=seconds)
