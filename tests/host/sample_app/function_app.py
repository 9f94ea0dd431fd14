"""Sample Durable Functions app that exercises every feature of localdev.host.

Written the way a real app is written: nothing here knows about the local host. The
tests drive it over HTTP; `ops/{op}/{id}` lets them call every DurableOrchestrationClient
method from inside the host, exactly as a starter function would.

Side effects that tests need to observe across host restarts (how many times an activity
ran) go to files under the directory named by the SAMPLE_STATE_DIR setting.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


def _state_dir() -> Path:
    path = Path(os.environ["SAMPLE_STATE_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def _bump(name: str) -> int:
    """Count an activity run in a file; returns the new count."""
    path = _state_dir() / f"{name}.count"
    count = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(count))
    return count


# --- HTTP starters ---------------------------------------------------------------------


@bp.route(route="start/{orchestrator}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    try:
        instance_id = await client.start_new(
            req.route_params["orchestrator"], req.params.get("id"), payload
        )
    except Exception as exc:  # the host refuses to replace a running instance
        return func.HttpResponse(
            json.dumps({"error": str(exc)}), status_code=409, mimetype="application/json"
        )
    return client.create_check_status_response(req, instance_id)


@bp.route(route="ops/{op}/{id?}", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def ops(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    op = req.route_params["op"]
    iid = req.route_params.get("id") or ""
    result: Any = None
    if op == "status":
        status = await client.get_status(iid, show_history=True, show_history_output=True)
        result = status.to_json() if status else None
    elif op == "status_all":
        result = [s.to_json() for s in await client.get_status_all()]
    elif op == "status_by":
        statuses = await client.get_status_by(
            runtime_status=[df.OrchestrationRuntimeStatus(req.params["runtimeStatus"])]
        )
        result = [s.instance_id for s in statuses]
    elif op == "terminate":
        await client.terminate(iid, "stopped by test")
    elif op == "raise":
        await client.raise_event(iid, req.params["event"], json.loads(req.get_body() or b"null"))
    elif op == "rewind":
        await client.rewind(iid, "fixed by test")
    elif op == "suspend":
        await client.suspend(iid, "paused by test")
    elif op == "resume":
        await client.resume(iid, "resumed by test")
    elif op == "purge":
        result = (await client.purge_instance_history(iid)).instances_deleted
    elif op == "purge_by":
        purged = await client.purge_instance_history_by(
            created_time_from=datetime(2000, 1, 1, tzinfo=UTC),
            runtime_status=[df.OrchestrationRuntimeStatus(req.params["runtimeStatus"])],
        )
        result = purged.instances_deleted
    elif op == "payload":
        result = client.create_http_management_payload(iid)
    else:
        return func.HttpResponse("unknown op", status_code=400)
    return func.HttpResponse(json.dumps({"result": result}), mimetype="application/json")


@bp.route(route="hello/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps({"hello": req.route_params["name"], "q": req.params.get("q")}),
        mimetype="application/json",
        headers={"X-Sample": "yes"},
    )


@bp.route(route="echo", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def echo_http(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(req.get_body(), status_code=201, mimetype="text/plain")


@bp.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom")


@bp.route(route="adminonly", methods=["GET"], auth_level=func.AuthLevel.ADMIN)
def adminonly(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("admin ok")


# --- orchestrators ---------------------------------------------------------------------


@bp.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """N sequential no-op activities (the bench and the basic test)."""
    steps = int(context.get_input() or 3)
    results = []
    for i in range(steps):
        results.append((yield context.call_activity("noop", i)))
    return results


@bp.orchestration_trigger(context_name="context")
def fan(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    tasks = [context.call_activity("square", i) for i in range(int(context.get_input()))]
    squares = yield context.task_all(tasks)
    context.set_custom_status({"phase": "summed"})
    return sum(squares)


@bp.orchestration_trigger(context_name="context")
def crowd(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Many activities at once: the peak concurrency they saw (host.json caps it)."""
    peaks = yield context.task_all([context.call_activity("gauge", i) for i in range(20)])
    return max(peaks)


