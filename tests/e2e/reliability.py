"""Issue 6 scenarios on the live stack: an alert storm and a host crash mid-run.

Both need the stack to themselves (a storm loads the host, a crash kills it), so they run
in the exclusive queue after the per-VM scenarios. Sized to keep the suite fast; the full
storm (1,000 posts for 50 VMs) is `bench/storm_bench.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .stack import Response, Stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alerts"
ROOT = Path(__file__).resolve().parents[2]
STORM_VMS = 8          # storm000..storm007
STORM_POSTS_PER_VM = 12
CRASH_VMS = ("storm008", "storm009", "storm010")
FANOUT_VMS = ("storm016", "storm017")  # one multi-VM alert (tests/e2e/test_scale_sets.py)
EXTRA_VMS = 20         # conftest starts the stack with this many stormNNN VMs;
# storm011..storm013 belong to test_channels.py and test_run_page.py, storm014..015 to
# test_versioning.py, storm018..019 to test_orphans.py.

_VM_ID = re.compile(r"/subscriptions/[^\"]+?/virtualmachines/[A-Za-z0-9_.-]+", re.IGNORECASE)
SHAPES = ["common-metric-fired.json", "metric-noncommon-activated.json",
          "classic-metric-activated.json", "common-log-search-fired.json",
          "common-metric-resolved.json", "classic-metric-deactivated.json"]


def payload_for(shape: str, vm_id: str) -> Any:
    """A documented sample payload, re-pointed at one of our VMs."""
    text = (FIXTURES / shape).read_text()
    payload = json.loads(_VM_ID.sub(vm_id, text))
    if isinstance(payload.get("context"), dict) and "resourceRegion" in payload["context"]:
        payload["context"]["resourceRegion"] = "eastus"  # the classic sample's region
    return payload


def said_started(body: Any) -> bool:
    """The webhook's own word that this post started the target's run (it checks the
    instance's recorded input for its token: Azure Storage's create is not atomic)."""
    return isinstance(body, dict) and any(i.get("state") == "started"
                                          for i in body.get("instances") or [])


def alert_storm(stack: Stack) -> dict[str, Any]:
    vms = [stack.vm(f"storm{i:03d}") for i in range(STORM_VMS)]
    posts = [(vm, SHAPES[(i + j) % len(SHAPES)]) for j in range(STORM_POSTS_PER_VM)
             for i, vm in enumerate(vms)]

    def post(item: tuple[str, str]) -> tuple[str, str, Response, float]:
        vm, shape = item
        started = time.monotonic()
        r = stack.post_alert(payload_for(shape, vm))
        return vm, shape, r, time.monotonic() - started

    began = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(post, posts))
    storm_seconds = time.monotonic() - began
    started = {a[2].body["id"]: a[2].body["statusQueryGetUri"] for a in answers
               if said_started(a[2].body)}
    finals = {iid: stack.wait(url, timeout=200) for iid, url in started.items()}
    captures = {vm: stack.vm_captures(vm.rsplit("/", 1)[1]) for vm in vms}
    return {"vms": vms, "answers": answers, "storm_seconds": storm_seconds,
            "finals": finals, "captures": captures}


def _env(stack: Stack) -> dict[str, str]:
    return {**os.environ, "LOCALDEV_STATE_DIR": str(stack.state),
            "LOCALDEV_NETNS": stack.netns}


def crash_and_resume(stack: Stack) -> dict[str, Any]:
    """Two captures running and one create mid-flight (held by a 429 + Retry-After) when
    the host is killed with SIGKILL; then the host restarts on the same store."""
    vms = [stack.vm(name) for name in CRASH_VMS]
    urls = {}
    # The lock from the first start: a foreground module holding it while these 8 s
    # captures run would let them end before the kill.
    with stack.fault_lock:
        for vm in vms[:2]:
            r = stack.start_capture(vm, seconds=8)
            assert r.status == 202, r.body
            urls[vm] = r.body["statusQueryGetUri"]
        for url in urls.values():
            stack.wait_phase(url, "capturing")
        stack.arm_fault({"kind": "http", "method": "PUT", "pathContains": "packetCaptures",
                         "status": 429, "retryAfter": 3, "count": 1})
        r = stack.start_capture(vms[2], seconds=8)
        assert r.status == 202, r.body
        urls[vms[2]] = r.body["statusQueryGetUri"]
        stack.wait_phase(urls[vms[2]], "creating-capture")
        time.sleep(0.8)  # the create activity is now waiting out the Retry-After
        phases = {vm: (stack.status(u).get("customStatus") or {}).get("phase")
                  for vm, u in urls.items()}
        killed = subprocess.run([sys.executable, "-m", "localdev", "restart-host", "--kill"],
                                cwd=ROOT, env=_env(stack), capture_output=True, text=True,
                                timeout=120, check=False)
        stack.arm_clear_faults()
    finals = {vm: stack.wait(url, timeout=150) for vm, url in urls.items()}
    captures = {vm: stack.vm_captures(vm.rsplit("/", 1)[1]) for vm in vms}
    return {"phases_at_kill": phases, "restart": killed, "finals": finals,
            "captures": captures}


FLAKY_VMS = ("storm008", "storm009", "storm010")  # reused after the crash scenario


def flaky_arm(stack: Stack) -> dict[str, Any]:
    """About 30 % of ARM calls fail (429 with Retry-After, 500, 503) while three runs go."""
    with stack.fault_lock:
        since = time.time()
        for status, seed in ((429, 1), (500, 2), (503, 3)):
            rule: dict[str, Any] = {"kind": "http", "status": status, "probability": 0.11,
                                    "seed": seed, "pathContains": "/subscriptions/"}
            if status == 429:
                rule["retryAfter"] = 1
            stack.arm_fault(rule)
        try:
            urls = {}
            for name in FLAKY_VMS:
                r = stack.start_capture(stack.vm(name), seconds=4)
                assert r.status == 202, r.body
                urls[name] = r.body["statusQueryGetUri"]
            finals = {name: stack.wait(url, timeout=240) for name, url in urls.items()}
            log = stack.arm_requests()
        finally:
            stack.arm_clear_faults()
    mine = [r for r in log if r["timestamp"] >= since]
    injected = Counter(r["status"] for r in mine if r["status"] in (429, 500, 503))
    return {"finals": finals, "injected": injected, "requests": len(mine)}
