"""The activity blueprint: registers every activity declared with `@activity` in this
package. Every module of the package is imported here, so a new activity needs no entry
in any list: declaring it beside its adapter is enough. No decisions here: the
orchestrator decides what happens next."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import azure.durable_functions as df

import activities
from activities.spec import Activity, declared

bp = df.Blueprint()


def _register(spec: Activity[Any, Any]) -> None:
    def run_activity(payload: Any) -> dict[str, Any]:
        return spec.run(payload)

    run_activity.__name__ = run_activity.__qualname__ = spec.name
    bp.function_name(spec.name)(
        bp.activity_trigger(input_name="payload", activity=spec.name)(run_activity))


for _module in pkgutil.iter_modules(activities.__path__):
    if _module.name != "functions":
        importlib.import_module(f"activities.{_module.name}")
for _spec in declared():
    _register(_spec)
