"""``python -m localdev demo``: the whole user story on the local stack.

up, make vm1 send an unusual burst of TCP traffic, post a real-shaped common-schema
metric alert with the function key, follow the run with a progress line, print the
capture file, the traffic summary and the email, then down (unless ``--keep``).

Boundary: the story only; starting the stack is ``localdev.stack``'s, talking to it is
``localdev.client``'s.
"""

from __future__ import annotations

import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from localdev import stack
from localdev.client import StackClient
from localdev.stack import DEMO_RG, ROOT, STATE, SUBSCRIPTION, say, vm_id
from localdev.supervise import stop


def demo_alert(vm: str, fired: datetime) -> dict[str, Any]:
    """A common-schema metric alert, as an action group posts it for a dynamic threshold."""
    when = fired.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    name = vm.rsplit("/", 1)[-1]
    rule = f"{name}-outbound-flows-unusual"
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/"
                           f"alerts/{secrets.token_hex(16)}",
                "alertRule": rule, "severity": "Sev2", "signalType": "Metric",
                "monitorCondition": "Fired", "monitoringService": "Platform",
                "alertTargetIDs": [vm.lower()], "configurationItems": [name],
                "originAlertId": f"{SUBSCRIPTION}_{DEMO_RG}_microsoft.insights_metricalerts_{rule}",
                "firedDateTime": when,
                "description": f"{name} opens far more outbound TCP flows than usual",
                "essentialsVersion": "1.0", "alertContextVersion": "1.0"},
            "alertContext": {
                "properties": None, "conditionType": "DynamicThresholdCriteria",
                "condition": {"windowSize": "PT5M", "allOf": [{
                    "alertSensitivity": "Medium", "metricName": "Outbound Flows",
                    "metricNamespace": "Microsoft.Compute/virtualMachines",
                    "operator": "GreaterThan", "timeAggregation": "Average",
                    "dimensions": [], "metricValue": 412.0,
                    "failingPeriods": {"numberOfEvaluationPeriods": 4,
                                       "minFailingPeriodsToAlert": 3}}],
                    "windowStartTime": when, "windowEndTime": when}},
            "customProperties": None}}


def run(keep: bool = False) -> int:
    started = time.monotonic()
    stack.up()
    client = StackClient.load(STATE)
    import json

    info = json.loads((STATE / "demo.json").read_text())
    vm = vm_id("vm1")
    traffic = _start_burst(info)
    try:
        say("vm1 sends an unusual burst of TCP traffic; Azure Monitor fires an alert")
        r = client.post_alert(demo_alert(vm, datetime.now(UTC)))
        if r.status != 202:
            raise SystemExit(f"webhook answered {r.status}: {r.body}")
        say(f"webhook answered 202; following {r.body['id']}")
        final = client.follow(r.body["statusQueryGetUri"])
    finally:
        stop(traffic.pid, timeout=3)
    output = final.get("output")
    if not isinstance(output, dict):  # a Failed run's output is the error text
        output = {"outcome": "failed", "reason": str(output)}
    print()
    _print_result(client, final, output, info)
    _print_channels(client, output)
    say(f"demo finished in {time.monotonic() - started:.0f}s")
    if not keep:
        stack.down()
    return 0 if output.get("outcome") == "captured" else 1


def _start_burst(info: dict[str, Any]) -> Any:
    """A sink on the host side of vm1's link, and a client inside vm1 that floods it."""
    host = info.get("host_ip") or "127.0.0.1"
    argv = [sys.executable, "-m", "localdev.traffic", "--listen", host, "--seconds", "40"]
    if info.get("netns"):
        argv += ["--netns", info["netns"]]
    proc, _log = stack.supervisor().spawn("traffic", argv)
    return proc


def _print_result(client: StackClient, final: dict[str, Any], output: dict[str, Any],
                  info: dict[str, Any]) -> None:
    from alertcap import pcap

    say(f"run {final.get('runtimeStatus')}: outcome {output.get('outcome')}, "
        f"reason {output.get('reason')}")
    summary = output.get("summary") or {}
    blob_url = summary.get("blob_url")
    if blob_url:
        local = STATE / "demo" / "capture.cap"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(client.download_blob(blob_url))
        say(f"capture file: {blob_url}")
        shown = local.relative_to(ROOT) if local.is_relative_to(ROOT) else local
        say(f"downloaded to {shown} ({local.stat().st_size:,} bytes); "
            f"open it with: tcpdump -nr {shown} | head")
    if summary.get("summary"):
        say("traffic summary")
        print(pcap.render_text(summary["summary"]))
    messages = client.inbox()
    if messages:
        message = messages[-1]
        say(f"email sent to {', '.join(_addresses(message))}: {message.get('subject')}")
        # The summary was printed above; the email's own lines are what the on-call reads.
        print(message.get("plainText", "").split("\nCapture summary\n")[0].rstrip())
        say(f"the same email as HTML in {client.endpoints['inbox_dir']} "
            f"(inbox page {info.get('inbox_url')} while the stack runs)")


def _addresses(message: dict[str, Any]) -> list[str]:
    to = message.get("to") or []
    return [t.get("address", str(t)) if isinstance(t, dict) else str(t) for t in to]


def _print_channels(client: StackClient, output: dict[str, Any]) -> None:
    """Where each channel's delivery can be seen (the local receivers keep every one)."""
    from pathlib import Path

    rx = client.endpoints.get("receivers_url")
    if not rx:
        return
    for c in output.get("channels") or []:
        say(f"{c.get('channel')}: {c.get('status')} after {c.get('attempts')} attempt(s)")
    folder = Path(str(client.endpoints["deliveries_dir"]))
    pngs = sorted(folder.glob("teams-*.png"), key=lambda p: p.stat().st_mtime)
    if pngs:
        say(f"Teams card as Teams renders it: {pngs[-1]}")
    say(f"every delivery's body (Teams, Slack, PagerDuty, webhook): {folder}/*.json; "
        f"listing {rx}/_localdev/deliveries, PagerDuty alerts {rx}/_localdev/pagerduty "
        "(HTTPS with the stack's certificate, ca_bundle in endpoints.json)")
    if output.get("instance_id"):
        say(f"run page: {client.base}/api/runs/{output['instance_id']}?code=<function key "
            "from endpoints.json>")
