"""The capture workflow, as a plain generator over the Durable orchestration context.

    resolve_watcher -> ensure_agent -> clear_stale_capture -> check_limit -> create_capture
    -> monitor loop: get_capture_status, custom status, durable timer (or the operator's
       "stop" event); stop_capture at the deadline (time limit + grace)
    -> summarise_capture -> notify -> RunResult

Deterministic: only the context's clock, timers, events and activities; no I/O, no env.
History stays bounded for a 5-hour capture: the poll interval grows from the configured
one to its maximum, and after `polls_per_generation` polls the run continues as new with
its monitor state in the input.

A capture that fails (a permanent Azure error, status Error) still ends in a notification
and a Completed instance whose output says outcome "failed"; only a failure to notify
(after retries) fails the instance, so `rewind` can send the email later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import azure.durable_functions as df

from activities.network import (
    CaptureStatusInput,
    CheckLimitInput,
    ClearStaleInput,
    CreateCaptureInput,
    EnsureAgentInput,
    ResolveWatcherInput,
    check_limit,
    clear_stale_capture,
    create_capture,
    ensure_agent,
    get_capture_status,
    resolve_watcher,
    stop_capture,
)
from activities.notify import NotifyInput
from activities.notify import send as notify
from activities.spec import Activity
from activities.summary import SummariseInput, summarise_capture
from alertcap.domain.run import Monitor, RunInput, RunResult
from alertcap.domain.validation import local_path_os
from alertcap.domain.vm import capture_name_for, capture_prefix_for
from alertcap.domain.wire import Model
from alertcap.errors import AlertcapError, CaptureFailed, Unprocessable, permanent_from_dict

log = logging.getLogger("alertcap.orchestrator")

ORCHESTRATOR = "capture_orchestrator"
STOP_EVENT = "stop"  # the external event an operator raises to end a capture early

I = TypeVar("I", bound=Model)  # noqa: E741
O = TypeVar("O", bound=Model)  # noqa: E741
Steps = Generator[Any, Any, Any]
TERMINAL = ("Stopped", "Error")


def _iso(moment: datetime, timespec: str = "seconds") -> str:
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _now(ctx: Any) -> datetime:
    moment: datetime = ctx.current_utc_datetime
    return moment.replace(tzinfo=None)


def _input(ctx: Any) -> RunInput:
    raw = ctx.get_input()
    if isinstance(raw, str):  # some clients double-encode
        raw = json.loads(raw)
    return RunInput.from_dict(raw)


class _Run:
    """Per-replay helpers bound to one context: activity calls and custom status."""

    def __init__(self, ctx: Any, run_input: RunInput) -> None:
        self.ctx = ctx
        self.req = run_input.request
        policy = self.req.policy
        self.retry = df.RetryOptions(policy.retry_first_interval_ms, policy.retry_max_attempts)
        self.status: dict[str, Any] = {"vm": self.req.vm.name}

    def call(self, act: Activity[I, O], inp: I) -> Generator[Any, Any, O]:
        envelope = yield self.ctx.call_activity_with_retry(act.name, self.retry, inp.to_dict())
        if isinstance(envelope, str):
            envelope = json.loads(envelope)
        if "error" in envelope:
            raise permanent_from_dict(envelope["error"])
        return act.output.from_dict(envelope["value"])

    def publish(self, phase: str, **fields: Any) -> None:
        self.status = {**self.status, "phase": phase, **fields}
        self.ctx.set_custom_status(self.status)

    def info(self, message: str, *args: Any) -> None:
        if not self.ctx.is_replaying:
            log.info("[%s] " + message, self.ctx.instance_id, *args)


def _setup(run: _Run, started_at: str) -> Steps:
    """From alert to a created capture; returns the first Monitor."""
    req, policy, ctx = run.req, run.req.policy, run.ctx
    vm = req.vm
    run.publish("resolving-watcher")
    resolved = yield from run.call(resolve_watcher, ResolveWatcherInput(vm, req.location))
    watcher = resolved.watcher
    run.publish("checking-agent", watcher=watcher.name, region=resolved.vm_location)
    agent = yield from run.call(ensure_agent, EnsureAgentInput(vm, policy.install_agent))
    path = req.options.local_file_path
    if path and local_path_os(path) != agent.os_type:
        # Network Watcher would refuse it (Linux agents write under /var/captures only):
        # say so before creating anything.
        raise Unprocessable(f"localFilePath {path} is a {local_path_os(path)} path, but "
                            f"{vm.name} runs {agent.os_type}")
    name = capture_name_for(policy.capture_prefix, vm, _parse(started_at))
    run.publish("clearing-stale-capture", capture=name)
    cleared = yield from run.call(clear_stale_capture, ClearStaleInput(
        watcher, capture_prefix_for(policy.capture_prefix, vm), name))
    if cleared.deleted:
        run.info("deleted stale captures %s", ", ".join(cleared.deleted))
    run.publish("checking-limit")
    yield from run.call(check_limit,
                        CheckLimitInput(watcher, policy.capture_limit, ignore_name=name))
    run.publish("creating-capture")
    capture = yield from run.call(create_capture, CreateCaptureInput(
        watcher, vm, name, req.options, policy.storage_account_id))
    created = _now(ctx)
    deadline = created + timedelta(seconds=req.options.time_limit_seconds
                                   + policy.stop_grace_seconds)
    run.info("capture %s created on %s", name, vm.name)
    return Monitor(watcher=watcher, capture=capture, capture_created_at=_iso(created),
                   deadline=_iso(deadline), run_started_at=started_at,
                   interval_seconds=float(policy.poll_interval_seconds))


def _monitor(run: _Run, m: Monitor) -> Steps:
    """Poll until the capture ends. Returns (Monitor, CaptureStatus | None, stopped_by);
    a None status means: continue as new with this Monitor."""
    ctx, policy = run.ctx, run.req.policy
    ask = CaptureStatusInput(m.watcher, m.capture.name)
    deadline = _parse(m.deadline)
    polls = 0
    while True:
        status = yield from run.call(get_capture_status, ask)
        polls += 1
        m = replace(m, polls=m.polls + 1, last_status=status.status)
        now = _now(ctx)
        run.publish("capturing", captureStatus=status.status, polls=m.polls,
                    elapsedSeconds=int((now - _parse(m.capture_created_at)).total_seconds()),
                    deadline=m.deadline, generation=m.generation)
        if status.status in TERMINAL:
            return m, status, "network-watcher"
        if now >= deadline:
            run.info("deadline passed, stopping %s", m.capture.name)
            run.publish("stopping", reason="deadline")
            return m, (yield from run.call(stop_capture, ask)), "deadline"
        if polls >= policy.polls_per_generation:
            return replace(m, generation=m.generation + 1), None, None
        fire_at = min(now + timedelta(seconds=m.interval_seconds), deadline)
        # Computed in naive UTC; handed back in the context clock's own form (the SDK
        # compares it with current_utc_datetime, which is timezone-aware in Durable 1.7).
        timer = ctx.create_timer(fire_at.replace(tzinfo=ctx.current_utc_datetime.tzinfo))
        # A fresh wait each round, as Durable intends: the SDK hands a raised event to the
        # newest open wait of that name, so earlier, abandoned waits do not swallow it.
        stop_requested = ctx.wait_for_external_event(STOP_EVENT)
        winner = yield ctx.task_any([timer, stop_requested])
        if winner is stop_requested:
            if not timer.is_completed:
                timer.cancel()
            run.info("stop requested by an operator")
            run.publish("stopping", reason="operator")
            return m, (yield from run.call(stop_capture, ask)), "operator"
        m = replace(m, interval_seconds=min(m.interval_seconds * 1.5,
                                            float(policy.max_poll_interval_seconds)))


def capture_run(ctx: Any) -> Steps:
    """The orchestrator body: returns the RunResult dict (None when continuing as new)."""
    run_input = _input(ctx)
    run = _Run(ctx, run_input)
    req = run.req
    m = run_input.monitor
    # The run's identity within its instance (capture name, email idempotency key): to the
    # microsecond, because a VM's next run can start within the second its last one ended.
    started_at = m.run_started_at if m else _iso(_now(ctx), "microseconds")
    result = RunResult(instance_id=ctx.instance_id, vm=req.vm, outcome="failed",
                       requested_by=req.requested_by, alert=req.alert,
                       started_at=started_at, finished_at=started_at,
                       status_url=req.status_url)
    try:
        if m is None:
            m = yield from _setup(run, started_at)
        result = replace(result, watcher=m.watcher, capture=m.capture)
        m, status, stopped_by = yield from _monitor(run, m)
        if status is None:
            run.info("continuing as new (generation %d)", m.generation)
            ctx.continue_as_new(RunInput(req, m).to_dict())
            return None
        result = replace(result, capture_status=status, stopped_by=stopped_by, polls=m.polls)
        if status.status == "Error":
            raise CaptureFailed("Network Watcher reported the capture as failed: "
                                + (", ".join(status.errors) or "no error code given"))
        result = replace(result, outcome="captured", reason=status.stop_reason or stopped_by)
        if status.storage_path:
            run.publish("summarising")
            result = yield from _summarise(run, result, status.storage_path)
    except Exception as exc:  # the run failed: say why, stop what we started, notify
        error = exc if isinstance(exc, AlertcapError) else None
        reason = error.message if error else str(exc).split("\n")[0][:500]
        run.info("run failed: %s", reason)
        result = replace(result, outcome="failed", reason=reason,
                         error=error.to_dict() if error else {"type": "ActivityFailed",
                                                              "message": reason})
        if m is not None and result.capture_status is None:
            result = yield from _stop_after_failure(run, result, m)

    result = replace(result, finished_at=_iso(_now(ctx)))
    run.publish("notifying", outcome=result.outcome)
    notification = yield from run.call(
        notify, NotifyInput(result, f"{ctx.instance_id}/{started_at}"))
    result = replace(result, notification=notification)
    run.publish("done", outcome=result.outcome, reason=result.reason)
    return result.to_dict()


def _summarise(run: _Run, result: RunResult, storage_path: str) -> Steps:
    try:
        policy = run.req.policy
        summary = yield from run.call(summarise_capture, SummariseInput(
            storage_path, top=policy.summary_top, link_ttl_hours=policy.link_ttl_hours))
    except Exception as exc:  # a capture without a summary is still worth the email
        return replace(result, warnings=(*result.warnings,
                                         f"no summary: {str(exc).splitlines()[0][:300]}"))
    return replace(result, summary=summary, warnings=(*result.warnings, *summary.warnings))


def _stop_after_failure(run: _Run, result: RunResult, m: Monitor) -> Steps:
    """Do not leave a capture running when the run gives up on it."""
    try:
        status = yield from run.call(stop_capture, CaptureStatusInput(m.watcher, m.capture.name))
        return replace(result, capture_status=status, stopped_by="failure")
    except Exception as exc:
        return replace(result, warnings=(*result.warnings,
                                         f"could not stop {m.capture.name}: "
                                         f"{str(exc).splitlines()[0][:300]}"))

