"""Alert to the capture's PUT, before and after the version-3 preflight, side by side in one
run of the local stack (a benchmark, not a test).

    .venv/bin/python bench/preflight_bench.py [--runs 5] [--latency-ms 150]

Starts its own stack (state in a temporary folder) with the local ARM delaying every call by
--latency-ms, what ARM often takes. Then, one run at a time on the same VM, alternating:

- after (version 3): a real-shaped common-schema alert POSTed to the webhook;
- before (version 2): the same recorded run input with `version: 2`, started through the
  Durable HTTP API (POST .../orchestrators/capture_orchestrator/{id}): the starter always
  starts the current version, and runs in flight replay the old setup, which is what runs
  here. Its clock starts at that POST, so "before" skips the webhook's own work and the
  comparison is, if anything, kind to it.

For each run: the time from the POST to ARM's answer to the capture's PUT (from the local
ARM's request log), the ARM calls made in between, and how many of them had to wait for one
another (the longest chain of non-overlapping calls: each call is taken to occupy the
latency before its logged answer). Each run is stopped by the operator route once its PUT is
seen, and waited for, so runs never overlap. The first "after" run finds the watcher cache
cold; it is reported apart. Writes bench/results/preflight.json and prints the figures.
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
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localdev.client import StackClient, http  # noqa: E402
from orchestrators.steps import decoded  # noqa: E402

ALERT = ROOT / "tests/fixtures/alerts/common-metric-fired.json"
PUT_WAIT_SECONDS = 60
RUN_WAIT_SECONDS = 120


def _put_seen(stack: StackClient, since: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The capture's PUT answered after SINCE, and every ARM call answered before it."""
    deadline = time.monotonic() + PUT_WAIT_SECONDS
    while time.monotonic() < deadline:
        log = [r for r in stack.arm_requests() if r["timestamp"] >= since]
        for r in log:
            if r["method"] == "PUT" and "/packetCaptures/" in r["path"]:
                return r, [x for x in log if x["timestamp"] < r["timestamp"]]
        time.sleep(0.02)
    raise SystemExit(f"no capture PUT within {PUT_WAIT_SECONDS}s")


def _sequential(calls: list[dict[str, Any]], latency: float) -> int:
    """Longest chain of calls each answered before the next one began."""
    chain, free_at = 0, float("-inf")
    for c in sorted(calls, key=lambda c: c["timestamp"]):
        began = c["timestamp"] - latency
        if began >= free_at - 0.01:  # 10 ms of slack for the handler's own time
            chain, free_at = chain + 1, c["timestamp"]
    return chain


def _one(stack: StackClient, mode: str, template: dict[str, Any] | None, latency: float
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    since = time.time()
    began = time.monotonic()
    if mode == "after":
        r = stack.post_alert(json.loads(ALERT.read_text()))
        if r.status != 202:
            raise SystemExit(f"webhook answered {r.status}: {r.body}")
        entry = r.body[0] if isinstance(r.body, list) else r.body
        url = entry["statusQueryGetUri"]
    else:
        assert template is not None
        instance = template["instance"]
        start = (f"{stack.base}/runtime/webhooks/durabletask/orchestrators/capture_orchestrator/"
                 f"{instance}?code={urllib.parse.quote(stack.system_key)}")
        r = http("POST", start, {**template["input"], "version": 2})
        if r.status != 202:
            raise SystemExit(f"Durable start answered {r.status}: {r.body}")
        url = r.body["statusQueryGetUri"]
    put, calls = _put_seen(stack, since)
    to_put = put["timestamp"] - since
    wall = time.monotonic() - began
    status = stack.status(url)
    stack.stop_capture(status["instanceId"])
    final = stack.wait(url, timeout=RUN_WAIT_SECONDS)
    row = {"mode": mode, "alert_to_put_ms": round(to_put * 1000, 1),
           "wall_to_put_seen_ms": round(wall * 1000, 1),
           "arm_calls_before_put": len(calls),
           "sequential_round_trips_before_put": _sequential(calls, latency),
           "calls": [f"{c['method']} {c['path'].rsplit('/providers/', 1)[-1]}"
                     for c in sorted(calls, key=lambda c: c["timestamp"])],
           "outcome": (final.get("output") or {}).get("outcome")}
    return row, final


def _stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [r["alert_to_put_ms"] for r in rows]
    return {"runs": len(rows), "median_ms": round(statistics.median(ms), 1),
            "min_ms": min(ms), "max_ms": max(ms),
            "sequential_round_trips": sorted({r["sequential_round_trips_before_put"]
                                              for r in rows}),
            "arm_calls": sorted({r["arm_calls_before_put"] for r in rows})}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="runs of each kind (bounded: 1-20)")
    p.add_argument("--latency-ms", type=float, default=150)
    args = p.parse_args()
    runs = max(1, min(args.runs, 20))
    latency = args.latency_ms / 1000

    state = Path(tempfile.mkdtemp(prefix="alertcap-preflight-"))
    env = {**os.environ, "LOCALDEV_STATE_DIR": str(state),
           "LOCALDEV_NETNS": "alertcap-preflight"}
    subprocess.run([sys.executable, "-m", "localdev", "up", "--port", "0",
                    "--arm-latency-ms", str(args.latency_ms)], cwd=ROOT, env=env, check=True)
    try:
        stack = StackClient.load(state)
        assert stack.arm_latency() == args.latency_ms
        rows: list[dict[str, Any]] = []
        # The cold "after" run first: it also gives the run input the "before" runs reuse.
        cold, final = _one(stack, "after", None, latency)
        recorded = http("GET", stack.with_key(
            f"{stack.base}/runtime/webhooks/durabletask/instances/{final['instanceId']}"
            "?showInput=true"))
        template = {"instance": final["instanceId"], "input": decoded(recorded.body["input"])}
        for i in range(2 * runs):
            row, _ = _one(stack, "before" if i % 2 == 0 else "after", template, latency)
            rows.append(row)
            print(f"{row['mode']:6} {row['alert_to_put_ms']:8.1f} ms  "
                  f"{row['sequential_round_trips_before_put']} sequential / "
                  f"{row['arm_calls_before_put']} ARM calls before the PUT", flush=True)
        before = _stats([r for r in rows if r["mode"] == "before"])
        after = _stats([r for r in rows if r["mode"] == "after"])
        result = {
            "command": "bench/preflight_bench.py " + " ".join(sys.argv[1:]),
            "arm_latency_ms": args.latency_ms,
            "before_v2": before, "after_v3_warm": after,
            "after_v3_cold": {k: cold[k] for k in ("alert_to_put_ms", "arm_calls_before_put",
                                                   "sequential_round_trips_before_put",
                                                   "calls")},
            "speedup_median": round(before["median_ms"] / after["median_ms"], 2),
            "example_before": next(r["calls"] for r in rows if r["mode"] == "before"),
            "example_after": next(r["calls"] for r in rows if r["mode"] == "after"),
            "runs": rows,
        }
        out = ROOT / "bench/results/preflight.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    finally:
        subprocess.run([sys.executable, "-m", "localdev", "down"], cwd=ROOT, env=env,
                       check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
