"""Big alerts: one orchestration per alert hands its targets to the per-target runs.

    webhook (answers at once) -> fanout_orchestrator(targets, cap)
        -> batches of at most `cap` capture runs as sub-orchestrations (task_all): the
           instance id of each derives from its target, so a target whose run is already
           live is not started twice (Durable refuses the id: reported as "running")
        -> one digest email for every failure of the alert (children send none)

Boundary: deterministic (no I/O; activities and sub-orchestrations only). Concurrency:
at most `cap` runs of one alert at a time keeps ARM calls and the watcher's sessions
bounded; each run's own activity retries honour ARM's 429 Retry-After.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from alertcap.domain.run import (
    CURRENT_VERSION,
    AlertInfo,
    CaptureOptions,
    CaptureRequest,
    RunInput,
    RunPolicy,
    RunResult,
)
from alertcap.domain.targets import Scope, instance_id_for_target
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key
from orchestrators.capture import ORCHESTRATOR
from orchestrators.deliver import deliver
from orchestrators.steps import Run, Steps, decoded, iso

FANOUT_ORCHESTRATOR = "fanout_orchestrator"
MAX_DIGEST_LINES = 50


@dataclass(frozen=True)
class FanoutTarget(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    scope: Scope | None = None


@dataclass(frozen=True)
class FanoutInput(Model):
    targets: tuple[FanoutTarget, ...]
    alert: AlertInfo = field(default_factory=AlertInfo)
    options: CaptureOptions = field(default_factory=CaptureOptions)
    policy: RunPolicy = field(default_factory=RunPolicy)
    location: str | None = None
    concurrency: int = 20
    status_url: str | None = None


@dataclass(frozen=True)
class TargetOutcome(Model):
    instance_id: str
    vm: VmRef = field(metadata=json_key("vm_id"))
    outcome: str  # "captured" | "failed" | "running" (a live run of it was already there)
    reason: str | None = None


@dataclass(frozen=True)
class FanoutResult(Model):
    instance_id: str
    alert: AlertInfo
    targets: int
    captured: int = 0
    failed: int = 0
    already_running: int = 0
    outcomes: tuple[TargetOutcome, ...] = ()
    digest: str | None = None  # the failure digest's notification status


def _outcome(instance_id: str, vm: VmRef, task: Any) -> TargetOutcome:
    result = getattr(task, "result", None)
    # A failed task's result is the exception (the SDK's TaskBase.set_value with is_error;
    # TaskOrchestrationExecutor makes it from the SubOrchestrationInstanceFailed reason).
    # TaskBase has no is_faulted: reading one always said "not failed".
    if isinstance(result, BaseException):
        text = (str(result) or "the run failed to start").split("\n")[0].strip()
        if "already exists" in text:
            return TargetOutcome(instance_id, vm, "running", "a run of this target is live")
        return TargetOutcome(instance_id, vm, "failed", text)
    out = decoded(result)
    if isinstance(out, dict):
        return TargetOutcome(instance_id, vm, str(out.get("outcome") or "failed"),
                             out.get("reason"))
    return TargetOutcome(instance_id, vm, "failed", "the run returned no result")


def _digest(fan: FanoutInput, instance_id: str, failed: list[TargetOutcome],
            total: int, started_at: str, finished_at: str) -> RunResult:
    """The digest travels as a failed RunResult of the first failed target: the notify
    activity and its renderer stay as they are; the reason lists every failure."""
    lines = [f"{o.vm.name}: {o.reason or 'failed'}" for o in failed[:MAX_DIGEST_LINES]]
    if len(failed) > MAX_DIGEST_LINES:
        lines.append(f"... and {len(failed) - MAX_DIGEST_LINES} more (see {instance_id})")
    return RunResult(
        instance_id=instance_id, vm=failed[0].vm, outcome="failed", requested_by="alert",
        alert=fan.alert, started_at=started_at, finished_at=finished_at,
        reason=f"{len(failed)} of {total} targets of this alert failed: " + "; ".join(lines),
        error={"type": "FanoutDigest", "failed": len(failed), "targets": total},
        status_url=fan.status_url)


def fanout_run(ctx: Any) -> Steps:
    fan = FanoutInput.from_dict(decoded(ctx.get_input()))
    run = Run(ctx, fan.policy, {"alert": fan.alert.alert_rule, "targets": len(fan.targets)})
    started_at = iso(run.now, "microseconds")
    outcomes: list[TargetOutcome] = []
    cap = max(1, fan.concurrency)
    for start in range(0, len(fan.targets), cap):
        batch = fan.targets[start:start + cap]
        ids = [instance_id_for_target(t.vm, t.scope) for t in batch]
        tasks = [ctx.call_sub_orchestrator(ORCHESTRATOR, RunInput(CaptureRequest(
            vm=t.vm, scope=t.scope, location=fan.location, alert=fan.alert,
            options=fan.options, policy=fan.policy, requested_by="alert",
            digest_of=ctx.instance_id), version=CURRENT_VERSION).to_dict(), iid)
            for t, iid in zip(batch, ids, strict=True)]
        run.publish("starting", started=start + len(batch), of=len(fan.targets))
        try:
            yield ctx.task_all(tasks)
        except Exception:
            # task_all fails at its first failed child (a live run of that target):
            # wait for every other one; each child's own outcome is read below.
            for task in tasks:
                with contextlib.suppress(Exception):
                    yield task
        outcomes.extend(_outcome(iid, t.vm, task)
                        for t, iid, task in zip(batch, ids, tasks, strict=True))
    failed = [o for o in outcomes if o.outcome == "failed"]
    result = FanoutResult(
        instance_id=ctx.instance_id, alert=fan.alert, targets=len(fan.targets),
        captured=sum(o.outcome == "captured" for o in outcomes), failed=len(failed),
        already_running=sum(o.outcome == "running" for o in outcomes),
        outcomes=tuple(outcomes))
    if failed:
        run.publish("notifying", failed=len(failed))
        digest = _digest(fan, ctx.instance_id, failed, len(fan.targets), started_at,
                         iso(run.now))
        sent = yield from deliver(run, digest, f"{ctx.instance_id}/{started_at}/digest")
        result = replace(result, digest=sent.status)
    run.publish("done", captured=result.captured, failed=result.failed,
                alreadyRunning=result.already_running)
    return result.to_dict()
