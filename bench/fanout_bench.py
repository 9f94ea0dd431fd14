"""One alert naming 500 VMs on the real app (a benchmark, not a test).

    .venv/bin/python bench/fanout_bench.py [--vms 500] [--concurrency 50]
        [--capture-seconds 3] [--arm-latency-ms 50] [--timeout 1200]

Starts its own stack (temporary state folder, loopback VMs stormNNN, the fan-out's
ALERTCAP_FANOUT_CONCURRENCY and a short capture time limit through LOCALDEV_APP_SETTINGS),
posts ONE common-schema alert whose alertTargetIDs name every VM, and measures:
the webhook's answer time (it must answer at once, < 2 s, whatever the size), the time
until every capture exists on the ARM endpoint, the time until the fan-out completes,
the peak of ARM calls in flight at once (from the ARM request log's start and end times),
and that every child run Completed with one capture each. Bounded: --timeout seconds for
the whole wait; the stack is stopped whatever happens. Writes bench/results/fanout.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.client import StackClient  # noqa: E402
from localdev.demo import demo_alert  # noqa: E402


def peak_in_flight(requests: list[dict[str, Any]]) -> int:
    """Most ARM calls whose [started, ended] overlap at one moment."""
    edges = sorted([(r["started"], 1) for r in requests] + [(r["timestamp"], -1)
                                                           for r in requests])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vms", type=int, default=500)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--capture-seconds", type=int, default=3)
    p.add_argument("--arm-latency-ms", type=float, default=50)
    p.add_argument("--timeout", type=float, default=1200)
    args = p.parse_args()

    state = Path(tempfile.mkdtemp(prefix="alertcap-fanout-"))
    settings = {"ALERTCAP_FANOUT_CONCURRENCY": str(args.concurrency),
                "ALERTCAP_MAX_TARGETS_PER_ALERT": str(max(args.vms, 1)),
                "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS": str(args.capture_seconds),
                "ALERTCAP_STOP_GRACE_SECONDS": "10"}
    env = {**os.environ, "LOCALDEV_STATE_DIR": str(state), "LOCALDEV_NETNS": "alertcap-fan",
           "LOCALDEV_EXTRA_VMS": str(args.vms), "LOCALDEV_VMSS_INSTANCES": "1",
           "LOCALDEV_APP_SETTINGS": json.dumps(settings)}
    subprocess.run([sys.executable, "-m", "localdev", "up", "--port", "0"], cwd=ROOT, env=env,
                   check=True, timeout=300)
    try:
        stack = StackClient.load(state)
        stack.arm_latency(args.arm_latency_ms)
        names = [f"storm{i:03d}" for i in range(args.vms)]
        vms = [stack.vm(n) for n in names]
        alert = demo_alert(vms[0], datetime.now(UTC))
        alert["data"]["essentials"]["alertTargetIDs"] = [v.lower() for v in vms]
        alert["data"]["essentials"]["configurationItems"] = names

        began = time.monotonic()
        answer = stack.post_alert(alert)
        answered = time.monotonic() - began
        assert answer.status == 202, (answer.status, answer.body)
        print(f"webhook answered {answer.status} in {answered * 1000:.0f} ms: "
              f"{json.dumps({k: answer.body[k] for k in ('id', 'accepted', 'concurrency')})}",
              flush=True)

        deadline = began + args.timeout
        all_captures_at: float | None = None
        watcher = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/"
                   "NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/"
                   "NetworkWatcher_eastus/packetCaptures?api-version=2024-05-01")
        final: dict[str, Any] = {}
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if all_captures_at is None:
                listed = stack.arm_call("GET", watcher).body.get("value") or []
                seen |= {c["properties"]["target"].rsplit("/", 1)[1].lower() for c in listed}
                if len(seen & set(names)) == len(names):
                    all_captures_at = time.monotonic() - began
                    print(f"every capture created after {all_captures_at:.1f} s", flush=True)
            final = stack.status(answer.body["statusQueryGetUri"])
            if final.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
                break
            time.sleep(2)
        finished = time.monotonic() - began
        out = final.get("output") or {}
        requests = [r for r in stack.arm_requests() if "/subscriptions/" in r["path"]]
        children = [stack.status(f"{stack.base}/runtime/webhooks/durabletask/instances/"
                                 f"{o['instance_id']}") for o in out.get("outcomes", [])]
        statuses = Counter(c.get("runtimeStatus") for c in children)
        outcomes = Counter((c.get("output") or {}).get("outcome") for c in children)
        per_vm = Counter()
        for c in children:
            capture = ((c.get("output") or {}).get("capture") or {}).get("name")
            if capture:
                per_vm[(c["output"]["vm_id"].rsplit("/", 1)[1])] += 1
        result = {
            "command": "bench/fanout_bench.py " + " ".join(sys.argv[1:]),
            "vms": args.vms, "concurrency": args.concurrency,
            "capture_seconds": args.capture_seconds, "arm_latency_ms": args.arm_latency_ms,
            "webhook_status": answer.status, "webhook_ms": round(answered * 1000),
            "answer_bytes": len(json.dumps(answer.body)),
            "all_captures_created_s": None if all_captures_at is None
            else round(all_captures_at, 1),
            "fanout_status": final.get("runtimeStatus"), "fanout_done_s": round(finished, 1),
            "fanout": {k: out.get(k) for k in ("targets", "captured", "failed",
                                               "already_running", "digest")},
            "children_status": dict(statuses), "children_outcome": dict(outcomes),
            "vms_with_one_capture": sum(1 for n in per_vm.values() if n == 1),
            "arm_calls": len(requests), "arm_peak_in_flight": peak_in_flight(requests),
            "arm_status": dict(Counter(str(r["status"]) for r in requests)),
        }
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fanout.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        ok = (answered < 2 and final.get("runtimeStatus") == "Completed"
              and statuses.get("Completed") == args.vms
              and result["vms_with_one_capture"] == args.vms)
        return 0 if ok else 1
    finally:
        subprocess.run([sys.executable, "-m", "localdev", "down"], cwd=ROOT, env=env,
                       check=False, timeout=300)


if __name__ == "__main__":
    sys.exit(main())
