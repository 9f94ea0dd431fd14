"""The activity blueprint: each function decodes its input dataclass and hands it to an
adapter (network.py, summary.py, notify.py) through `_runtime.run`. No decisions here:
the orchestrator decides what happens next.
"""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities import network, notify, summary
from activities._runtime import run
from alertcap import names
from alertcap.model import (
    CaptureStatusInput,
    CheckLimitInput,
    ClearStaleInput,
    CreateCaptureInput,
    EnsureAgentInput,
    NotifyInput,
    ResolveWatcherInput,
    SummariseInput,
)

bp = df.Blueprint()


@bp.function_name(names.RESOLVE_WATCHER)
@bp.activity_trigger(input_name="payload", activity=names.RESOLVE_WATCHER)
def resolve_watcher(payload: Any) -> dict[str, Any]:
    return run(names.RESOLVE_WATCHER, payload, ResolveWatcherInput, network.resolve_watcher)


@bp.function_name(names.ENSURE_AGENT)
@bp.activity_trigger(input_name="payload", activity=names.ENSURE_AGENT)
def ensure_agent(payload: Any) -> dict[str, Any]:
    return run(names.ENSURE_AGENT, payload, EnsureAgentInput, network.ensure_agent)


@bp.function_name(names.CLEAR_STALE_CAPTURE)
@bp.activity_trigger(input_name="payload", activity=names.CLEAR_STALE_CAPTURE)
def clear_stale_capture(payload: Any) -> dict[str, Any]:
    return run(names.CLEAR_STALE_CAPTURE, payload, ClearStaleInput, network.clear_stale_capture)


@bp.function_name(names.CHECK_LIMIT)
@bp.activity_trigger(input_name="payload", activity=names.CHECK_LIMIT)
def check_limit(payload: Any) -> dict[str, Any]:
    return run(names.CHECK_LIMIT, payload, CheckLimitInput, network.check_limit)


@bp.function_name(names.CREATE_CAPTURE)
@bp.activity_trigger(input_name="payload", activity=names.CREATE_CAPTURE)
def create_capture(payload: Any) -> dict[str, Any]:
    return run(names.CREATE_CAPTURE, payload, CreateCaptureInput, network.create_capture)


@bp.function_name(names.GET_CAPTURE_STATUS)
@bp.activity_trigger(input_name="payload", activity=names.GET_CAPTURE_STATUS)
def get_capture_status(payload: Any) -> dict[str, Any]:
    return run(names.GET_CAPTURE_STATUS, payload, CaptureStatusInput, network.get_capture_status)


@bp.function_name(names.STOP_CAPTURE)
@bp.activity_trigger(input_name="payload", activity=names.STOP_CAPTURE)
def stop_capture(payload: Any) -> dict[str, Any]:
    return run(names.STOP_CAPTURE, payload, CaptureStatusInput, network.stop_capture)


@bp.function_name(names.SUMMARISE_CAPTURE)
@bp.activity_trigger(input_name="payload", activity=names.SUMMARISE_CAPTURE)
def summarise_capture(payload: Any) -> dict[str, Any]:
    return run(names.SUMMARISE_CAPTURE, payload, SummariseInput, summary.summarise_capture)


@bp.function_name(names.NOTIFY)
@bp.activity_trigger(input_name="payload", activity=names.NOTIFY)
def notify_oncall(payload: Any) -> dict[str, Any]:
    return run(names.NOTIFY, payload, NotifyInput, notify.send)
