"""Issue 4: Azure misbehaving, injected at the local ARM endpoint. Throttling is retried
as Retry-After asks; a capture Network Watcher fails, a VM without its agent and a
permanent 403 each end in a Completed run with outcome "failed", a typed error and a
failure email that names the cause.
"""

from __future__ import annotations

from typing import Any

import pytest

from .stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _failed(final: dict[str, Any], code: str) -> dict[str, Any]:
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "failed", output
    assert output["error"]["code"] == code, output["error"]
    return dict(output)


def _one_failure_email(stack: Stack, output: dict[str, Any], vm: str) -> dict[str, Any]:
    messages = stack.emails_for(output)
    assert len(messages) == 1, [m["subject"] for m in messages]
    message = messages[0]
    assert message["subject"].startswith(f"[alertcap] Capture FAILED on {vm}")
    return message


def test_throttling_is_retried_after_retry_after_and_the_run_completes(runs: Any) -> None:
    seen = runs.get("throttled")
    final = seen["final"]
    assert final["runtimeStatus"] == "Completed", final
    assert final["output"]["outcome"] == "captured", final["output"]
    log = [r for r in seen["requests"] if "packetcaptures/alertcap-vm2" in r["path"].lower()]
    throttled = [i for i, r in enumerate(log) if r["status"] == 429]
    assert len(throttled) == 2, log
    for i in throttled:
        retry = next(r for r in log[i + 1:] if r["path"] == log[i]["path"])
        assert retry["timestamp"] - log[i]["timestamp"] >= 0.95, (log[i], retry)


def test_a_capture_ending_in_error_is_reported_as_failed(stack: Stack, runs: Any) -> None:
    output = _failed(runs.get("capture_error")["final"], "CaptureFailed")
    assert output["capture_status"]["status"] == "Error"
    assert "StorageFailed" in output["capture_status"]["errors"]
    message = _one_failure_email(stack, output, "vm1")
    assert "StorageFailed" in message["plainText"]


def test_a_vm_without_the_agent_fails_with_agent_missing(stack: Stack, runs: Any) -> None:
    seen = runs.get("agent_missing")
    output = _failed(seen["final"], "AgentMissing")
    assert output["capture"] is None
    message = _one_failure_email(stack, output, "vm2")
    assert "agent" in message["plainText"].lower()
    assert "AzureNetworkWatcherExtension" in message["plainText"] or \
        "Network Watcher agent" in message["plainText"]


def test_a_permanent_403_fails_fast_without_retries(stack: Stack, runs: Any) -> None:
    seen = runs.get("watcher_forbidden")
    output = _failed(seen["final"], "AccessDenied")
    denied = [r for r in seen["requests"][seen["before"]:] if r["status"] == 403]
    assert len(denied) == 1, denied
    assert output["capture"] is None
    _one_failure_email(stack, output, "vm1")
