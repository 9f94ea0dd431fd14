"""What an operator does with a live or broken run: stop the capture early, terminate the
run through the Durable management API; and what they no longer need to do: a run whose
email could not be sent keeps trying on its own (no rewind), and a finished run's
notification can be sent again with POST /api/runs/{id}/notify.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from .stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _seconds(start: str, end: str) -> float:
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def test_stop_ends_the_capture_early_and_says_who_stopped_it(runs: Any) -> None:
    seen = runs.get("stop_early")
    assert seen["stop"].status == 202, (seen["stop"].status, seen["stop"].body)
    assert seen["stop"].body["state"] == "stopping"
    final = seen["final"]
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "captured", output
    assert output["stopped_by"] == "operator"
    assert output["capture_status"]["status"] == "Stopped"
    # The time limit was 120 s; the capture itself lasted a few seconds.
    assert _seconds(output["started_at"], output["finished_at"]) < 30
    assert seen["wall"] < 100


def test_a_stop_for_a_finished_run_is_refused(stack: Stack, runs: Any) -> None:
    seen = runs.get("stop_early")
    r = stack.stop_capture(seen["start"].body["id"])
    assert r.status in (404, 409), (r.status, r.body)
    assert r.body["error"]["code"] in ("InstanceNotRunning", "InstanceNotFound")


def test_terminate_ends_the_run_but_not_its_capture_which_is_left_to_the_sweep(
        stack: Stack, runs: Any) -> None:
    seen = runs.get("terminate")
    assert seen["terminate"].status == 202, (seen["terminate"].status, seen["terminate"].body)
    final = seen["final"]
    assert final["runtimeStatus"] == "Terminated", final
    name = seen["running"]["customStatus"]["capture"]
    # Terminating the orchestration does not stop the capture (Azure behaves alike; the
    # orphan sweep stops it, tests/e2e/test_orphans.py; no timer fires here) ...
    after = {c["name"]: c for c in seen["captures_after"]}
    assert name in after
    # ... which ends on its own at its 4 s time limit; and no email is sent for the run.
    later = {c["name"]: c for c in seen["captures_later"]}
    assert name in later
    assert later[name]["properties"]["timeLimitInSeconds"] == 4
    assert not [m for m in seen["inbox"] if name in (m.get("plainText") or "")]


def test_an_email_outage_longer_than_the_retries_ends_with_one_email_and_no_operator(
        stack: Stack, runs: Any) -> None:
    seen = runs.get("email_outage")
    # While the service refused, the run was still running, and said why.
    during = seen["during"]
    assert during["runtimeStatus"] == "Running", during
    custom = during["customStatus"]
    assert custom["phase"] == "notifying" and custom["notifyAttempts"] >= 1, custom
    assert "503" in custom["lastError"]
    final = seen["final"]
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "captured"
    assert output["notification"]["status"].lower() == "succeeded"
    assert output["notification"]["attempts"] >= 2
    # The run record outlives the instance.
    assert output["record"] and output["record"].startswith(output["instance_id"]), output["warnings"]
    # Exactly one email for the run (none stored during the outage), until asked again.
    assert not [m for m in seen["inbox_during"] if output["started_at"] in json.dumps(m)]
    assert seen["again"].status == 202, (seen["again"].status, seen["again"].body)
    assert seen["again_final"]["runtimeStatus"] == "Completed", seen["again_final"]
    assert seen["again_final"]["output"]["status"].lower() == "succeeded"
    messages = stack.emails_for(output)
    assert len(messages) == 2, [m["subject"] for m in messages]
