"""No capture of ours runs unseen (issue #12 B4), on the live stack: a run terminated, or
terminated and purged, while its capture runs; and the race where a terminated run's
throttled PUT lands after the VM's next run cleared stale captures. What counts is what the
local ARM endpoint lists, not what the app says about itself. The stop route's case is
tests/e2e/test_operator.py::test_stop_ends_the_capture_early_and_says_who_stopped_it; a 403
on the listing is tests/app/test_orphans.py's (a 403 rule on the shared watcher here would
fail the background scenarios' runs).

VMs storm018 and storm019 are this module's (reliability.EXTRA_VMS).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from localdev.cli import demo_alert

from .stack import Response, Stack, http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VM_A, VM_B = "storm018", "storm019"


@pytest.fixture(scope="module")
def quiet_stack(exclusive_stack: Stack, runs: Any) -> Stack:
    # The sweep stops every gone run's capture on the watcher: wait until the vm1 scenario
    # that watches a terminated run's capture run to its time limit has looked.
    runs.get("terminate")
    return exclusive_stack


def sweep(stack: Stack) -> dict[str, Any]:
    r = http("POST", f"{stack.base}/api/orphans/sweep?code={stack.function_key}")
    assert r.status == 200, (r.status, r.body)
    return dict(r.body)


def names(stack: Stack, vm: str) -> set[str]:
    return {c["name"] for c in stack.vm_captures(vm)}


def terminate(stack: Stack, started: Response) -> dict[str, Any]:
    term = stack.status_post(started.body["instances"][0]["terminatePostUri"]
                             .replace("{text}", "e2e"))
    assert term.status == 202, (term.status, term.body)
    return stack.wait(started.body["statusQueryGetUri"], timeout=30)


def capturing_then_gone(stack: Stack, vm: str, purge: bool) -> tuple[str, dict[str, Any]]:
    """A run whose capture (60 s limit) is running, terminated (and purged): its capture."""
    r = stack.start_capture(stack.vm(vm), seconds=60)
    assert r.status == 202, (r.status, r.body)
    running = stack.wait_phase(r.body["statusQueryGetUri"], "capturing", timeout=60)
    final = terminate(stack, r)
    assert final["runtimeStatus"] == "Terminated", final
    if purge:
        gone = http("DELETE", stack.with_key(r.body["statusQueryGetUri"]))
        assert gone.status == 200, (gone.status, gone.body)
        after = http("GET", stack.with_key(r.body["statusQueryGetUri"]))
        assert after.status == 404, after.status
    return running["customStatus"]["capture"], r.body


def test_a_terminated_and_a_purged_runs_captures_are_stopped_by_the_sweep(
        quiet_stack: Stack) -> None:
    stack = quiet_stack
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(capturing_then_gone, stack, VM_A, False)
        b = pool.submit(capturing_then_gone, stack, VM_B, True)
        (terminated, _), (purged, _) = a.result(), b.result()
    # Terminating (or purging) a run does not stop its capture: it is still there.
    assert terminated in names(stack, VM_A) and purged in names(stack, VM_B)

    report = sweep(stack)
    stopped = {s["name"]: s for s in report["stopped"]}
    assert terminated in stopped and purged in stopped, report
    assert stopped[terminated]["run"] == "Terminated"
    assert stopped[purged]["run"] == "gone (purged)"
    assert stopped[terminated]["captureStatus"] == "Running"
    assert stopped[terminated]["target"].lower() == stack.vm(VM_A).lower()
    # ARM: both sessions are gone (stopped, then deleted; their blobs stay).
    assert terminated not in names(stack, VM_A) and purged not in names(stack, VM_B)

    # Idempotent: the next sweep finds nothing of these to stop.
    again = sweep(stack)
    assert not {terminated, purged} & {s["name"] for s in again["stopped"]}, again


def test_terminate_in_creating_capture_then_re_alert_leaves_nothing_running(
        quiet_stack: Stack) -> None:
    """The issue's race: the first run's PUT is held by 429 + Retry-After; the run is
    terminated in `creating-capture` and the VM alerts again at once. The held PUT lands
    after the new run cleared stale captures: for a while two captures of ours run on the
    VM. Whoever looks first (the new run's own sweep, or the orphan sweep) removes it."""
    stack = quiet_stack
    stack_vm = stack.vm(VM_A)
    stack.arm_fault({"kind": "http", "method": "PUT",
                     "pathContains": f"packetCaptures/alertcap-{VM_A}", "status": 429,
                     "retryAfter": 4, "count": 2})
    try:
        first = stack.start_capture(stack_vm, seconds=60)
        assert first.status == 202, (first.status, first.body)
        held = stack.wait_phase(first.body["statusQueryGetUri"], "creating-capture",
                                timeout=60)
        old = held["customStatus"]["capture"]
        assert terminate(stack, first)["runtimeStatus"] == "Terminated"
        again = stack.post_alert(demo_alert(stack_vm, datetime.now(UTC)))
        assert again.status == 202, (again.status, again.body)
        final = stack.wait(again.body["statusQueryGetUri"], timeout=120)
    finally:
        stack.arm_clear_faults()
    assert final["runtimeStatus"] == "Completed", final
    new = final["output"]["capture"]["name"]
    assert new != old
    puts = [q for q in stack.arm_requests()
            if q.get("method") == "PUT" and old in str(q.get("path"))]
    assert any(q.get("status") == 201 for q in puts), puts  # the held PUT did land

    report = sweep(stack)
    left = names(stack, VM_A)
    # Only the new run's capture is left, and it ended (the run saw it Stopped).
    assert old not in left, (left, report)
    assert {n for n in left if n.startswith(f"alertcap-{VM_A}")} <= {new}
    assert final["output"]["capture_status"]["status"] == "Stopped"
