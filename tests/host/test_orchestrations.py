"""Every orchestration action type, driven over HTTP through the sample app's starters.

Status documents are parsed with the SDK's own DurableOrchestrationStatus model, and the
`ops/...` routes call the real DurableOrchestrationClient inside the host (its RPC API).
"""

from __future__ import annotations

import json
import time

from azure.durable_functions.models.DurableOrchestrationStatus import (
    DurableOrchestrationStatus,
)
from azure.durable_functions.models.OrchestrationRuntimeStatus import (
    OrchestrationRuntimeStatus,
)

from .conftest import HostProcess, http


def event_types(status: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["EventType"] for e in status["historyEvents"]]


def test_start_returns_check_status_response_and_chain_completes(host: HostProcess) -> None:
    resp = host.start_orchestration("chain", "chain-1", 3)
    assert resp.status == 202
    body = resp.json()
    assert body["id"] == "chain-1"
    assert resp.headers["Location"] == body["statusQueryGetUri"]
    assert resp.headers["Retry-After"] == "10"
    assert set(body) >= {"sendEventPostUri", "terminatePostUri", "rewindPostUri",
                         "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri",
                         "resumePostUri"}
    final = host.wait("chain-1")
    # The status URL handed out by the starter answers 200 once done.
    done = http("GET", body["statusQueryGetUri"])
    assert done.status == 200
    status = DurableOrchestrationStatus.from_json(done.json())
    assert status.runtime_status == OrchestrationRuntimeStatus.Completed
    assert status.output == [0, 1, 2]
    # Stored as the extension stores what the SDK client posts: a JSON string of JSON.
    assert status.input_ == "3"
    assert status.name == "chain"
    assert status.created_time is not None and status.last_updated_time is not None
    assert event_types(final) == ["ExecutionStarted"] + ["TaskCompleted"] * 3 + [
        "ExecutionCompleted"]
    completed = final["historyEvents"][1]
    assert completed["FunctionName"] == "noop"
    assert completed["Result"] == 0
    assert "ScheduledTime" in completed
    assert final["historyEvents"][-1]["OrchestrationStatus"] == "Completed"


def test_status_while_running_is_202_with_location(host: HostProcess) -> None:
    host.start_orchestration("sleepy", "sleepy-202", 1.5)
    host.wait("sleepy-202", ("Running",))
    resp = host.webhook("GET", "instances/sleepy-202")
    assert resp.status == 202
    assert resp.headers["Retry-After"] == "5"
    assert "instances/sleepy-202" in resp.headers["Location"]
    assert resp.json()["customStatus"] == {"phase": "waiting"}
    assert "historyEvents" not in resp.json()
    final = host.wait("sleepy-202")
    assert final["output"]["fired"] is True
    assert event_types(final) == ["ExecutionStarted", "TimerCreated", "TimerFired",
                                  "TaskCompleted", "ExecutionCompleted"]


def test_timer_fires_on_time(host: HostProcess) -> None:
    started = time.monotonic()
    host.start_orchestration("sleepy", "sleepy-time", 1.0)
    host.wait("sleepy-time")
    assert 0.9 <= time.monotonic() - started < 5


def test_fan_out_fan_in_with_async_activities_and_custom_status(host: HostProcess) -> None:
    host.start_orchestration("fan", "fan-1", 6)
    final = host.wait("fan-1")
    assert final["output"] == sum(i * i for i in range(6))
    assert final["customStatus"] == {"phase": "summed"}
    assert event_types(final).count("TaskCompleted") == 6


def test_retry_succeeds_after_failures(host: HostProcess) -> None:
    host.start_orchestration("retrying", "retry-ok", {"key": "ok", "fail_times": 2, "attempts": 3})
    final = host.wait("retry-ok")
    assert final["output"] == "ok after 3"
    assert event_types(final) == [
        "ExecutionStarted",
        "TaskFailed", "TimerCreated", "TimerFired",
        "TaskFailed", "TimerCreated", "TimerFired",
        "TaskCompleted", "ExecutionCompleted",
    ]
    failed = final["historyEvents"][1]
    assert failed["Reason"] == "Activity function 'flaky' failed: transient failure 1"
    assert failed["FunctionName"] == "flaky"
    assert host.count("flaky-ok") == 3


def test_retry_exhausted_fails_the_orchestration(host: HostProcess) -> None:
    host.start_orchestration("retrying", "retry-no", {"key": "no", "fail_times": 9, "attempts": 2})
    final = host.wait("retry-no", ("Failed",))
    assert final["output"].startswith(
        "Orchestrator function 'retrying' failed: Activity function 'flaky' failed: "
        "transient failure 2"
    )
    assert "localdev" not in final["output"]  # host frames are not the user's traceback
    assert host.count("flaky-no") == 2
    assert final["historyEvents"][-1]["OrchestrationStatus"] == "Failed"


