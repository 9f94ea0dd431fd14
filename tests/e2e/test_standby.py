"""Issue #14 on the local stack: standby1 keeps a ring (a real continuous capture in its
own network namespace, started by the sweep route, since the local host fires no timers);
it sends a burst at T; the alert fired at T+10 s arrives at T+20 s; the run harvests the
ring files from before the alert, summarises them with the after-alert capture, and the
email marks the alert time and links each harvested file.

Ring settings for standby1 (small files, short check interval): localdev/stack.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localdev.demo import demo_alert
from localdev.stack import STANDBY_VM

from .stack import Stack, free_port, http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _exclusive(exclusive_stack: Stack) -> None:
    """This module starts runs: no background scenario's fault may meet them."""


def _standby_state(stack: Stack) -> dict[str, Any]:
    r = http("GET", stack._api("standby", "default"))
    assert r.status == 200, r.body
    return dict(r.body)


def _burst(stack: Stack, seconds: float) -> int:
    """A TCP flood from inside standby1's namespace to a sink on its host side."""
    sb = stack.demo["standby"]
    port = free_port(sb["host_ip"])
    subprocess.run([sys.executable, "-m", "localdev.traffic", "--listen", sb["host_ip"],
                    "--port", str(port), "--seconds", str(seconds), "--rate", "20",
                    "--netns", sb["netns"]], check=True, timeout=seconds + 20,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return port


TRICKLE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendto(b"tick", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.5)
"""


def _trickle(stack: Stack, seconds: float) -> subprocess.Popen[bytes]:
    """Two small UDP datagrams a second from standby1: a VM is never silent, and the
    after-alert capture needs packets after the alert for the before/after split."""
    sb = stack.demo["standby"]
    return subprocess.Popen(["ip", "netns", "exec", sb["netns"], sys.executable, "-c", TRICKLE,
                             sb["host_ip"], str(free_port(sb["host_ip"])), str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def harvested(stack: Stack) -> dict[str, Any]:
    vm = stack.vm(STANDBY_VM)
    swept = http("POST", stack._api("standby/sweep", "default"), {})
    assert swept.status == 200, swept.body
    assert vm in swept.body["vms"] and not swept.body["problems"], swept.body
    deadline = time.monotonic() + 45
    ring: dict[str, Any] = {}
    while time.monotonic() < deadline:  # the keeper's first look creates the ring
        entry = next(e for e in _standby_state(stack)["standby"] if e["vmId"] == vm)
        ring = entry.get("state") or {}
        if ring.get("ringStatus") == "Running":
            break
        time.sleep(1)
    assert ring.get("ringStatus") == "Running", ring
    t = datetime.now(UTC)
    port = _burst(stack, 1.5)
    trickle = _trickle(stack, 90)
    try:
        fired = t + timedelta(seconds=10)
        time.sleep(max(0.0, (t + timedelta(seconds=20) - datetime.now(UTC)).total_seconds()))
        r = stack.post_alert(demo_alert(vm, fired))
        assert r.status == 202, r.body
        final = stack.wait(r.body["statusQueryGetUri"], timeout=120)
    finally:
        trickle.kill()
        trickle.wait()
    return {"final": final, "port": port, "burst_at": t, "fired": fired, "vm": vm,
            "sweep": swept.body, "ring": ring}


def test_the_sweep_starts_a_keeper_that_keeps_a_running_ring(harvested: dict[str, Any]
                                                             ) -> None:
    assert harvested["sweep"]["started"] or harvested["sweep"]["running"]
    ring = harvested["ring"]
    assert ring["action"] in ("created", "kept") and ring["ring"].startswith("alertcap.standby-")


def test_the_summary_holds_the_burst_from_before_the_alert(harvested: dict[str, Any]) -> None:
    final = harvested["final"]
    assert final["runtimeStatus"] == "Completed", final
    out = final["output"]
    assert out["outcome"] == "captured", out
    harvest = out["harvest"]
    assert harvest["standby"] is True and harvest["files"], harvest
    # every harvested file closed before the alert reached us, and one before it fired
    closed = sorted(f["closed_at"] for f in harvest["files"])
    fired = harvested["fired"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert closed[0] < fired, (closed, fired)
    summary = out["summary"]["summary"]
    changes = summary["changes"]
    assert changes["basis"] == "alert", ({k: summary.get(k) for k in (
        "start_iso", "end_iso", "packets")}, out["summary"].get("blob_url"), out["warnings"],
        fired)
    # Split at the alert, to the summary's time slice, not the millisecond: 16 slices whose
    # width doubles until they cover the capture, so a slice is at most 1/8 of the capture
    # and the split at most one slice from the alert (half a slice inside the capture; the
    # harvest reaches back over the ring, so the capture may be a minute long).
    span = changes["first_half_s"] + changes["second_half_s"]
    off = abs(changes["split_at"] - harvested["fired"].timestamp())
    assert off <= span / 8 + 0.01, (changes["split_at_iso"], off, span)
    burst = [c for c in changes["conversations"] if harvested["port"] in (c["a_port"],
                                                                          c["b_port"])]
    assert burst, changes["conversations"]
    assert all(c["first"] > 0 and c["second"] == 0 for c in burst), burst


def test_the_harvested_files_are_copies_with_read_links(stack: Stack,
                                                        harvested: dict[str, Any]) -> None:
    for f in harvested["final"]["output"]["harvest"]["files"]:
        assert "/alertcap-harvest/" in f["url"] and f["source"] != f["url"]
        assert f["link"] and f["link_expires"]
        data = stack.download_blob(f["url"])
        assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4") and len(data) > 24


def test_the_email_marks_the_alert_time_and_links_each_harvested_file(
        stack: Stack, harvested: dict[str, Any]) -> None:
    out = harvested["final"]["output"]
    deadline, mails = time.monotonic() + 30, []
    while time.monotonic() < deadline and not mails:
        mails = stack.emails_for(out)
        time.sleep(0.5)
    assert len(mails) == 1, mails
    text, html = mails[0]["plainText"], mails[0]["html"]
    assert f"ALERT AT {out['harvest']['alert_time']}" in text
    for f in out["harvest"]["files"]:
        assert f["link"] in text
        assert f["link"].replace("&", "&amp;") in html
