"""``python -m localdev demo``: the whole user story on the local stack.

up, make vm1 send an unusual burst of TCP traffic, post a real-shaped common-schema
metric alert with the function key, follow the run with a progress line, print the
capture file, the traffic summary and the email, then down (unless ``--keep``).

Beside it, issue #14's standby story: the sweep finds standby1 by its tag and its keeper
starts a ring; standby1 sends a short burst, its alert fires only after the burst is over,
and its run harvests the ring: the demo prints the packets from before the alert, the
email's "Before the alert" section, and how long the ring would have kept those files.

Boundary: the story only; starting the stack is ``localdev.stack``'s, talking to it is
``localdev.client``'s.
"""

from __future__ import annotations

import secrets
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from localdev import stack
from localdev.client import StackClient, http
from localdev.stack import (
    DEMO_RG,
    ROOT,
    STANDBY_TAG,
    STANDBY_VM,
    STATE,
    SUBSCRIPTION,
    say,
    vm_id,
)
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
    standby = _Standby(client, info["standby"]) if info.get("standby") else None
    if standby:  # first: the ring needs a few seconds to start, vm1's story runs meanwhile
        standby.sweep()
    traffic = _start_burst(info)
    try:
        say("vm1 sends an unusual burst of TCP traffic; Azure Monitor fires an alert")
        r = client.post_alert(demo_alert(vm, datetime.now(UTC)))
        if r.status != 202:
            raise SystemExit(f"webhook answered {r.status}: {r.body}")
        say(f"webhook answered 202: run {r.body['id']}")
        if standby:
            standby.alert_after_burst()
        say(f"following {r.body['id']}")
        final = client.follow(r.body["statusQueryGetUri"])
    finally:
        stop(traffic.pid, timeout=3)
    output = _output(final)
    print()
    _print_result(client, final, output, info)
    _print_channels(client, output)
    ok = output.get("outcome") == "captured"
    if standby:
        print()
        ok = standby.finish() and ok
    say(f"demo finished in {time.monotonic() - started:.0f}s")
    if not keep:
        stack.down()
    return 0 if ok else 1


