"""The orchestrator blueprint: decorated shims over the plain generators in capture.py and
deliver.py, which tests drive step by step without a Functions host."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from orchestrators.capture import ORCHESTRATOR, capture_run
from orchestrators.deliver import (
    NOTIFY_AGAIN_ORCHESTRATOR,
    RESOLVE_ORCHESTRATOR,
    notify_again_run,
    resolve_run,
)
from orchestrators.fanout import FANOUT_ORCHESTRATOR, fanout_run
from orchestrators.standby import KEEPER, keeper_run
from orchestrators.steps import Steps

bp = df.Blueprint()


@bp.function_name(ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def capture_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from capture_run(context)
    return result


@bp.function_name(NOTIFY_AGAIN_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=NOTIFY_AGAIN_ORCHESTRATOR)
def notify_again(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from notify_again_run(context)
    return result


@bp.function_name(RESOLVE_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=RESOLVE_ORCHESTRATOR)
def resolve_pagerduty(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from resolve_run(context)
    return result


@bp.function_name(FANOUT_ORCHESTRATOR)
@bp.orchestration_trigger(context_name="context", orchestration=FANOUT_ORCHESTRATOR)
def fanout_orchestrator(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from fanout_run(context)
    return result


@bp.function_name(KEEPER)
@bp.orchestration_trigger(context_name="context", orchestration=KEEPER)
def standby_keeper(context: df.DurableOrchestrationContext) -> Steps:
    result: Any = yield from keeper_run(context)
    return result
