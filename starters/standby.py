"""Standby triggers (the rings themselves: orchestrators/standby.py, activities/standby.py):

    standby_timer           every 5 minutes (STANDBY_SCHEDULE): the sweep
    POST /api/standby/sweep function key; the sweep now (the local host fires no timers),
                            answers what it found and started
    GET  /api/standby       function key; each standby VM's keeper and ring state

The sweep: find the standby VMs (listed ids, tagged VMs in listed groups) and start a
keeper for each one that has none running. Keepers remove their own ring when their VM
leaves standby, so the sweep never stops anything.

Boundary: trigger plumbing; settings that do not load are a JSON error, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from activities.standby import find_standby_vms
from alertcap import settings
from alertcap.domain.standby import keeper_instance_id, ring_capture_name
from alertcap.errors import AlertcapError
from alertcap.sdk.clients import get_clients
from alertcap.settings import Settings
from orchestrators.standby import KEEPER, KeeperInput
from starters.http import _json, _status_name

log = logging.getLogger("alertcap.standby")

bp = df.Blueprint()

STANDBY_SCHEDULE = "0 */5 * * * *"
_LIVE = {"Running", "Pending", "ContinuedAsNew"}


async def sweep(client: Any, s: Settings) -> dict[str, Any]:
    """Start a keeper for every standby VM without a live one. The whole sweep's report."""
    vms, problems = await asyncio.to_thread(find_standby_vms, get_clients(), s.standby)
    started, running = [], []
    for vm in vms:
        instance = keeper_instance_id(vm)
        if _status_name(await client.get_status(instance)) in _LIVE:
            running.append(instance)
            continue
        await client.start_new(KEEPER, instance, KeeperInput(vm, s.standby, s.policy).to_dict())
        started.append(instance)
    if problems:
        log.warning("standby sweep: %s", "; ".join(problems))
    return {"vms": [vm.id for vm in vms], "started": started, "running": running,
            "problems": problems}


async def state(client: Any, s: Settings) -> dict[str, Any]:
    vms, problems = await asyncio.to_thread(find_standby_vms, get_clients(), s.standby)
    out = []
    for vm in vms:
        instance = keeper_instance_id(vm)
        st = await client.get_status(instance)
        out.append({"vmId": vm.id, "instanceId": instance,
                    "ring": ring_capture_name(s.policy.capture_prefix, vm),
                    "keeper": _status_name(st), "state": getattr(st, "custom_status", None)})
    return {"standby": out, "problems": problems,
            "ring": {"fileCount": s.standby.ring.file_count,
                     "fileSizeInBytes": s.standby.ring.file_size_bytes,
                     "sessionTimeLimitInSeconds": s.standby.ring.session_seconds,
                     "bytesPerVm": s.standby.ring.ring_bytes},
            "lookbackSeconds": s.policy.standby_lookback_seconds,
            "mode": s.policy.standby_mode}


async def _answer(call: Any) -> func.HttpResponse:
    try:
        return _json(await call(settings.load()), 200)
    except AlertcapError as exc:  # invalid settings: named, with their status
        return _json(exc.to_body(), exc.status)


@bp.route(route="standby/sweep", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def standby_sweep(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    return await _answer(lambda s: sweep(client, s))


@bp.route(route="standby", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def standby_state(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    return await _answer(lambda s: state(client, s))


@bp.timer_trigger(arg_name="timer", schedule=STANDBY_SCHEDULE, run_on_startup=False)
@bp.durable_client_input(client_name="client")
async def standby_timer(timer: func.TimerRequest, client: Any) -> None:
    try:
        report = await sweep(client, settings.load())
    except AlertcapError as exc:
        log.error("standby sweep: %s", exc.message)
        return
    log.info("standby sweep: %d VMs, started %d keepers", len(report["vms"]),
             len(report["started"]))