def _output(final: dict[str, Any]) -> dict[str, Any]:
    output = final.get("output")
    if not isinstance(output, dict):  # a Failed run's output is the error text
        output = {"outcome": "failed", "reason": str(output)}
    return output


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Standby:
    """standby1's part: tag -> sweep -> ring; burst; alert after it; the harvest shown."""

    BURST_SECONDS = 3.0
    BURST_RATE = 150  # new connections/s: churn findings.py calls churn (>= 200, >= 20/s)
    ALERT_DELAY = 3.0  # the alert fires this long after the burst ends (Azure: minutes)

    def __init__(self, client: StackClient, net: dict[str, Any]) -> None:
        self.client, self.net = client, net
        self.vm = vm_id(STANDBY_VM)
        self.trickle: Any = None
        self.sink: socket.socket | None = None
        self.status_url: str | None = None
        self.burst: tuple[datetime, datetime] | None = None
        self.fired: datetime | None = None
        self.swept_at = datetime.now(UTC)
        self.state: dict[str, Any] = {}

    def _api(self, method: str, route: str) -> Any:
        r = http(method, self.client._api(route, "default"), {} if method == "POST" else None)
        if r.status != 200:
            raise SystemExit(f"{method} /api/{route} answered {r.status}: {r.body}")
        return r.body

    def _forget_earlier_rings(self) -> None:
        """Azurite keeps its blobs between demos: an earlier demo's ring files (same VM,
        same ring name) would sit in this alert's lookback and be harvested as evidence.
        A fresh VM has no ring history; removing them is the demo's, not the app's, job."""
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import ContainerClient

        container = ContainerClient.from_connection_string(
            self.client.endpoints["blob_connection_string"], "network-watcher-logs")
        folder = self.vm.lower().lstrip("/") + "/"
        try:
            for blob in container.list_blobs(name_starts_with=folder):
                container.delete_blob(blob.name)
        except ResourceNotFoundError:  # the first demo on this machine
            pass

    def sweep(self) -> None:
        """What the 5-minute timer does (the local host fires no timers)."""
        self._forget_earlier_rings()
        self.swept_at = datetime.now(UTC)
        body = self._api("POST", "standby/sweep")
        found = [v.rsplit("/", 1)[-1] for v in body["vms"]]
        if body["problems"] or self.vm.lower() not in {v.lower() for v in body["vms"]}:
            raise SystemExit(f"the standby sweep did not find {STANDBY_VM}: {body}")
        say(f"standby sweep of {DEMO_RG}: found {', '.join(found)} by the tag "
            f"{STANDBY_TAG}=true; keeper {'started' if body['started'] else 'already running'}")

    def _ring_running(self, timeout: float = 45) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.state = self._api("GET", "standby")
            entry = next(e for e in self.state["standby"] if e["vmId"].lower() == self.vm.lower())
            ring = entry.get("state") or {}
            # Looked at since the sweep: a keeper kept from an earlier demo (the host's
            # store outlives the stack) may still show that stack's ring as Running.
            fresh = _at(ring.get("checkedAt") or "1970-01-01T00:00:00Z") >= \
                self.swept_at - timedelta(seconds=1)
            if ring.get("ringStatus") == "Running" and fresh:
                return dict(entry)
            time.sleep(0.5)
        raise SystemExit(f"{STANDBY_VM}'s ring is not Running after {timeout:.0f}s: {self.state}")

    def alert_after_burst(self) -> None:
        entry = self._ring_running()
        ring = self.state["ring"]
        say(f"{STANDBY_VM}'s ring {entry['ring']} is Running: {ring['fileCount']} files of "
            f"{ring['fileSizeInBytes'] // 1024} KiB, the oldest deleted as each new one closes")
        host = self.net["host_ip"]
        sup = stack.supervisor()
        base = [sys.executable, "-m", "localdev.traffic", "--netns", self.net["netns"]]
        # Never quite silent: the capture after the alert has packets of its own. A bound
        # socket takes the datagrams, so no ICMP port-unreachable joins the evidence.
        self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sink.bind((host, 0))
        self.trickle, _ = sup.spawn("standby-trickle", [
            *base, "--trickle", f"{host}:{self.sink.getsockname()[1]}", "--seconds", "60"])
        start = datetime.now(UTC)
        burst, _ = sup.spawn("standby-burst", [
            *base, "--listen", host, "--seconds", str(self.BURST_SECONDS),
            "--rate", str(self.BURST_RATE), "--no-bulk"])
        burst.wait(timeout=self.BURST_SECONDS + 20)
        end = datetime.now(UTC)
        self.burst = (start, end)
        self.fired = end + timedelta(seconds=self.ALERT_DELAY)
        say(f"{STANDBY_VM} sends a {self.BURST_SECONDS:.0f} s burst of short connections "
            f"({_iso(start)} to {_iso(end)}), then only a trickle; its alert fires "
            f"{self.ALERT_DELAY:.0f} s after the burst, when a capture started now would "
            "see nothing of it")
        time.sleep(max(0.0, (self.fired - datetime.now(UTC)).total_seconds()))
        r = self.client.post_alert(demo_alert(self.vm, self.fired))
        if r.status != 202:
            raise SystemExit(f"webhook answered {r.status} for {STANDBY_VM}: {r.body}")
        state = (r.body.get("instances") or [{}])[0].get("state")
        say(f"webhook answered 202 ({state}): run {r.body['id']}; its keeper is live, so it "
            "harvests the ring first")
        self.status_url = r.body["statusQueryGetUri"]

    def finish(self) -> bool:
        try:
            assert self.status_url
            final = self.client.wait(self.status_url, timeout=120)
        finally:
            if self.trickle is not None:
                stop(self.trickle.pid, timeout=3)
            if self.sink is not None:
                self.sink.close()
        output = _output(final)
        say(f"{STANDBY_VM}'s run {final.get('runtimeStatus')}: outcome {output.get('outcome')}, "
            f"reason {output.get('reason')}")
        harvest = output.get("harvest") or {}
        summary = (output.get("summary") or {}).get("summary") or {}
        if not harvest.get("files"):
            say(f"standby: no ring file harvested ({harvest or 'no harvest'})")
            return False
        self._print_before(harvest, summary)
        self._print_email(output)
        self._print_rotation(harvest)
        changes = summary.get("changes") or {}
        return output.get("outcome") == "captured" and changes.get("basis") == "alert" \
            and int((changes.get("packets") or {}).get("first") or 0) > 0

    def _print_before(self, harvest: dict[str, Any], summary: dict[str, Any]) -> None:
        from alertcap import pcap

        files = harvest["files"]
        alert = _at(harvest["alert_time"])
        changes = summary.get("changes") or {}
        before = int((changes.get("packets") or {}).get("first") or 0)
        earliest = min(_at(f.get("first_packet_at") or f["closed_at"]) for f in files)
        names = [f["url"].rsplit("/", 1)[1] for f in files]
        shown = ", ".join(names) if len(names) <= 4 else \
            f"{', '.join(names[:2])}, ... {names[-1]} ({len(names)} files)"
        say(f"standby: {before:,} packets from T-{(alert - earliest).total_seconds():.1f} s "
            f"before the alert (T = {harvest['alert_time']}); files: {shown}")
        say(f"harvested copies in {files[0]['url'].rsplit('/', 1)[0]}/")
        if changes.get("basis") != "alert":
            say(f"the summary was not split at the alert (basis {changes.get('basis')})")
        # the verdict, the findings and the before/after tables: the part about the burst
        text = pcap.render_text(summary, rows=3)
        head = text.split("\nCapture summary\n")[0].rstrip()
        tail = text.split("\nWhat changed between the first and second half\n", 1)
        print(head)
        if len(tail) == 2:
            print(f"\nBefore (first half) and after (second half) the alert\n{tail[1].rstrip()}")

    def _print_email(self, output: dict[str, Any]) -> None:
        mails = _emails_for(self.client, output)
        if not mails:
            say(f"no email for {STANDBY_VM}'s run yet")
            return
        text = mails[-1].get("plainText", "")
        say(f"email sent: {mails[-1].get('subject')}; its standby section:")
        section = text.split("\nBefore the alert (standby ring;", 1)
        if len(section) == 2:
            lines = ("Before the alert (standby ring;" + section[1]).split("\n\n", 1)[0]
            print("\n".join(lines.splitlines()[:6]))

    def _print_rotation(self, harvest: dict[str, Any]) -> None:
        """How long the ring itself would have kept the files, and where the copies are."""
        ring = self.state["ring"]
        files = harvest["files"]
        alert = _at(harvest["alert_time"])
        taken = (_at(harvest["window_end"]) - alert).total_seconds()
        first = min(_at(f.get("first_packet_at") or f["closed_at"]) for f in files)
        last = max(_at(f["closed_at"]) for f in files)
        written = sum(int(f.get("size_bytes") or 0) for f in files)
        rate = written / max((last - first).total_seconds(), 1.0)
        keeps = ring["fileCount"] * ring["fileSizeInBytes"] / rate
        expiry = min((f.get("link_expires") or "" for f in files), default="") or "-"
        # In the ring, a file lives until file_count newer files have closed after it.
        safe_until = min(_at(f["closed_at"]) for f in files) + timedelta(seconds=keeps)
        say(f"rotation: {STANDBY_VM}'s ring holds {ring['fileCount']} x "
            f"{ring['fileSizeInBytes'] // 1024} KiB; at the burst's {rate / 1024:,.0f} KiB/s "
            f"a ring file is deleted about {keeps:,.0f} s after it closes, so these files were "
            f"safe in the ring until about T+{(safe_until - alert).total_seconds():,.0f} s "
            "(longer when the VM is quieter). The run copied them at "
            f"T+{taken:.1f} s to alertcap-harvest/, outside the ring, where rotation never "
            f"deletes them (read links until {expiry}).")


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
    messages = _emails_for(client, output)
    if messages:
        message = messages[-1]
        say(f"email sent to {', '.join(_addresses(message))}: {message.get('subject')}")
        # The summary was printed above; the email's own lines are what the on-call reads.
        print(message.get("plainText", "").split("\nCapture summary\n")[0].rstrip())
        say(f"the same email as HTML in {client.endpoints['inbox_dir']} "
            f"(inbox page {info.get('inbox_url')} while the stack runs)")


