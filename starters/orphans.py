"""The orphan sweep: no capture of ours keeps running after its run is gone.

    orphan_sweep_timer       every ALERTCAP_ORPHAN_SWEEP_MINUTES (5): the sweep
    POST /api/orphans/sweep  function key; the sweep now (the local host fires no timers),
                             answers its report:
                             {"stopped": [...], "kept": n, "errors": [...], ...}

A run that is terminated or purged (or fails where it cannot stop its capture) leaves its
capture running until Network Watcher's time limit (up to 5 hours). The sweep lists our run
captures on the watchers of ALERTCAP_ORPHAN_SWEEP_SCOPES (activities/orphans.py), asks the
Durable client for the one instance each capture can belong to, and stops + deletes the
still-running ones whose instance is not live (Pending, Running, ContinuedAsNew, Suspended):
Terminated, Failed, Canceled, Completed, or unknown (purged).

No grace period: a run publishes its capture name and is Running before its create_capture
activity is dispatched, and the PUT can only land while that activity runs, so a capture
whose instance is not live is never one a live run is about to adopt. Its instance id may
meanwhile belong to a *new* run of the same VM (re-alert after a terminate): then the old
capture is kept here, and the live run removes it itself (capture.py's stale sweep every 4
polls, version >= 2), or the sweep does once that run ends. The sweep only acts on a name it
saw in this listing, so a new run's own capture (a different, time-stamped name) is never
touched.

Boundary: trigger plumbing and the decision; ARM calls in activities/orphans.py. Settings
that do not load are a JSON error, never a 500; a 403 on a listing is in the report.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.orphans import ENDED, OurCapture, list_ours, settle
from alertcap import settings
from alertcap.errors import AlertcapError
from alertcap.sdk.clients import get_clients
from alertcap.settings import Settings, orphan_sweep_schedule
from starters.http import _LIVE, _json, _status_name

log = logging.getLogger("alertcap.orphans")

bp = df.Blueprint()

SWEEP_SECONDS = 150  # under the 230 s an HTTP trigger may take in Azure, and the timer period
STATUS_LOOKUPS = 10  # Durable status reads at once


def ended_in_output(output: Any, name: str) -> bool:
    """The finished run says it saw this capture end (Stopped or Error): no ARM call needed."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except ValueError:
            return False
    if not isinstance(output, dict):
        return False
    capture, status = output.get("capture") or {}, output.get("capture_status") or {}
    return (isinstance(capture, dict) and capture.get("name") == name
            and isinstance(status, dict) and status.get("status") in ENDED)


async def _owners(client: Any, ids: set[str]) -> dict[str, tuple[str | None, Any] | str]:
    """instance id -> (runtime status or None when unknown, output), or an error text."""
    gate = asyncio.Semaphore(STATUS_LOOKUPS)

    async def one(iid: str) -> tuple[str, tuple[str | None, Any] | str]:
        async with gate:
            try:
                status = await client.get_status(iid)
            except Exception as exc:  # the task hub did not answer: keep, say so
                return iid, f"status of {iid}: {type(exc).__name__}: {str(exc)[:200]}"
            return iid, (_status_name(status), getattr(status, "output", None))

    return dict(await asyncio.gather(*(one(i) for i in sorted(ids))))


async def sweep(client: Any, s: Settings) -> dict[str, Any]:
    """One sweep; its report."""
    started = time.monotonic()
    deadline = started + SWEEP_SECONDS
    if not s.orphan_sweep_scopes:
        return {"stopped": [], "kept": 0, "scanned": 0, "truncated": False, "errors": [
            "ALERTCAP_ORPHAN_SWEEP_SCOPES is empty: set it to the resource groups of the "
            "Network Watchers (the deployment sets watcherResourceGroupIds)"], "seconds": 0.0,
            "everyMinutes": s.orphan_sweep_minutes}
    clients = get_clients()
    captures, problems, truncated = await asyncio.to_thread(
        list_ours, clients, s.orphan_sweep_scopes, s.policy.capture_prefix, deadline)
    errors = [*problems, *(c.problem for c in captures if c.problem)]
    owners = await _owners(client, {c.instance_id for c in captures if c.instance_id})
    kept, orphans, owner_of = 0, [], {}
    for c in captures:
        found = owners.get(c.instance_id) if c.instance_id else None
        if found is None or isinstance(found, str):
            kept += 1  # whose it is cannot be told (named in errors): never stopped
            if isinstance(found, str):
                errors.append(found)
            continue
        runtime, output = found
        if runtime in _LIVE or ended_in_output(output, c.name):
            kept += 1
            continue
        orphans.append(c)
        owner_of[c.name] = runtime
    settled = await asyncio.to_thread(settle, clients, orphans, deadline)
    stopped: list[dict[str, Any]] = []
    for x in settled:
        if x.stopped:
            stopped.append(_stopped(x.capture, owner_of[x.capture.name], x.status))
        else:
            kept += 1
            if x.error:
                errors.append(x.error)
    return {"stopped": stopped, "kept": kept, "errors": errors, "scanned": len(captures),
            "truncated": truncated, "seconds": round(time.monotonic() - started, 1),
            "everyMinutes": s.orphan_sweep_minutes}


def _stopped(c: OurCapture, runtime: str | None, status: str | None) -> dict[str, Any]:
    return {**c.report(), "run": runtime or "gone (purged)", "captureStatus": status}


@bp.route(route="orphans/sweep", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def orphan_sweep(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    try:
        return _json(await sweep(client, settings.load()), 200)
    except AlertcapError as exc:  # invalid settings: named, with their status
        return _json(exc.to_body(), exc.status)


@bp.timer_trigger(arg_name="timer", schedule=orphan_sweep_schedule(), run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def orphan_sweep_timer(timer: func.TimerRequest, client: Any) -> None:
    try:
        report = await sweep(client, settings.load())
    except AlertcapError as exc:
        log.error("orphan sweep: %s", exc.message)
        return
    log.info("orphan sweep: %d of ours seen, stopped %d, kept %d, %d errors",
             report["scanned"], len(report["stopped"]), report["kept"], len(report["errors"]))
    for error in report["errors"]:
        log.warning("orphan sweep: %s", error)
