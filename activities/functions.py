"""The activity blueprint: one table from function name to (input dataclass, adapter).

Each activity decodes its input dataclass and hands it to its adapter (network.py,
summary.py, notify.py) through `_runtime.run`. No decisions here: the orchestrator
decides what happens next.
"""

from __future__ import annotations

from collections.abc import Callable
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
    Model,
    NotifyInput,
    ResolveWatcherInput,
    SummariseInput,
)

bp = df.Blueprint()

ACTIVITIES: dict[str, tuple[type[Model], Callable[[Any, Any], Model]]] = {
    names.RESOLVE_WATCHER: (ResolveWatcherInput, network.resolve_watcher),
    names.ENSURE_AGENT: (EnsureAgentInput, network.ensure_agent),
    names.CLEAR_STALE_CAPTURE: (ClearStaleInput, network.clear_stale_capture),
    names.CHECK_LIMIT: (CheckLimitInput, network.check_limit),
    names.CREATE_CAPTURE: (CreateCaptureInput, network.create_capture),
    names.GET_CAPTURE_STATUS: (CaptureStatusInput, network.get_capture_status),
    names.STOP_CAPTURE: (CaptureStatusInput, network.stop_capture),
    names.SUMMARISE_CAPTURE: (SummariseInput, summary.summarise_capture),
    names.NOTIFY: (NotifyInput, notify.send),
}


def _register(name: str, input_type: type[Model], adapter: Callable[[Any, Any], Model]) -> None:
    def activity(payload: Any) -> dict[str, Any]:
        return run(name, payload, input_type, adapter)

    activity.__name__ = activity.__qualname__ = name
    bp.function_name(name)(bp.activity_trigger(input_name="payload", activity=name)(activity))


for _name, (_input_type, _adapter) in ACTIVITIES.items():
    _register(_name, _input_type, _adapter)
