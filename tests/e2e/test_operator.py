"""Issue 4, what an operator does with a live or broken run: stop the capture early,
terminate the run through the Durable management API, and rewind a run whose email
could not be sent once the email service is back.
"""

from __future__ import annotations

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


def test_terminate_ends_the_run_and_the_capture_runs_to_its_time_limit(
        stack: Stack, runs: Any) -> None:
    seen = runs.get("terminate")
    assert seen["terminate"].status == 202, (seen["terminate"].status, seen["terminate"].body)
    final = seen["final"]
    assert final["runtimeStatus"] == "Terminated", final
    name = seen["running"]["customStatus"]["capture"]
    # Terminating the orchestration does not stop the capture (Azure behaves alike) ...
    after = {c["name"]: c for c in seen["captures_after"]}
    assert name in after
    # ... which ends on its own at its 4 s time limit; and no email is sent for the run.
    later = {c["name"]: c for c in seen["captures_later"]}
    assert name in later
    assert later[name]["properties"]["timeLimitInSeconds"] == 4
    assert not [m for m in seen["inbox"] if name in (m.get("plainText") or "")]


def test_a_run_whose_email_failed_is_rewound_and_sends_one_email(
        stack: Stack, runs: Any) -> None:
    seen = runs.get("email_outage_then_rewind")
    failed = seen["failed"]
    assert failed["runtimeStatus"] == "Failed", failed
    instance = seen["start"].body["id"]
    assert seen["rewind"].status == 202, (seen["rewind"].status, seen["rewind"].body)
    final = seen["final"]
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["instance_id"] == instance
    assert output["outcome"] == "captured"
    assert output["notification"]["status"].lower() == "succeeded"
    messages = stack.emails_for(output)
    assert len(messages) == 1, [m["subject"] for m in messages]
    # None was stored during the outage.
    assert not [m for m in seen["inbox_when_failed"] if m["id"] == messages[0]["id"]]
