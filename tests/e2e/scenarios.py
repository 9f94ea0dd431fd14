"""The live runs the e2e tests look at, driven in the background so the suite stays short.

A run takes seconds of capture plus the notification; the stack allows one live run per
VM. So each VM gets one worker that plays its scenarios in order (vm1 and vm2 run side by
side), and the scenarios that need the whole stack to themselves (an email outage, a 403
on the shared Network Watcher) run after both queues are done. Each scenario returns what
it observed; the tests assert on it. A scenario that breaks raises, and the test that
asks for it fails with that error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from localdev.cli import demo_alert

from .reliability import alert_storm, crash_and_resume, flaky_arm
from .stack import Stack, http
from .versioning import deploy_mid_run, unversioned_change_mid_run

Observed = dict[str, Any]


def _template(url: str, reason: str = "e2e") -> str:
    return url.replace("{text}", reason)


# --- vm1 --------------------------------------------------------------------------------


def alert_with_duplicate(stack: Stack) -> Observed:
    """Traffic flows from vm1; the alert arrives, then arrives again while the run lives."""
    vm = stack.vm("vm1")
    alert = demo_alert(vm, datetime.now(UTC))
    with stack.traffic("vm1", seconds=6, rate=50) as port:
        time.sleep(0.5)  # the sink is listening and the client is connecting
        first = stack.post_alert(alert)
        assert first.status == 202, (first.status, first.body)
        stack.wait_phase(first.body["statusQueryGetUri"], "capturing")
        duplicate = stack.post_alert(demo_alert(vm, datetime.now(UTC)))
        captures_while_running = stack.vm_captures("vm1")
        final = stack.wait(first.body["statusQueryGetUri"])
    return {"alert": alert, "first": first, "duplicate": duplicate, "final": final,
            "sink_port": port, "captures_while_running": captures_while_running}


def stop_early(stack: Stack) -> Observed:
    started = time.monotonic()
    r = stack.start_capture(stack.vm("vm1"), seconds=120)
    assert r.status == 202, (r.status, r.body)
    stack.wait_phase(r.body["statusQueryGetUri"], "capturing")
    stop = stack.stop_capture(r.body["id"])
    final = stack.wait(r.body["statusQueryGetUri"])
    return {"start": r, "stop": stop, "final": final, "wall": time.monotonic() - started}


def terminate(stack: Stack) -> Observed:
    r = stack.start_capture(stack.vm("vm1"), seconds=4)
    assert r.status == 202, (r.status, r.body)
    running = stack.wait_phase(r.body["statusQueryGetUri"], "capturing")
    term = stack.status_post(_template(r.body["instances"][0]["terminatePostUri"]))
    final = stack.wait(r.body["statusQueryGetUri"])
    captures_after = stack.vm_captures("vm1")
    time.sleep(6)  # past the 4 s time limit: Network Watcher ends the capture itself
    captures_later = stack.vm_captures("vm1")
    return {"start": r, "running": running, "terminate": term, "final": final,
            "captures_after": captures_after, "captures_later": captures_later,
            "inbox": stack.inbox()}


def capture_error(stack: Stack) -> Observed:
    with stack.fault_lock:
        stack.arm_fault({"kind": "captureError", "nameContains": "alertcap-vm1",
                         "error": "StorageFailed", "afterSeconds": 0.5, "count": 1})
        try:
            r = stack.start_capture(stack.vm("vm1"), seconds=4)
            assert r.status == 202, (r.status, r.body)
            final = stack.wait(r.body["statusQueryGetUri"])
        finally:
            stack.arm_clear_faults()
    return {"final": final}


# --- vm2 --------------------------------------------------------------------------------


def throttled(stack: Stack) -> Observed:
    """429 with Retry-After on vm2's packet capture calls, twice."""
    with stack.fault_lock:
        stack.arm_fault({"kind": "http", "pathContains": "packetCaptures/alertcap-vm2",
                         "status": 429, "retryAfter": 1, "count": 2})
        try:
            with stack.traffic("vm2", seconds=5, rate=20):
                r = stack.start_capture(stack.vm("vm2"), seconds=4)
                assert r.status == 202, (r.status, r.body)
                final = stack.wait(r.body["statusQueryGetUri"])
        finally:
            stack.arm_clear_faults()
    return {"final": final, "requests": stack.arm_requests()}


