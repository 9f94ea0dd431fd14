"""Issue 16: a finished run reaches Teams, Slack, PagerDuty and the signed webhook (the
local receivers `localdev up` starts), the alert's Resolved notification resolves its
PagerDuty alert, and a channel that is down for the whole run costs only that channel.

Each test has a VM of its own (storm011, storm012: see reliability.EXTRA_VMS), so other
scenarios running beside it never attach to its run; deliveries are told apart by the
run's instance id in their bodies, and the outage fault matches only this run's body.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alertcap.channels.pagerduty import dedup_key
from localdev.demo import demo_alert

from .stack import Response, Stack, http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _exclusive(exclusive_stack: Stack) -> None:
    """This module starts runs: no background scenario's fault may meet them."""

CHANNELS = ("teams", "slack", "pagerduty", "webhook")


def receiver(stack: Stack, method: str, path: str, body: Any = None) -> Response:
    return http(method, stack.endpoints["receivers_url"] + path, body, context=stack.tls)


def deliveries_of(stack: Stack, instance_id: str) -> list[dict[str, Any]]:
    """Accepted deliveries whose stored body names the run (the receiver keeps them on
    disk; the listing itself holds no body)."""
    r = receiver(stack, "GET", "/_localdev/deliveries")
    assert r.status == 200, r.body
    found = []
    for d in r.body["deliveries"]:
        if d.get("accepted") and d.get("file"):
            doc = json.loads(Path(d["file"]).read_text())
            if instance_id in json.dumps(doc["body"]):
                found.append({**d, "body": doc["body"]})
    return found


def fired(stack: Stack, vm: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Post a Fired alert for VM and wait for its run; (alert, final status)."""
    alert = demo_alert(stack.vm(vm), datetime.now(UTC))
    r = stack.post_alert(alert)
    assert r.status == 202, (r.status, r.body)
    final = stack.wait(r.body["instances"][0]["statusQueryGetUri"], timeout=120)
    return alert, final


def test_a_run_is_delivered_to_every_channel_and_its_resolved_alert_resolves_pagerduty(
        stack: Stack) -> None:
    alert, final = fired(stack, "storm011")
    assert final["runtimeStatus"] == "Completed", final
    out = final["output"]
    assert {c["channel"]: c["status"] for c in out["channels"]} == dict.fromkeys(
        CHANNELS, "delivered"), out["channels"]
    got = deliveries_of(stack, out["instance_id"])
    assert sorted(d["channel"] for d in got) == sorted(CHANNELS), got
    teams = next(d for d in got if d["channel"] == "teams")
    assert teams["png"] and all(Path(p).stat().st_size > 1000 for p in teams["png"]), teams
    assert "storm011" in " ".join(teams["rendered_text"])
    webhook = next(d for d in got if d["channel"] == "webhook")
    assert webhook["body"]["run"]["instance_id"] == out["instance_id"]

    alert_id = alert["data"]["essentials"]["alertId"]
    key = dedup_key(alert_id=alert_id)
    alerts = receiver(stack, "GET", "/_localdev/pagerduty").body["alerts"]
    assert alerts[key]["status"] == "triggered", alerts.get(key)

    resolved = json.loads(json.dumps(alert))
    resolved["data"]["essentials"].update(
        monitorCondition="Resolved",
        resolvedDateTime=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"))
    r = stack.post_alert(resolved)
    assert r.status == 202 and r.body["status"] == "resolving", (r.status, r.body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alerts = receiver(stack, "GET", "/_localdev/pagerduty").body["alerts"]
        if alerts[key]["status"] == "resolved":
            break
        time.sleep(0.5)
    assert alerts[key]["status"] == "resolved", alerts[key]


def test_a_channel_down_for_the_whole_run_leaves_the_others_delivered(stack: Stack) -> None:
    started = time.monotonic()
    r = stack.start_capture(stack.vm("storm012"), seconds=3)
    assert r.status == 202, (r.status, r.body)
    instance = r.body["id"]
    fault = receiver(stack, "POST", "/_localdev/faults",
                     {"channel": "slack", "status": 503, "bodyContains": instance})
    assert fault.status == 201, fault.body
    try:
        final = stack.wait(r.body["statusQueryGetUri"], timeout=100)
    finally:
        # No other test injects receiver faults: clearing them all is safe.
        assert receiver(stack, "DELETE", "/_localdev/faults").status == 204
    wall = time.monotonic() - started
    assert final["runtimeStatus"] == "Completed", final
    out = final["output"]
    status = {c["channel"]: c for c in out["channels"]}
    assert status["slack"]["status"] == "undelivered", status
    assert status["slack"]["attempts"] >= 2 and "503" in status["slack"]["error"], status
    assert all(status[c]["status"] == "delivered" for c in ("teams", "pagerduty", "webhook"))
    assert out["notification"]["status"] == "Succeeded", out["notification"]
    assert sorted(d["channel"] for d in deliveries_of(stack, instance)) == [
        "pagerduty", "teams", "webhook"]
    # Local give-up is 40 s (localdev/stack.py): the run ends within a minute or so.
    assert wall < 75, wall
