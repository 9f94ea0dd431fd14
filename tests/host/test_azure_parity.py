"""Where Azure is less kind than a naive host, and this host is just as unkind.

Each test names the extension / DTFx class the behaviour comes from (see the modules of
localdev.host for the source references): replay determinism checks, rewind over retry
timers, non-atomic creation, double-encoded payloads, asynchronous terminate, the
management API's status codes, the Functions host's routing, retries, the custom status
limit and functionTimeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest

from localdev.host.client import ClientCommands
from localdev.host.loader import HostConfig
from localdev.host.protocol import EXECUTION_TERMINATED, check_instance_id
from localdev.host.replay import execution_started, new_instance
from localdev.host.store import Store

from .conftest import HostProcess, copy_app, http

CHANGED = (
    "Was a change made to the orchestrator code after this instance had already started "
    "running?"
)

# --- 2.2 replay checks determinism ---------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (
            "",
            "rename",
            "A previous execution of this orchestration scheduled an activity task with "
            "sequence number 0 named 'noop', but the current orchestration replay instead "
            f"scheduled an activity task named 'square' with this sequence number.  {CHANGED}",
        ),
        (
            "",
            "timer",
            "A previous execution of this orchestration scheduled an activity task with "
            "sequence number 0 named 'noop', but the current orchestration replay instead "
            "produced a CreateTimerOrchestratorAction action with this sequence number. "
            f"{CHANGED}",
        ),
        (
            "timer",
            "",
            "A previous execution of this orchestration scheduled a timer task with sequence "
            "number 0 named but the current orchestration replay instead produced a "
            f"ScheduleTaskOrchestratorAction action with this sequence number. {CHANGED}",
        ),
    ],
)
def test_changed_code_fails_replay_with_the_dtfx_message(
    host: HostProcess, before: str, after: str, message: str
) -> None:
    iid = f"drift-{before or 'task'}-{after or 'task'}"
    drift = host.sample_dir / f"drift-{iid}"
    host.sample_dir.mkdir(parents=True, exist_ok=True)
    drift.write_text(before)
    host.start_orchestration("drifting", iid)
    deadline = time.monotonic() + 10
    while host.status(iid)["customStatus"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    drift.write_text(after)  # "redeploy" while the instance waits
    resp = host.webhook("POST", f"instances/{iid}/raiseEvent/go", body=1,
                        headers={"Content-Type": "application/json"})
    assert resp.status == 202
    final = host.wait(iid, ("Failed", "Completed"))
    assert final["runtimeStatus"] == "Failed"
    assert final["output"] == "Non-Deterministic workflow detected: " + message


def test_unchanged_code_replays_fine(host: HostProcess) -> None:
    host.start_orchestration("drifting", "drift-same")
    deadline = time.monotonic() + 10
    while host.status("drift-same")["customStatus"] != "waiting":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    host.webhook("POST", "instances/drift-same/raiseEvent/go", body=1,
                 headers={"Content-Type": "application/json"})
    assert host.wait("drift-same")["output"] == "done"


# --- 2.1 rewind (the retry case is in test_management) ---------------------------------------


def test_rewind_without_retry_timers_resumes(host: HostProcess) -> None:
    host.start_orchestration("fragile", "rewind-plain")
    host.wait("rewind-plain", ("Failed",))
    (host.sample_dir / "fixed").write_text("yes")
    try:
        assert host.webhook("POST", "instances/rewind-plain/rewind", "reason=x").status == 202
        final = host.wait("rewind-plain")
    finally:
        (host.sample_dir / "fixed").unlink()
    assert final["output"] == [1, 2]  # the first step is not run again
    types = [e["EventType"] for e in final["historyEvents"]]
    # The failed TaskScheduled/TaskFailed and the failed ExecutionCompleted were rewound.
    assert types.count("GenericEvent") >= 2
    assert types[-1] == "ExecutionCompleted"


# --- 2.3 starting is not atomic; NonRunningStates / AnyState -----------------------------------


def test_racing_starts_both_succeed_and_one_is_discarded(
    make_host: Callable[..., HostProcess],
) -> None:
    # Widen the check -> start message -> instance row window so two starts overlap.
    host = make_host(LOCALDEV_HOST_CREATE_WINDOW_MS="400")
    barrier = threading.Barrier(2)

    def start(steps: int) -> int:
        barrier.wait(5)
        return host.start_orchestration("chain", "race-1", steps).status

    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(start, [1, 2]))
    assert codes == [202, 202]  # both callers were told it started
    final = host.wait("race-1")
    assert final["output"] in ([0], [0, 1])  # one input won; the other start is lost
    deadline = time.monotonic() + 10
    while "Discarding a start message for race-1" not in host.stderr():
        assert time.monotonic() < deadline, host.stderr()[-2000:]
        time.sleep(0.1)
    events = [e["EventType"] for e in host.status("race-1")["historyEvents"]]
    assert events.count("ExecutionStarted") == 1
    assert host.status("race-1")["output"] == final["output"]


def test_start_over_running_is_a_500_with_non_running_states(host: HostProcess) -> None:
    host.start_orchestration("approval", "dup-500", 30)
    host.wait("dup-500", ("Running",))
    public = host.webhook("POST", "orchestrators/approval/dup-500", body=json.dumps(30))
    assert public.status == 500
    body = public.json()
    assert body["Message"] == "Something went wrong while processing your request"
    assert body["ExceptionMessage"] == (
        "An Orchestration instance with the status Running already exists."
    )
    assert body["ExceptionType"].endswith("OrchestrationAlreadyExistsException")
    rpc = http("POST", host.runtime["rpcBaseUrl"] + "orchestrators/approval/dup-500",
               json.dumps(30))
    assert rpc.status == 500
    host.op("terminate", "dup-500")


def test_any_state_default_silently_replaces_a_running_instance(
    make_host: Callable[..., HostProcess], tmp_path: Path
) -> None:
    app = copy_app(tmp_path / "anystate", durableTask__overridableExistingInstanceStates=None)
    host = make_host(app_dir=app)
    assert host.start_orchestration("approval", "replace-me", 30).status == 202
    first = host.wait("replace-me", ("Running",))
    assert host.start_orchestration("approval", "replace-me", 0.2).status == 202
    final = host.wait("replace-me")
    assert final["output"] == {"approved": None, "timed_out": True}
    assert final["input"] == "0.2"
    assert final["createdTime"] >= first["createdTime"]
    events = [e["EventType"] for e in final["historyEvents"]]
    assert events.count("ExecutionStarted") == 1


# --- 2.4 double encoding ------------------------------------------------------------------------


def test_inputs_and_event_data_are_stored_double_encoded(host: HostProcess) -> None:
    host.start_orchestration("approval", "enc-1", 30)
    running = host.wait("enc-1", ("Running",))
    assert running["input"] == "30"  # a JSON string holding JSON
    started = running["historyEvents"][0]
    assert started["EventType"] == "ExecutionStarted"
    assert started["Input"] == '"30"'  # history shows the stored text as is
    host.op("raise", "enc-1", "event=approve", {"ok": [1, 2]})
    assert host.wait("enc-1")["output"] == {"approved": '{"ok": [1, 2]}'}


# --- 2.5 terminate is asynchronous --------------------------------------------------------------


def test_terminate_only_enqueues_a_message(tmp_path: Path) -> None:
    """DurableClient.TerminateAsync -> TerminateInstanceAsync: a message, no status change."""
    store = Store(tmp_path / "d.sqlite3")
    try:
        client = ClientCommands(store, {}, HostConfig(), wake=lambda: None)
        inst = new_instance("approval", "t-1", "30")
        inst.status = "Running"
        with store.tx():
            store.put_instance(inst)
            store.send("t-1", execution_started(inst))
        client.terminate("t-1", "bye")
        after = store.get_instance("t-1")
        assert after is not None and after.status == "Running"
        queued = store.first_message("t-1", time.time(), only_terminate=True)
        assert queued is not None
        assert queued.event["EventType"] == EXECUTION_TERMINATED
        assert queued.event["Input"] == "bye"
    finally:
        store.close()


def test_activity_already_queued_still_runs_after_terminate(host: HostProcess) -> None:
    host.start_orchestration("slow", "term-slow", 1.0)
    deadline = time.monotonic() + 10
    while host.count("slow_started") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert host.webhook("POST", "instances/term-slow/terminate", "reason=stop").status == 202
    assert host.wait("term-slow", ("Terminated",))["output"] == "stop"
    while host.count("slow_finished") == 0:
        assert time.monotonic() < deadline + 5
        time.sleep(0.05)
    time.sleep(0.3)  # its result arrives and is dropped
    final = host.status("term-slow")
    assert (final["runtimeStatus"], final["output"]) == ("Terminated", "stop")


# --- 2.6 management API answers -----------------------------------------------------------------


def test_management_status_codes(host: HostProcess) -> None:
    host.start_orchestration("approval", "codes-1", 30)
    host.wait("codes-1", ("Running",))
    rewind = host.webhook("POST", "instances/codes-1/rewind", "reason=x")
    assert rewind.status == 500
    assert rewind.json()["ExceptionMessage"] == (
        "The rewind operation is only supported on failed orchestration instances."
    )
    resume = host.webhook("POST", "instances/codes-1/resume", "reason=x")
    assert resume.status == 500
    assert "because instance is in the Running state" in resume.json()["ExceptionMessage"]
    assert host.webhook("POST", "instances/codes-1/suspend", "reason=x").status == 202
    again = host.webhook("POST", "instances/codes-1/suspend", "reason=x")
    assert again.status == 500
    assert "because instance is in the Suspended state" in again.json()["ExceptionMessage"]
    assert host.webhook("POST", "instances/codes-1/rewind", "reason=x").status == 500
    # raiseEvent: application/json only, and a JSON body.
    no_type = host.webhook("POST", "instances/codes-1/raiseEvent/approve", body=1)
    assert no_type.status == 400
    assert no_type.json()["Message"] == "Only application/json request content is supported"
    bad = http("POST", f"{host.runtime['webhookBaseUrl']}/instances/codes-1/raiseEvent/approve"
               f"?code={host.system_key}", raw=b"{not json",
               headers={"Content-Type": "application/json"})
    assert (bad.status, bad.json()["Message"]) == (400, "Invalid JSON content")
    # A terminate on a suspended instance is taken.
    assert host.webhook("POST", "instances/codes-1/terminate", "reason=x").status == 202
    host.wait("codes-1", ("Terminated",))
    assert host.webhook("POST", "instances/codes-1/rewind", "reason=x").status == 410


def test_wrong_task_hub_and_at_ids(host: HostProcess) -> None:
    host.start_orchestration("chain", "hub-1", 1)
    host.wait("hub-1")
    assert host.webhook("GET", "instances/hub-1", "taskHub=SampleHub").status == 200
    assert host.webhook("GET", "instances/hub-1", "taskHub=OtherHub").status == 404
    assert host.webhook("POST", "instances/hub-1/terminate", "taskHub=OtherHub").status == 404
    assert host.webhook("GET", "instances/", "taskHub=OtherHub").json() == []
    at = host.webhook("POST", "orchestrators/chain/@nope", body=json.dumps(1))
    assert at.status == 400
    assert at.json()["ExceptionMessage"] == (
        "instanceId (Parameter 'Orchestration instance ids must not start with @.')"
    )
    with pytest.raises(ValueError, match="must not start with @"):
        check_instance_id("@x")


def test_start_api_202_body_has_no_rewind_uri(host: HostProcess) -> None:
    resp = host.webhook("POST", "orchestrators/chain/links-1", body=json.dumps(1))
    assert resp.status == 202
    body = resp.json()
    assert "rewindPostUri" not in body
    assert set(body) == {"id", "statusQueryGetUri", "sendEventPostUri", "terminatePostUri",
                         "purgeHistoryDeleteUri", "restartPostUri", "suspendPostUri",
                         "resumePostUri"}
    assert resp.headers["Location"] == body["statusQueryGetUri"]


def test_listing_pages_at_100_and_dotnet_dates(host: HostProcess) -> None:
    def start(i: int) -> int:
        return host.webhook("POST", f"orchestrators/chain/many-{i:03d}",
                            body=json.dumps(0)).status

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(start, range(105))) == {202}
    first = host.webhook("GET", "instances/", "instanceIdPrefix=many-")
    assert len(first.json()) == 100
    token = first.headers["x-ms-continuation-token"]
    assert token
    rest = host.webhook("GET", "instances/", "instanceIdPrefix=many-",
                        headers={"x-ms-continuation-token": token})
    assert len(rest.json()) == 5
    assert rest.headers["x-ms-continuation-token"] == ""
    ids = {s["instanceId"] for s in first.json() + rest.json()}
    assert len(ids) == 105
    # What DateTime.TryParse accepts filters; what it does not is ignored (not a 400).
    for accepted in ("2000-01-01", "01/01/2000", "2000-01-01T00:00:00Z", "Jan 1, 2000",
                     "2000-01-01 00:00"):
        page = host.webhook("GET", "instances/",
                            f"instanceIdPrefix=many-&top=5&createdTimeFrom={quote(accepted)}")
        assert len(page.json()) == 5, accepted
    future = host.webhook("GET", "instances/", "instanceIdPrefix=many-&createdTimeFrom=01/01/2999")
    assert future.json() == []
    ignored = host.webhook("GET", "instances/", "instanceIdPrefix=many-&top=3"
                           "&createdTimeFrom=someday")
    assert len(ignored.json()) == 3
    bad = host.webhook("DELETE", "instances/", "createdTimeFrom=someday")
    assert (bad.status, bad.json()) == (400, "Please provide value for 'createdTimeFrom' parameter.")


def test_purge_by_filter_keeps_only_terminal_statuses(
    make_host: Callable[..., HostProcess],
) -> None:
    host = make_host()
    host.start_orchestration("chain", "p-done", 1)
    host.wait("p-done")
    host.start_orchestration("approval", "p-running", 30)
    host.wait("p-running", ("Running",))
    both = "createdTimeFrom=2000-01-01&runtimeStatus=Completed,Running"
    assert host.webhook("DELETE", "instances/", both).json() == {"instancesDeleted": 1}
    assert host.webhook("GET", "instances/p-running").status == 202
    # AzureTableTrackingStore drops non-terminal statuses from the filter; none left means
    # no status filter at all, so this purges the running instance.
    running_only = "createdTimeFrom=2000-01-01&runtimeStatus=Running"
    assert host.webhook("DELETE", "instances/", running_only).json() == {"instancesDeleted": 1}
    assert host.webhook("GET", "instances/p-running").status == 404


# --- 2.7 routing like the Functions host --------------------------------------------------------


def test_routes_are_case_insensitive_and_unmatched_is_an_empty_404(host: HostProcess) -> None:
    resp = http("GET", f"{host.base}/API/HELLO/ada")
    assert (resp.status, resp.json()["hello"]) == (200, "ada")
    for path in ("/nope", "/api/nope", "/api", "/runtimex"):
        missing = http("GET", host.base + path)
        assert (missing.status, missing.body) == (404, b""), path
    listing = http("GET", f"{host.base}/RUNTIME/WEBHOOKS/DURABLETASK/INSTANCES/"
                   f"?code={host.system_key}")
    assert listing.status == 200 and isinstance(listing.json(), list)


def test_encoded_slash_and_question_mark_reach_the_function_decoded(host: HostProcess) -> None:
    resp = http("GET", f"{host.base}/api/hello/a%2Fb%3Fc?q=1")
    assert resp.status == 200
    assert resp.json() == {"hello": "a/b?c", "q": "1"}
    newline = http("GET", f"{host.base}/api/hello/a%0Ab")
    assert (newline.status, newline.json()["hello"]) == (200, "a\nb")
    unmatched = http("GET", f"{host.base}/nope%0Ax")
    assert (unmatched.status, unmatched.body) == (404, b"")


# --- 2.8 retries, custom status, functionTimeout ----------------------------------------------


def test_timer_after_the_last_attempt_fires_at_once(host: HostProcess) -> None:
    args = {"key": "last", "fail_times": 9, "attempts": 1, "interval_ms": 60_000}
    started = time.monotonic()
    host.start_orchestration("retrying", "retry-last", args)
    final = host.wait("retry-last", ("Failed",), timeout=10)
    assert time.monotonic() - started < 10  # not the 60 s interval
    timer = next(e for e in final["historyEvents"] if e["EventType"] == "TimerCreated")
    fire_at = datetime.fromisoformat(timer["FireAt"])
    assert fire_at - datetime.fromisoformat(timer["Timestamp"]) < timedelta(seconds=1)


def test_custom_status_over_16_kb_fails_the_orchestration(host: HostProcess) -> None:
    host.start_orchestration("chatty", "chatty-ok", 8000)  # 16,004 UTF-16 bytes: 15 KB
    assert host.wait("chatty-ok")["output"] == "ok"
    host.start_orchestration("chatty", "chatty-big", 8800)  # 17,604 bytes: 17 KB
    final = host.wait("chatty-big", ("Failed",))
    assert final["output"] == (
        "Orchestrator function 'chatty' failed: The UTF-16 size of the JSON-serialized "
        "payload must not exceed 16 KB. The current payload size is 17 KB."
    )


def test_function_timeout_fails_the_activity(
    make_host: Callable[..., HostProcess], tmp_path: Path
) -> None:
    host = make_host(app_dir=copy_app(tmp_path / "timeout", functionTimeout="00:00:01"))
    host.start_orchestration("slow", "too-slow", 3)
    final = host.wait("too-slow", ("Failed",), timeout=15)
    reason = ("Activity function 'slow_work' failed: Timeout value of 00:00:01 was exceeded "
              "by function: Functions.slow_work")
    assert final["output"].startswith(f"Orchestrator function 'slow' failed: {reason}")
    failed = next(e for e in final["historyEvents"] if e["EventType"] == "TaskFailed")
    assert failed["Reason"] == reason


def test_function_timeout_defaults_to_flex_consumption(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    config = HostConfig.from_file(tmp_path / "host.json")
    assert (config.function_timeout_text, config.function_timeout_s) == ("00:30:00", 1800)
    assert config.overridable_states == "AnyState"
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "-1"}))
    assert HostConfig.from_file(tmp_path / "host.json").function_timeout_s is None
