"""The capture workflow, as a plain generator over the Durable orchestration context.

    preflight (watcher cached; VM read and capture listing concurrent; stale clean-up and
    limit check from that one listing) -> create_capture
    [runs before version 3: resolve_watcher -> ensure_agent -> clear_stale_capture ->
     check_limit -> create_capture]
    -> monitor loop: get_capture_status, custom status, durable timer (or the operator's
       "stop" event); stale captures of this VM swept; stop_capture at the deadline
       (time limit + grace)
    (version 6: harvest_standby_ring first, for a VM with a standby ring; orchestrators/
     standby.py)
    -> summarise_capture (summarise_files with harvested ring files) -> deliver the
       notification (orchestrators/deliver.py)
    -> save_run (the run record outlives the instance) -> RunResult

Deterministic: only the context's clock, timers, events and activities; no I/O, no env.
History stays bounded for a 5-hour capture: the poll interval grows from the configured
one to its maximum, and after `polls_per_generation` polls the run continues as new with
its monitor state in the input.

A capture that fails (a permanent Azure error, status Error) still ends in a notification
and a Completed instance whose output says outcome "failed". A notification that cannot be
sent is retried here on durable timers; the instance completes either way, so nothing needs
rewind (a preview API in Azure that fails on replay around retry timers).

Versioning: `alertcap.domain.run.CURRENT_VERSION` says when a change needs a gate. Gated
here (version 2): the clean-up after a failed create, and the stale-capture sweep while
monitoring; (version 3): the setup as one concurrent `preflight` activity (watcher cached)
and a create that PUTs first (VMs); (version 4) delivery to every channel at once
(`deliver_all`); (version 5) a scale set's per-instance summary, and no failure email from a
run a fan-out started (orchestrators/fanout.py sends one digest for the alert).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

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
    delete_capture,
    ensure_agent,
    get_capture_status,
    resolve_watcher,
    stop_capture,
)
from activities.preflight import PreflightInput, preflight
from activities.records import save_run
from activities.summary import SummariseInput, summarise_capture, summarise_scale_set_capture
from alertcap.domain.run import CaptureRequest, Monitor, Notification, RunInput, RunResult
from alertcap.domain.targets import capture_name_for_target, capture_prefix_for_target
from alertcap.domain.validation import local_path_os
from alertcap.errors import AlertcapError, CaptureFailed, Unprocessable
from orchestrators import standby
from orchestrators.deliver import deliver, deliver_all
from orchestrators.steps import Run, Steps, decoded, first_line, iso, parse

ORCHESTRATOR = "capture_orchestrator"
STOP_EVENT = "stop"  # the external event an operator raises to end a capture early
TERMINAL = ("Stopped", "Error")
SWEEP_EVERY_POLLS = 4  # how often a run looks for a stale capture of its VM landing late


def _setup(run: Run, req: CaptureRequest, started_at: str, version: int) -> Steps:
    """From alert to a created capture; returns the first Monitor."""
    policy, vm = run.policy, req.vm
    name = capture_name_for_target(policy.capture_prefix, vm, req.scope, parse(started_at))
    fast = version >= 3 and not vm.is_scale_set
    if fast:
        # One activity, its ARM calls concurrent, the watcher cached (activities/preflight).
        run.publish("preflight", capture=name)
        pre = yield from run.call(preflight, PreflightInput(
            vm, name, capture_prefix_for_target(policy.capture_prefix, vm, None),
            policy.capture_limit, req.location, policy.install_agent, req.options.local_file_path))
        if pre.refused:
            raise Unprocessable(pre.refused)
        if pre.deleted:
            run.info("deleted stale captures %s", ", ".join(pre.deleted))
        watcher = pre.watcher
    else:
        watcher = yield from _preflight_v2(run, req, name)
    run.publish("creating-capture")
    try:
        capture = yield from run.call(create_capture, CreateCaptureInput(
            watcher, vm, name, req.options, policy.storage_account_id, scope=req.scope,
            put_first=fast))
    except Exception:
        if version >= 2:
            # The create may have landed even though its answer did not (a lost progress
            # URL, a timeout): nothing of ours may run unwatched, so remove it by name.
            run.publish("removing-failed-capture")
            try:
                yield from run.call(delete_capture, CaptureStatusInput(watcher, name))
            except Exception as exc:
                run.info("could not remove %s: %s", name, first_line(exc))
        raise
    created = run.now
    deadline = created + timedelta(seconds=req.options.time_limit_seconds
                                   + policy.stop_grace_seconds)
    run.info("capture %s created on %s", name, vm.name)
    return Monitor(watcher=watcher, capture=capture, capture_created_at=iso(created),
                   deadline=iso(deadline), run_started_at=started_at,
                   interval_seconds=float(policy.poll_interval_seconds))


def _preflight_v2(run: Run, req: CaptureRequest, name: str) -> Steps:
    """Runs started before version 3 replay this: the four setup activities one after
    another (five ARM round trips before the PUT); returns the watcher."""
    policy, vm = run.policy, req.vm
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
    if agent.not_upgraded:
        run.publish("checking-agent", notUpgraded=list(agent.not_upgraded[:50]))
        run.info("instances not on the latest model: %s", ", ".join(agent.not_upgraded[:50]))
    run.publish("clearing-stale-capture", capture=name)
    cleared = yield from run.call(clear_stale_capture, ClearStaleInput(
        watcher, capture_prefix_for_target(policy.capture_prefix, vm, req.scope), name))
    if cleared.deleted:
        run.info("deleted stale captures %s", ", ".join(cleared.deleted))
    run.publish("checking-limit")
    yield from run.call(check_limit,
                        CheckLimitInput(watcher, policy.capture_limit, ignore_name=name))
    return watcher


def _monitor(run: Run, req: CaptureRequest, m: Monitor, version: int) -> Steps:
    """Poll until the capture ends. Returns (Monitor, CaptureStatus | None, stopped_by);
    a None status means: continue as new with this Monitor."""
    ctx, policy = run.ctx, run.policy
    ask = CaptureStatusInput(m.watcher, m.capture.name)
    deadline = parse(m.deadline)
    polls = 0
    while True:
        status = yield from run.call(get_capture_status, ask)
        polls += 1
        m = replace(m, polls=m.polls + 1, last_status=status.status)
        now = run.now
        run.publish("capturing", captureStatus=status.status, polls=m.polls,
                    elapsedSeconds=int((now - parse(m.capture_created_at)).total_seconds()),
                    deadline=m.deadline, generation=m.generation)
        if status.status in TERMINAL:
            return m, status, "network-watcher"
        if version >= 2 and m.polls % SWEEP_EVERY_POLLS == 1:
            # A capture of this VM from an earlier run whose create landed after we cleared
            # (that run terminated while its PUT was held by throttling): only one of ours
            # may run per VM.
            swept = yield from run.call(clear_stale_capture, ClearStaleInput(
                m.watcher, capture_prefix_for_target(policy.capture_prefix, req.vm, req.scope),
                m.capture.name))
            if swept.deleted:
                run.info("removed late stale captures %s", ", ".join(swept.deleted))
        if now >= deadline:
            run.info("deadline passed, stopping %s", m.capture.name)
            run.publish("stopping", reason="deadline")
            return m, (yield from run.call(stop_capture, ask)), "deadline"
        if polls >= policy.polls_per_generation:
            return replace(m, generation=m.generation + 1), None, None
        timer = run.timer(min(now + timedelta(seconds=m.interval_seconds), deadline))
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
    run_input = RunInput.from_dict(decoded(ctx.get_input()))
    req, m, version = run_input.request, run_input.monitor, run_input.version
    run = Run(ctx, req.policy, {"vm": req.vm.name})
    # The run's identity within its instance (capture name, email idempotency key): to the
    # microsecond, because a VM's next run can start within the second its last one ended.
    started_at = m.run_started_at if m else iso(run.now, "microseconds")
    result = RunResult(instance_id=ctx.instance_id, vm=req.vm, outcome="failed",
                       requested_by=req.requested_by, alert=req.alert,
                       started_at=started_at, finished_at=started_at,
                       status_url=req.status_url, harvest=run_input.harvest)
    try:
        if m is None and version >= 6 and req.standby:
            result = yield from standby.harvest_first(run, req, result)
        if standby.harvest_only(run, result):
            result = replace(result, outcome="captured", reason="harvested (standby)")
            run.publish("summarising")
            result = yield from standby.summarise_with_harvest(run, result, None)
        else:
            if m is None:
                m = yield from _setup(run, req, started_at, version)
            result = replace(result, watcher=m.watcher, capture=m.capture)
            m, status, stopped_by = yield from _monitor(run, req, m, version)
            if status is None:
                run.info("continuing as new (generation %d)", m.generation)
                ctx.continue_as_new(RunInput(req, m, version, result.harvest).to_dict())
                return None
            result = replace(result, capture_status=status, stopped_by=stopped_by, polls=m.polls)
            if status.status == "Error":
                raise CaptureFailed("Network Watcher reported the capture as failed: "
                                    + (", ".join(status.errors) or "no error code given"))
            result = replace(result, outcome="captured", reason=status.stop_reason or stopped_by)
            if status.storage_path:
                run.publish("summarising")
                result = yield from (
                    standby.summarise_with_harvest(run, result, status.storage_path)
                    if result.harvest and result.harvest.files
                    else _summarise(run, result, status.storage_path,
                                    req.vm.is_scale_set and version >= 5))
    except Exception as exc:  # the run failed: say why, stop what we started, notify
        error = exc if isinstance(exc, AlertcapError) else None
        reason = error.message if error else first_line(exc, 500)
        run.info("run failed: %s", reason)
        result = replace(result, outcome="failed", reason=reason,
                         error=error.to_dict() if error else {"type": "ActivityFailed",
                                                              "message": reason})
        if m is not None and result.capture_status is None:
            result = yield from _stop_after_failure(run, result, m)

    result = replace(result, finished_at=iso(run.now))
    if version >= 5 and req.digest_of and result.outcome == "failed":
        # One alert, one failure email: the fan-out that started this run sends the digest.
        notification = Notification(message_id="", recipients=(),
                                    status=f"skipped: in the digest of {req.digest_of}")
    else:
        run.publish("notifying", outcome=result.outcome)
        key = f"{ctx.instance_id}/{started_at}"
        if version >= 4:  # every channel at once, each retried on its own
            notification, channels = yield from deliver_all(run, result, key)
            result = replace(result, channels=channels)
        else:
            notification = yield from deliver(run, result, key)
    result = replace(result, notification=notification)
    result = yield from _keep_record(run, result)
    run.publish("done", outcome=result.outcome, reason=result.reason,
                notification=notification.status)
    return result.to_dict()


def _summarise(run: Run, result: RunResult, storage_path: str, per_instance: bool) -> Steps:
    act = summarise_scale_set_capture if per_instance else summarise_capture
    try:
        summary = yield from run.call(act, SummariseInput(
            storage_path, top=run.policy.summary_top, link_ttl_hours=run.policy.link_ttl_hours,
            alert=result.alert.signal()))
    except Exception as exc:  # a capture without a summary is still worth the email
        return replace(result, warnings=(*result.warnings, f"no summary: {first_line(exc)}"))
    return replace(result, summary=summary, warnings=(*result.warnings, *summary.warnings))


def _stop_after_failure(run: Run, result: RunResult, m: Monitor) -> Steps:
    """Do not leave a capture running when the run gives up on it."""
    try:
        status = yield from run.call(stop_capture, CaptureStatusInput(m.watcher, m.capture.name))
        return replace(result, capture_status=status, stopped_by="failure")
    except Exception as exc:
        return replace(result, warnings=(*result.warnings,
                                         f"could not stop {m.capture.name}: {first_line(exc)}"))


def _keep_record(run: Run, result: RunResult) -> Steps:
    """The instance id derives from the VM, so the next run replaces this instance: keep
    the result where it outlives it. A record that cannot be written is a warning."""
    try:
        saved = yield from run.call(save_run, result)
        return replace(result, record=saved.location)
    except Exception as exc:
        return replace(result, warnings=(*result.warnings,
                                         f"run record not kept: {first_line(exc)}"))
