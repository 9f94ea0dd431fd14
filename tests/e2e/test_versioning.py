"""Runs in flight survive a deploy (versioning.py has the scenarios)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_run_started_on_the_landed_release_completes_on_todays_code(runs: Any) -> None:
    seen = runs.get("deploy_mid_run")
    assert seen["deploy"].returncode == 0, seen["deploy"].stderr
    running = seen["running"]
    # It really was yesterday's code: its input has no version (version 1).
    assert "version" not in str(running.get("input")), running.get("input")
    final = seen["final"]
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "captured", output
    assert output["capture_status"]["status"] == "Stopped"
    assert output["notification"]["status"].lower() == "succeeded"
    assert seen["restored"].returncode == 0


def test_an_unversioned_change_to_the_steps_fails_runs_in_flight(runs: Any) -> None:
    seen = runs.get("unversioned_change_mid_run")
    final = seen["final"]
    assert final["runtimeStatus"] == "Failed", final
    assert "Non-Deterministic" in str(final["output"]), final["output"]
    assert seen["restored"].returncode == 0
