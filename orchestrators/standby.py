"""Standby rings over time: the keeper orchestration (one eternal instance per standby VM,
`alertcap-standby-<vm>-<hash>`) and the harvest step a capture run takes first.

Keeper: look at the ring (activity keep_standby_ring: create, renew, restart, or remove it
when the VM left standby), publish what it found as custom status (GET
/api/standby, or the instance's status), sleep on a durable timer, continue as new. One
activity and one timer per generation, so its history never grows.

Deterministic: the context's clock, timers and activities only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from activities.standby import (
    HarvestInput,
    KeepRingInput,
    SummariseFilesInput,
    harvest_standby_ring,
    keep_standby_ring,
    summarise_files,
)
from alertcap.domain.run import CaptureRequest, RunPolicy, RunResult
from alertcap.domain.standby import Harvest, StandbySettings, ring_capture_name
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key
from orchestrators.steps import Run, Steps, decoded, first_line, iso

KEEPER = "standby_keeper"


@dataclass(frozen=True)
class KeeperInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    standby: StandbySettings
    policy: RunPolicy
    generation: int = 0


def keeper_run(ctx: Any) -> Steps:
    inp = KeeperInput.from_dict(decoded(ctx.get_input()))
    run = Run(ctx, inp.policy, {"vm": inp.vm.name, "role": "standby"})
    name = ring_capture_name(inp.policy.capture_prefix, inp.vm)
    try:
        state = yield from run.call(keep_standby_ring, KeepRingInput(
            inp.vm, name, inp.standby.ring, inp.policy.storage_account_id,
            inp.standby.renew_before_seconds))
        run.publish("released" if not state.opted_in else "standby", ring=name,
                    action=state.action, ringStatus=state.status, startedAt=state.started_at,
                    sessionEndsAt=state.session_ends_at, folder=state.folder,
                    detail=state.detail, checkedAt=iso(run.now), generation=inp.generation)
        if not state.opted_in:
            return state.to_dict()
    except Exception as exc:  # keep trying: a broken ring is reported, the keeper lives on
        run.info("standby ring of %s: %s", inp.vm.name, first_line(exc))
        run.publish("ring-error", ring=name, error=first_line(exc), checkedAt=iso(run.now),
                    generation=inp.generation)
    yield from run.sleep_until(run.now + timedelta(seconds=inp.standby.check_seconds))
    ctx.continue_as_new(replace(inp, generation=inp.generation + 1).to_dict())
    return None


def harvest_first(run: Run, req: CaptureRequest, result: RunResult) -> Steps:
    """Collect the VM's ring files before they rotate away. A VM without a ring gets
    Harvest(standby=False) and nothing else changes; a harvest that fails is a warning and
    the after-alert capture goes ahead."""
    run.publish("harvesting")
    policy = run.policy
    alert_time = req.alert.fired_at or result.started_at
    try:
        harvest = yield from run.call(harvest_standby_ring, HarvestInput(
            req.vm, ring_capture_name(policy.capture_prefix, req.vm), alert_time,
            policy.standby_lookback_seconds,
            result.started_at.replace(":", "").replace("-", "").replace(".", ""),
            req.location, policy.link_ttl_hours))
    except Exception as exc:
        return replace(result, harvest=Harvest(standby=True, warnings=(
            f"standby harvest failed: {first_line(exc)}",)), warnings=(
            *result.warnings, f"standby harvest failed: {first_line(exc)}"))
    if harvest.standby:
        run.info("harvested %d ring files, missing: %s", len(harvest.files),
                 "; ".join(harvest.missing) or "nothing")
    warnings = (*harvest.warnings, *(f"no evidence for {m}" for m in harvest.missing))
    return replace(result, harvest=harvest, warnings=(*result.warnings, *warnings))


def harvest_only(run: Run, result: RunResult) -> bool:
    h = result.harvest
    return bool(h and h.files) and run.policy.standby_mode == "harvest-only"


def summarise_with_harvest(run: Run, result: RunResult, after: str | None) -> Steps:
    """Harvested files then the after-alert capture, in time order, as one capture."""
    h = result.harvest
    paths = tuple(f.url for f in (h.files if h else ())) + ((after,) if after else ())
    try:
        summary = yield from run.call(summarise_files, SummariseFilesInput(
            paths, alert_time=h.alert_time if h else None, top=run.policy.summary_top,
            link_ttl_hours=run.policy.link_ttl_hours))
    except Exception as exc:
        return replace(result, warnings=(*result.warnings, f"no summary: {first_line(exc)}"))
    return replace(result, summary=summary, warnings=(*result.warnings, *summary.warnings))