def test_orchestrator_exception_fails_with_the_extension_message(host: HostProcess) -> None:
    host.start_orchestration("failing", "fail-1")
    final = host.wait("fail-1", ("Failed",))
    assert final["output"] == "Orchestrator function 'failing' failed: orchestrator gave up"
    # A failed instance answers 200 unless the caller asks for a 500.
    assert host.webhook("GET", "instances/fail-1").status == 200
    resp = host.webhook("GET", "instances/fail-1", "returnInternalServerErrorOnFailure=true")
    assert resp.status == 500


def test_external_event_wins_and_timer_is_cancelled(host: HostProcess) -> None:
    host.start_orchestration("approval", "appr-yes", 30)
    host.wait("appr-yes", ("Running",))
    host.op("raise", "appr-yes", "event=approve", {"by": "ops"})
    final = host.wait("appr-yes", timeout=5)
    # raise_event(dict) arrives as JSON text (the extension stores the SDK's JSON string).
    assert final["output"] == {"approved": '{"by": "ops"}'}
    assert event_types(final) == ["ExecutionStarted", "TimerCreated", "EventRaised",
                                  "ExecutionCompleted"]


def test_event_timeout_pattern(host: HostProcess) -> None:
    host.start_orchestration("approval", "appr-timeout", 0.5)
    final = host.wait("appr-timeout")
    assert final["output"] == {"approved": None, "timed_out": True}


def test_public_raise_event_api(host: HostProcess) -> None:
    host.start_orchestration("approval", "appr-public", 30)
    host.wait("appr-public", ("Running",))
    resp = host.webhook("POST", "instances/appr-public/raiseEvent/approve", body="lgtm",
                        headers={"Content-Type": "application/json"})
    assert resp.status == 202
    assert host.wait("appr-public")["output"] == {"approved": "lgtm"}
    assert host.webhook("POST", "instances/appr-public/raiseEvent/approve", body=1,
                        headers={"Content-Type": "application/json"}).status == 410
    assert host.webhook("POST", "instances/nobody/raiseEvent/approve", body=1).status == 404


def test_continue_as_new_keeps_events_raised_meanwhile(host: HostProcess) -> None:
    host.start_orchestration("generations", "gens-1")
    host.wait("gens-1", ("Running",))
    for tick in ("a", "b", "c"):  # back to back: later ones arrive mid-generation
        host.op("raise", "gens-1", "event=tick", tick)
    final = host.wait("gens-1", timeout=10)
    # Each tick arrives as JSON text ('"a"'); continue-as-new input is stored serialized
    # again, so the status shows the last generation's input as a JSON string.
    ticks = ['"a"', '"b"', '"c"']
    assert final["output"] == ticks
    assert final["input"] == json.dumps(ticks)
    assert event_types(final) == ["ExecutionStarted", "ExecutionCompleted"]


def test_sub_orchestration(host: HostProcess) -> None:
    host.start_orchestration("parent", "parent-1")
    final = host.wait("parent-1")
    assert final["output"] == {"child": [0, 1]}
    assert "SubOrchestrationInstanceCompleted" in event_types(final)
    child = host.wait("parent-1-child")
    assert child["output"] == [0, 1]


def test_running_instance_id_is_refused_and_finished_one_restarts(host: HostProcess) -> None:
    assert host.start_orchestration("approval", "single", 30).status == 202
    host.wait("single", ("Running",))
    refused = host.start_orchestration("approval", "single", 30)
    assert refused.status == 409
    assert "already exists" in refused.json()["error"]
    host.op("terminate", "single")
    host.wait("single", ("Terminated",))
    assert host.start_orchestration("chain", "single", 1).status == 202
    assert host.wait("single")["output"] == [0]


def test_client_get_status_through_the_sdk(host: HostProcess) -> None:
    host.start_orchestration("chain", "sdk-status", 2)
    host.wait("sdk-status")
    status = host.op("status", "sdk-status")
    assert status["runtimeStatus"] == "Completed"
    assert status["instanceId"] == "sdk-status"
    assert status["output"] == [0, 1]
    assert status["input"] == "2"
    assert host.op("status", "does-not-exist") is None


def test_activity_concurrency_follows_host_json(host: HostProcess) -> None:
    # The sample app's host.json sets maxConcurrentActivityFunctions to 8.
    host.start_orchestration("crowd", "crowd-1")
    assert host.wait("crowd-1")["output"] == 8


def test_rpc_endpoint_is_loopback_and_keyless(host: HostProcess) -> None:
    rpc = host.runtime["rpcBaseUrl"]
    assert rpc.startswith("http://127.0.0.1:") and rpc.endswith("/durabletask/")
    assert not rpc.startswith(host.base)
    assert http("GET", rpc + "instances/").status == 200
    assert http("GET", f"{rpc}instances/none-such").status == 404