def agent_missing(stack: Stack) -> Observed:
    with stack.fault_lock:
        stack.arm_fault({"kind": "agentMissing", "vm": "vm2"})
        try:
            r = stack.start_capture(stack.vm("vm2"), seconds=4)
            assert r.status == 202, (r.status, r.body)
            final = stack.wait(r.body["statusQueryGetUri"])
        finally:
            stack.arm_clear_faults()
    return {"final": final, "captures": stack.vm_captures("vm2")}


# --- the whole stack to itself ------------------------------------------------------------


def email_outage(stack: Stack) -> Observed:
    """The email service refuses every send for longer than the activity's own retries last
    (5 attempts 1 s apart); the run keeps trying on durable timers and gets its one email
    out when the service is back, with no operator action. Then the operator asks for the
    notification again and gets exactly one more. A fault for every run's email: under
    the lock, so no foreground module's run meets it."""
    with stack.fault_lock:
        return _email_outage(stack)


def _email_outage(stack: Stack) -> Observed:
    outage = stack.email_call("POST", "/_localdev/faults",
                              {"kind": "http", "method": "POST", "pathContains": "emails:send",
                               "status": 503})
    assert outage.status == 201, (outage.status, outage.body)
    try:
        r = stack.start_capture(stack.vm("vm2"), seconds=4)
        assert r.status == 202, (r.status, r.body)
        status_url = r.body["statusQueryGetUri"]
        retrying = stack.wait_for(status_url, lambda b: bool(
            (b.get("customStatus") or {}).get("notifyAttempts")), timeout=90)
        time.sleep(8)  # well past the activity's own retries
        during = stack.status(status_url)
        inbox_during = stack.inbox()
    finally:
        cleared = stack.email_call("DELETE", "/_localdev/faults")
    assert cleared.status == 204, cleared.status
    final = stack.wait(status_url, timeout=60)
    again = http("POST", f"{stack.base}/api/runs/{r.body['id']}/notify"
                         f"?code={stack.function_key}")
    again_final = stack.wait(again.body["statusQueryGetUri"], timeout=60) \
        if again.status == 202 else {}
    return {"start": r, "retrying": retrying, "during": during, "inbox_during": inbox_during,
            "final": final, "again": again, "again_final": again_final}


def watcher_forbidden(stack: Stack) -> Observed:
    with stack.fault_lock:
        before = len(stack.arm_requests())
        stack.arm_fault({"kind": "http", "method": "GET",
                         "pathContains": "networkWatchers/NetworkWatcher_eastus",
                         "status": 403, "code": "AuthorizationFailed"})
        try:
            r = stack.start_capture(stack.vm("vm1"), seconds=4)
            assert r.status == 202, (r.status, r.body)
            final = stack.wait(r.body["statusQueryGetUri"])
            requests = stack.arm_requests()
        finally:
            stack.arm_clear_faults()
    return {"final": final, "requests": requests, "before": before}


QUEUES: dict[str, list[Callable[[Stack], Observed]]] = {
    "vm1": [alert_with_duplicate, stop_early, terminate, capture_error],
    "vm2": [throttled, agent_missing],
}
EXCLUSIVE: list[Callable[[Stack], Observed]] = [email_outage, watcher_forbidden,
                                                alert_storm, crash_and_resume, flaky_arm,
                                                deploy_mid_run, unversioned_change_mid_run]


class Runs:
    """Starts every scenario once, in the background; `get(name)` waits for one."""

    def __init__(self, stack: Stack) -> None:
        self._futures: dict[str, Future[Observed]] = {}
        self._pools = {vm: ThreadPoolExecutor(1, thread_name_prefix=f"e2e-{vm}")
                       for vm in [*QUEUES, "exclusive"]}
        for vm, scenarios in QUEUES.items():
            for scenario in scenarios:
                self._futures[scenario.__name__] = self._pools[vm].submit(scenario, stack)
        queued = list(self._futures.values())

        def exclusive(scenario: Callable[[Stack], Observed]) -> Observed:
            for f in queued:  # the stack to itself: wait for the VM queues (errors or not)
                f.exception()
            return scenario(stack)

        for scenario in EXCLUSIVE:
            self._futures[scenario.__name__] = self._pools["exclusive"].submit(
                exclusive, scenario)

    def get(self, name: str, timeout: float = 280) -> Observed:
        return self._futures[name].result(timeout=timeout)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=False)
