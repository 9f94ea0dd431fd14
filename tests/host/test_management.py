"""The Durable HTTP management API: public webhooks and the SDK client's RPC calls."""

from __future__ import annotations

import json
import time

from azure.durable_functions.models.DurableOrchestrationStatus import (
    DurableOrchestrationStatus,
)

from .conftest import HostProcess


def test_terminate_through_the_client(host: HostProcess) -> None:
    host.start_orchestration("approval", "term-1", 30)
    host.wait("term-1", ("Running",))
    host.op("terminate", "term-1")
    final = host.wait("term-1", ("Terminated",))
    assert final["output"] == "stopped by test"
    assert [e["EventType"] for e in final["historyEvents"]][-2:] == [
        "ExecutionTerminated", "ExecutionCompleted"]
    # Terminating a finished instance is 410; an unknown one 404.
    assert host.webhook("POST", "instances/term-1/terminate", "reason=again").status == 410
    assert host.webhook("POST", "instances/ghost/terminate", "reason=x").status == 404


def test_terminate_through_the_public_api(host: HostProcess) -> None:
    host.start_orchestration("approval", "term-2", 30)
    host.wait("term-2", ("Running",))
    resp = host.webhook("POST", "instances/term-2/terminate", "reason=public%20stop")
    assert resp.status == 202
    assert host.wait("term-2", ("Terminated",))["output"] == "public stop"


def test_suspend_holds_a_due_timer_until_resume(host: HostProcess) -> None:
    host.start_orchestration("sleepy", "susp-1", 0.5)
    host.wait("susp-1", ("Running",))
    host.op("suspend", "susp-1")
    assert host.status("susp-1")["runtimeStatus"] == "Suspended"
    time.sleep(1.0)  # the timer is due now, but a suspended instance does not run
    assert host.status("susp-1")["runtimeStatus"] == "Suspended"
    assert host.count("after-timer") == 0
    host.op("resume", "susp-1")
    final = host.wait("susp-1")
    assert "ExecutionSuspended" in [e["EventType"] for e in final["historyEvents"]]


def test_suspend_resume_through_the_public_api(host: HostProcess) -> None:
    host.start_orchestration("approval", "susp-2", 30)
    host.wait("susp-2", ("Running",))
    assert host.webhook("POST", "instances/susp-2/suspend", "reason=x").status == 202
    assert host.status("susp-2")["runtimeStatus"] == "Suspended"
    assert host.webhook("POST", "instances/susp-2/resume", "reason=y").status == 202
    assert host.status("susp-2")["runtimeStatus"] == "Running"
    host.op("terminate", "susp-2")


def test_rewind_reruns_only_the_failed_step(host: HostProcess) -> None:
    host.start_orchestration("fragile", "rewind-1")
    failed = host.wait("rewind-1", ("Failed",))
    assert "not fixed yet" in failed["output"]
    assert (host.count("first"), host.count("second")) == (1, 1)
    # Rewinding a non-failed instance is refused; the failed one goes back to work.
    (host.sample_dir / "fixed").write_text("yes")
    try:
        host.op("rewind", "rewind-1")
        final = host.wait("rewind-1")
    finally:
        (host.sample_dir / "fixed").unlink()
    assert final["output"] == [1, 2]
    assert (host.count("first"), host.count("second")) == (1, 2)
    assert host.webhook("POST", "instances/rewind-1/rewind", "reason=again").status == 410


def test_rewind_with_retry_timers_fails_as_non_deterministic(host: HostProcess) -> None:
    """Extension issue #617: rewind turns the failed attempts into GenericEvents but keeps
    the retry timers, which the replayed code no longer schedules."""
    args = {"key": "rw", "fail_times": 9, "attempts": 2}
    host.start_orchestration("retrying", "rewind-2", args)
    host.wait("rewind-2", ("Failed",))
    assert host.count("flaky-rw") == 2
    resp = host.webhook("POST", "instances/rewind-2/rewind", "reason=retry%20more")
    assert resp.status == 202
    final = host.wait("rewind-2", ("Failed",))
    assert final["output"] == (
        "Non-Deterministic workflow detected: A previous execution of this orchestration "
        "scheduled a timer task with sequence number 1 but the current replay execution "
        "hasn't (yet?) scheduled this task. Was a change made to the orchestrator code "
        "after this instance had already started running?"
    )
    assert host.count("flaky-rw") == 2  # nothing ran again
    types = [e["EventType"] for e in final["historyEvents"]]
    assert types.count("GenericEvent") >= 4  # 2 x (TaskScheduled, TaskFailed) rewound
    assert types.count("TimerCreated") == 2  # the timers stay


