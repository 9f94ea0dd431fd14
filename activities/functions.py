"""The activity blueprint: registers every activity declared with `@activity` in the
modules below. No decisions here: the orchestrator decides what happens next."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from activities import network, notify, summary  # noqa: F401  (importing declares them)
from activities.spec import Activity, declared

bp = df.Blueprint()


def _register(spec: Activity[Any, Any]) -> None:
    def run_activity(payload: Any) -> dict[str, Any]:
        return spec.run(payload)

    run_activity.__name__ = run_activity.__qualname__ = spec.name
    bp.function_name(spec.name)(
        bp.activity_trigger(input_name="payload", activity=spec.name)(run_activity))


for _spec in declared():
    _register(_spec)
