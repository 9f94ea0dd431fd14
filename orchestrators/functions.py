"""The orchestrator blueprint: a decorated shim over the plain generator in capture.py,
which tests drive step by step without a Functions host."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from orchestrators.capture import ORCHESTRATOR, Steps, capture_run

bp = df.Blueprint()


@bp.function_name(ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def capture_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from capture_run(context)
    return result