def _emails_for(client: StackClient, output: dict[str, Any]) -> list[dict[str, Any]]:
    """This run's messages (the demo's other run emails too)."""
    return [m for m in client.inbox()
            if (m.get("headers") or {}).get("x-alertcap-instance") == output.get("instance_id")]


def _addresses(message: dict[str, Any]) -> list[str]:
    to = message.get("to") or []
    return [t.get("address", str(t)) if isinstance(t, dict) else str(t) for t in to]


def _teams_png(folder: Any, instance_id: str) -> str | None:
    """This run's Teams card picture (the standby VM's run posts a card too)."""
    import json

    found = None
    # By time written: the sequence in the names restarts with each receiver process.
    for f in sorted(folder.glob("*-teams.json"), key=lambda f: f.stat().st_mtime):
        rec = json.loads(f.read_text())
        if instance_id and instance_id in json.dumps(rec.get("body")) and rec.get("png"):
            found = str(rec["png"][0])
    return found


def _print_channels(client: StackClient, output: dict[str, Any]) -> None:
    """Where each channel's delivery can be seen (the local receivers keep every one)."""
    from pathlib import Path

    rx = client.endpoints.get("receivers_url")
    if not rx:
        return
    for c in output.get("channels") or []:
        say(f"{c.get('channel')}: {c.get('status')} after {c.get('attempts')} attempt(s)")
    folder = Path(str(client.endpoints["deliveries_dir"]))
    png = _teams_png(folder, str(output.get("instance_id") or ""))
    if png:
        say(f"Teams card as Teams renders it: {png}")
    say(f"every delivery's body (Teams, Slack, PagerDuty, webhook): {folder}/*.json; "
        f"listing {rx}/_localdev/deliveries, PagerDuty alerts {rx}/_localdev/pagerduty "
        "(HTTPS with the stack's certificate, ca_bundle in endpoints.json)")
    if output.get("instance_id"):
        say(f"run page: {client.base}/api/runs/{output['instance_id']}?code=<function key "
            "from endpoints.json>")
