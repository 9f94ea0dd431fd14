"""Alert storm on the real app (a benchmark, not a test): 1,000 webhook posts in a few
seconds for 50 VMs (20 each, mixed schemas, some Resolved), against the local stack.

    .venv/bin/python bench/storm_bench.py [--vms 50] [--per-vm 20] [--workers 64]

Starts its own stack (state in a temporary folder, loopback VMs), posts, then waits for
every started run to finish and counts captures per VM on the ARM endpoint. Writes
bench/results/storm.json and prints the figures: posts answered by status, p50/p99/max
webhook latency, runs started (must be one per VM), runs finished, captures per VM, and
5xx seen (must be 0).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.client import StackClient  # noqa: E402
from tests.e2e.reliability import SHAPES, payload_for  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vms", type=int, default=50)
    p.add_argument("--per-vm", type=int, default=20)
    p.add_argument("--workers", type=int, default=64)
    args = p.parse_args()

    state = Path(tempfile.mkdtemp(prefix="alertcap-storm-"))
    env = {**os.environ, "LOCALDEV_STATE_DIR": str(state), "LOCALDEV_NETNS": "alertcap-storm",
           "LOCALDEV_EXTRA_VMS": str(args.vms)}
    subprocess.run([sys.executable, "-m", "localdev", "up", "--port", "0"], cwd=ROOT, env=env,
                   check=True)
    try:
        stack = StackClient.load(state)
        vms = [stack.vm(f"storm{i:03d}") for i in range(args.vms)]
        posts = [(vm, SHAPES[(i + j) % len(SHAPES)]) for j in range(args.per_vm)
                 for i, vm in enumerate(vms)]

        def post(item: tuple[str, str]) -> tuple[str, int, float, object]:
            vm, shape = item
            began = time.monotonic()
            try:
                r = stack.post_alert(payload_for(shape, vm))
                return vm, r.status, time.monotonic() - began, r.body
            except OSError as exc:  # a timeout or refused connection: counted, not hidden
                return vm, 0, time.monotonic() - began, str(exc)

        began = time.monotonic()
        with ThreadPoolExecutor(args.workers) as pool:
            answers = list(pool.map(post, posts))
        storm_s = time.monotonic() - began
        latencies = sorted(a[2] for a in answers)
        # "started" is what the webhook said after checking the instance's recorded input
        # for its own token (Azure Storage's create is not atomic): it must be once per VM.
        said_started = [a for a in answers if a[1] == 202 and isinstance(a[3], dict)
                        and any(i.get("state") == "started" for i in a[3].get("instances", []))]
        started = {a[3]["id"]: a[3]["statusQueryGetUri"] for a in said_started}
        finished = Counter(stack.wait(url, timeout=600)["runtimeStatus"]
                           for url in started.values())
        per_vm = Counter(len(stack.vm_captures(vm.rsplit("/", 1)[1])) for vm in vms)
        result = {
            "command": "bench/storm_bench.py " + " ".join(sys.argv[1:]),
            "posts": len(posts), "vms": args.vms, "seconds_to_post_all": round(storm_s, 2),
            "answers_by_status": dict(Counter(str(a[1]) for a in answers)),
            "latency_ms": {"p50": round(statistics.median(latencies) * 1000, 1),
                           "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
                           "max": round(latencies[-1] * 1000, 1)},
            "runs_started": len(started),
            "said_started": len(said_started),
            "vms_by_times_said_started": dict(Counter(Counter(a[0] for a in said_started)
                                                      .values())),
            "runs_finished": dict(finished),
            "vms_by_capture_count": dict(per_vm),
            "duplicates_suppressed": sum(1 for a in answers if a[1] == 200
                                         and isinstance(a[3], dict) and "instances" in a[3]),
            "resolved_ignored_or_resolving": sum(
                1 for a in answers if isinstance(a[3], dict)
                and a[3].get("status") in ("ignored", "resolving")),
            "5xx": sum(1 for a in answers if a[1] >= 500 or a[1] == 0),
        }
    finally:
        subprocess.run([sys.executable, "-m", "localdev", "down"], cwd=ROOT, env=env,
                       check=False)
    out = ROOT / "bench" / "results" / "storm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if (result["5xx"] == 0 and result["runs_started"] == args.vms
                 and result["said_started"] == args.vms) else 1


if __name__ == "__main__":
    sys.exit(main())