def test_purge_one_and_many(host: HostProcess) -> None:
    for iid in ("purge-a", "purge-b", "purge-c"):
        host.start_orchestration("failing", iid)
        host.wait(iid, ("Failed",))
    assert host.op("purge", "purge-a") == 1
    assert host.webhook("GET", "instances/purge-a").status == 404
    assert host.op("purge", "purge-a") == 0
    assert host.webhook("DELETE", "instances/purge-b").json() == {"instancesDeleted": 1}
    assert host.webhook("DELETE", "instances/purge-b").status == 404
    # By filter: every Failed instance so far (purge-c and those of other tests).
    assert host.op("purge_by", query="runtimeStatus=Failed") >= 1
    assert host.webhook("GET", "instances/purge-c").status == 404
    assert host.webhook("DELETE", "instances/").status == 400  # createdTimeFrom required
    none_left = host.webhook("DELETE", "instances/",
                             "createdTimeFrom=2000-01-01T00:00:00Z&runtimeStatus=Failed")
    assert none_left.status == 404


def test_list_filter_and_page(host: HostProcess) -> None:
    for i in range(5):
        host.start_orchestration("chain", f"page-{i}", 1)
    for i in range(5):
        host.wait(f"page-{i}")
    resp = host.webhook("GET", "instances/", "instanceIdPrefix=page-&top=2")
    assert resp.status == 200
    seen = [s["instanceId"] for s in resp.json()]
    assert len(seen) == 2
    while token := resp.headers.get("x-ms-continuation-token"):
        resp = host.webhook("GET", "instances/", "instanceIdPrefix=page-&top=2",
                            headers={"x-ms-continuation-token": token})
        seen += [s["instanceId"] for s in resp.json()]
    assert sorted(seen) == [f"page-{i}" for i in range(5)]
    statuses = [DurableOrchestrationStatus.from_json(s) for s in
                host.webhook("GET", "instances/", "instanceIdPrefix=page-").json()]
    assert {s.instance_id for s in statuses} == set(seen)
    running = host.webhook("GET", "instances/", "runtimeStatus=Running,Pending").json()
    assert not {s["instanceId"] for s in running} & set(seen)
    future = host.webhook("GET", "instances/", "createdTimeFrom=2999-01-01T00:00:00Z").json()
    assert future == []
    # The SDK's get_status_by / get_status_all through the RPC endpoint.
    assert set(seen) <= set(host.op("status_by", query="runtimeStatus=Completed"))
    assert set(seen) <= {s["instanceId"] for s in host.op("status_all")}


def test_start_by_orchestrator_name_and_restart(host: HostProcess) -> None:
    resp = host.webhook("POST", "orchestrators/chain/by-name", body=json.dumps(2))
    assert resp.status == 202
    assert resp.json()["id"] == "by-name"
    assert host.wait("by-name")["output"] == [0, 1]
    unknown = host.webhook("POST", "orchestrators/nope")
    assert unknown.status == 400
    assert "nope" in unknown.json()["ExceptionMessage"]
    generated = host.webhook("POST", "orchestrators/chain", body=json.dumps(1)).json()["id"]
    assert host.wait(generated)["output"] == [0]
    restarted = host.webhook("POST", "instances/by-name/restart",
                             "restartWithNewInstanceId=false")
    assert restarted.status == 202
    assert restarted.json()["id"] == "by-name"
    assert host.wait("by-name")["output"] == [0, 1]


def test_status_options(host: HostProcess) -> None:
    host.start_orchestration("chain", "opts-1", 1)
    host.wait("opts-1")
    plain = host.status("opts-1", "")
    assert "historyEvents" not in plain
    assert plain["input"] == "1"
    no_input = host.status("opts-1", "showInput=false")
    assert no_input["input"] is None
    no_output = host.status("opts-1", "showHistory=true")
    assert all("Result" not in e for e in no_output["historyEvents"])
    assert host.webhook("GET", "instances/unknown-id").status == 404
