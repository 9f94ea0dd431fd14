"""Drive the real orchestrator generator without a host.

A scripted stand-in for the Durable context: activity calls are answered by handler
functions, timers advance a virtual clock, and external events arrive at scripted
virtual times. It records every call, every custom status and continue_as_new, so tests
assert what an operator would see.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(eq=False)
class Task:
    kind: str  # activity | sub | timer | event | any
    name: str = ""
    payload: Any = None
    fire_at: datetime | None = None
    children: list[Task] = field(default_factory=list)
    is_completed: bool = False
    cancelled: bool = False
    result: Any = None
    error: BaseException | None = None

    def cancel(self) -> None:
        self.cancelled = True


class ActivityFailed(Exception):
    """What the Durable SDK raises into the orchestrator when an activity exhausted retries."""


@dataclass
class FakeContext:
    input: Any
    handlers: dict[str, Callable[..., Any]]
    now: datetime = datetime(2026, 11, 24, 2, 0, 0)
    instance_id: str = "alertcap-vm1-0123456789ab"
    stop_at: datetime | None = None  # when an operator raises "stop"
    is_replaying: bool = False
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    continued_with: Any = None
    timers: list[Task] = field(default_factory=list)
    step_seconds: float = 1.0  # virtual time each activity takes
    # Sub-orchestrations: answered by handlers["sub:<name>"](input, instance_id); each
    # task_all of them is recorded as one batch (the instance ids started together).
    batches: list[list[str]] = field(default_factory=list)

    @property
    def current_utc_datetime(self) -> datetime:
        return self.now

    def get_input(self) -> Any:
        return self.input

    def call_activity_with_retry(self, name: str, retry: Any, payload: Any) -> Task:
        assert retry.max_number_of_attempts >= 1
        return Task("activity", name, payload)

    def call_sub_orchestrator(self, name: str, input_: Any = None,
                              instance_id: str | None = None) -> Task:
        return Task("sub", name, {"input": input_, "instance_id": instance_id})

    def create_timer(self, fire_at: datetime) -> Task:
        task = Task("timer", fire_at=fire_at)
        self.timers.append(task)
        return task

    def wait_for_external_event(self, name: str) -> Task:
        return Task("event", name)

    def task_all(self, tasks: list[Task]) -> Task:
        return Task("all", children=tasks)

    def task_any(self, tasks: list[Task]) -> Task:
        return Task("any", children=tasks)

    def set_custom_status(self, status: Any) -> None:
        self.statuses.append(dict(status))

    def continue_as_new(self, new_input: Any) -> None:
        self.continued_with = new_input

    def _resolve(self, task: Task) -> Any:
        if task.kind == "activity":
            if task.is_completed:  # yielded again: its recorded outcome, as the SDK does
                if task.error is not None:
                    raise task.error
                return task.result
            self.calls.append((task.name, task.payload))
            self.now += timedelta(seconds=self.step_seconds)
            task.is_completed = True
            try:
                task.result = self.handlers[task.name](task.payload)
            except ActivityFailed as exc:
                task.error = exc
                raise
            return task.result
        if task.kind == "sub":
            if task.is_completed:
                if task.error is not None:
                    raise task.error
                return task.result
            self.calls.append((f"sub:{task.name}", task.payload))
            task.is_completed = True
            try:
                task.result = self.handlers[f"sub:{task.name}"](
                    task.payload["input"], task.payload["instance_id"])
            except ActivityFailed as exc:
                # The SDK's TaskBase.set_value(is_error=True): the exception is the result.
                task.error, task.result = exc, exc
                raise
            return task.result
        if task.kind == "all":  # children run side by side: the clock moves one step
            if any(c.kind == "sub" for c in task.children):
                self.batches.append([c.payload["instance_id"] for c in task.children
                                     if c.kind == "sub"])
            start, errors, results = self.now, [], []
            for child in task.children:
                self.now = start
                try:
                    results.append(self._resolve(child))
                except ActivityFailed as exc:
                    errors.append(exc)
            self.now = start + timedelta(seconds=self.step_seconds)
            if errors:  # fails fast with the first error, like WhenAllTask
                raise errors[0]
            task.is_completed = True
            return results
        if task.kind == "any":
            timer = next(t for t in task.children if t.kind == "timer")
            event = next((t for t in task.children if t.kind == "event"), None)
            assert timer.fire_at is not None
            if event is not None and self.stop_at is not None and self.stop_at <= timer.fire_at:
                self.now = max(self.now, self.stop_at)
                self.stop_at = None
                event.is_completed = True
                return event
            self.now = max(self.now, timer.fire_at)
            timer.is_completed = True
            return timer
        if task.kind == "timer":  # a durable sleep
            assert task.fire_at is not None
            self.now = max(self.now, task.fire_at)
            task.is_completed = True
            return None
        raise AssertionError(f"orchestrator yielded a bare {task.kind} task")


def drive(ctx: FakeContext, gen: Generator[Any, Any, Any], max_steps: int = 10000) -> Any:
    """Run the generator to its end; returns the orchestrator's return value."""
    value: Any = None
    error: BaseException | None = None
    for _ in range(max_steps):
        try:
            task = gen.throw(error) if error else gen.send(value)
        except StopIteration as stop:
            return stop.value
        error = None
        try:
            value = ctx._resolve(task)
        except ActivityFailed as exc:
            error = exc
    raise AssertionError("orchestrator did not finish")


def ok(value: Any) -> dict[str, Any]:
    return {"value": value.to_dict() if hasattr(value, "to_dict") else value}