@bp.orchestration_trigger(context_name="context")
def sleepy(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """A durable timer, then an activity: the crash-mid-timer case."""
    seconds = float(context.get_input())
    context.set_custom_status({"phase": "waiting"})
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    stamp = yield context.call_activity("record", "after-timer")
    return {"fired": True, "stamp": stamp}


@bp.orchestration_trigger(context_name="context")
def slow(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """One long activity: the crash-mid-activity case."""
    seconds = float(context.get_input())
    done = yield context.call_activity("slow_work", seconds)
    return done


@bp.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    args = context.get_input()
    retry = df.RetryOptions(args.get("interval_ms", 200), args["attempts"])
    value = yield context.call_activity_with_retry("flaky", retry, args)
    return value


@bp.orchestration_trigger(context_name="context")
def fragile(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Two steps; the second fails until its switch file exists: the rewind case."""
    first = yield context.call_activity("record", "first")
    second = yield context.call_activity("maybe_fail", "second")
    return [first, second]


@bp.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """External event with a timeout timer: the task_any timeout pattern."""
    timeout = float(context.get_input())
    deadline = context.current_utc_datetime + timedelta(seconds=timeout)
    timer = context.create_timer(deadline)
    event = context.wait_for_external_event("approve")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        return {"approved": event.result}
    return {"approved": None, "timed_out": True}


@bp.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """continue_as_new: one generation per 'tick' event, until three were seen."""
    seen = context.get_input() or []
    if len(seen) >= 3:
        return seen
    tick = yield context.wait_for_external_event("tick")
    context.continue_as_new([*seen, tick])
    return None


@bp.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    child = yield context.call_sub_orchestrator("chain", 2, f"{context.instance_id}-child")
    return {"child": child}


@bp.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity("noop", 0)
    raise ValueError("orchestrator gave up")


@bp.orchestration_trigger(context_name="context")
def drifting(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """Deliberately non-deterministic: a file decides its first step (the replay check).

    The file `drift-<instance id>` holds "", "rename" or "timer"; tests change it while
    the instance waits for its "go" event, as a redeploy would change the code.
    """
    path = _state_dir() / f"drift-{context.instance_id}"
    mode = path.read_text() if path.exists() else ""
    if mode == "timer":
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=0.2))
    else:
        yield context.call_activity("square" if mode == "rename" else "noop", 1)
    context.set_custom_status("waiting")
    yield context.wait_for_external_event("go")
    return "done"


@bp.orchestration_trigger(context_name="context")
def chatty(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    """A custom status of the input's length in characters (the 16 KB limit)."""
    context.set_custom_status("x" * int(context.get_input()))
    yield context.call_activity("noop", 1)
    return "ok"


# --- activities ------------------------------------------------------------------------


@bp.activity_trigger(input_name="value")
def noop(value: Any) -> Any:
    return value


@bp.activity_trigger(input_name="value")
async def square(value: int) -> int:
    await asyncio.sleep(0.01)
    return value * value


_gauge = {"now": 0, "peak": 0}


@bp.activity_trigger(input_name="value")
async def gauge(value: int) -> int:
    _gauge["now"] += 1
    _gauge["peak"] = max(_gauge["peak"], _gauge["now"])
    await asyncio.sleep(0.05)
    _gauge["now"] -= 1
    return _gauge["peak"]


@bp.activity_trigger(input_name="label")
def record(label: str) -> int:
    return _bump(label)


@bp.activity_trigger(input_name="seconds")
def slow_work(seconds: float) -> int:
    _bump("slow_started")
    time.sleep(seconds)
    return _bump("slow_finished")


@bp.activity_trigger(input_name="args")
def flaky(args: dict[str, Any]) -> str:
    runs = _bump(f"flaky-{args['key']}")
    if runs <= args["fail_times"]:
        raise RuntimeError(f"transient failure {runs}")
    return f"ok after {runs}"


@bp.activity_trigger(input_name="label")
def maybe_fail(label: str) -> int:
    runs = _bump(label)
    if not (_state_dir() / "fixed").exists():
        raise RuntimeError("not fixed yet")
    return runs


app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(bp)
