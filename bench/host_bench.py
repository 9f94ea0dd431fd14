"""Benchmark of localdev.host (not a test): orchestration overhead and throughput.

Starts the host on the tests' sample app (ephemeral ports, a temporary state dir) and
measures:
  * step overhead: a 50-step chain of no-op activities, wall time per step;
  * instances per second: N one-activity orchestrations started at once, until all done;
  * alert storm: 1,000 concurrent webhook POSTs for 50 instance ids (the starter calls
    the real DurableOrchestrationClient; 950 are refused as duplicates), latency and
    status codes.
Writes bench/results/host.json and prints a table. Run: `.venv/bin/python bench/host_bench.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from localdev.supervise import Supervisor, wait_file  # noqa: E402

SAMPLE_APP = REPO / "tests" / "host" / "sample_app"
RESULTS = REPO / "bench" / "results" / "host.json"


class Host:
    """The host alone on the sample app, spawned and stopped by localdev.supervise."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.state = workdir / "state"
        settings = workdir / "settings.json"
        settings.write_text(json.dumps({"Values": {"SAMPLE_STATE_DIR": str(workdir / "s")}}))
        self.supervisor = Supervisor(workdir)
        proc, log = self.supervisor.spawn("host", [
            sys.executable, "-m", "localdev.host", "--app-dir", str(SAMPLE_APP),
            "--port", "0", "--rpc-port", "0", "--state-dir", str(self.state),
            "--settings", str(settings)])
        info = wait_file(self.state / "host-runtime.json", proc, "host", log, timeout=30)
        keys = json.loads((self.state / "host-keys.json").read_text())
        self.base = info["baseUrl"]
        self.webhook = info["webhookBaseUrl"]
        self.system = keys["systemKeys"]["durabletask_extension"]
        self.function = keys["functionKeys"]["default"]

    def stop(self) -> None:
        self.supervisor.stop("host", timeout=15)


async def start(s: aiohttp.ClientSession, host: Host, name: str, iid: str, body: Any) -> None:
    url = f"{host.webhook}/orchestrators/{name}/{iid}?code={host.system}"
    async with s.post(url, json=body) as resp:
        assert resp.status == 202, resp.status


async def wait_done(s: aiohttp.ClientSession, host: Host, iid: str) -> dict[str, Any]:
    url = f"{host.webhook}/instances/{iid}?code={host.system}"
    while True:
        async with s.get(url) as resp:
            data: dict[str, Any] = await resp.json()
            if data["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
                return data
        await asyncio.sleep(0.005)


async def count_completed(s: aiohttp.ClientSession, host: Host, prefix: str) -> int:
    url = (f"{host.webhook}/instances/?code={host.system}&instanceIdPrefix={prefix}"
           "&runtimeStatus=Completed&showInput=false")
    async with s.get(url) as resp:
        return len(await resp.json())


async def bench_chain(
    s: aiohttp.ClientSession, host: Host, steps: int, runs: int, tag: str = "chain"
) -> dict[str, Any]:
    per_step = []
    for run in range(runs):
        t0 = time.perf_counter()
        await start(s, host, "chain", f"{tag}-{run}", steps)
        data = await wait_done(s, host, f"{tag}-{run}")
        assert data["runtimeStatus"] == "Completed"
        per_step.append((time.perf_counter() - t0) / steps * 1000)
    return {
        "steps": steps, "runs": runs,
        "ms_per_step_median": round(statistics.median(per_step), 2),
        "ms_per_step_min": round(min(per_step), 2),
    }


async def bench_throughput(s: aiohttp.ClientSession, host: Host, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    await asyncio.gather(*(start(s, host, "chain", f"tp-{i}", 1) for i in range(n)))
    started = time.perf_counter() - t0
    while await count_completed(s, host, "tp-") < n:
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    return {"instances": n, "activities_each": 1, "start_seconds": round(started, 2),
            "total_seconds": round(elapsed, 2), "instances_per_second": round(n / elapsed, 1)}


async def bench_storm(s: aiohttp.ClientSession, host: Host, posts: int, vms: int) -> dict[str, Any]:
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def post(i: int) -> None:
        url = f"{host.base}/api/start/approval?id=vm-{i % vms}&code={host.function}"
        t0 = time.perf_counter()
        async with s.post(url, json=60) as resp:
            await resp.read()
            codes[resp.status] = codes.get(resp.status, 0) + 1
        latencies.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(post(i) for i in range(posts)))
    elapsed = time.perf_counter() - t0
    latencies.sort()
    running_url = (f"{host.webhook}/instances/?code={host.system}&instanceIdPrefix=vm-"
                   "&runtimeStatus=Running,Pending")
    async with s.get(running_url) as resp:
        live = len(await resp.json())
    return {
        "posts": posts, "instance_ids": vms, "seconds": round(elapsed, 2),
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "server_errors": sum(v for k, v in codes.items() if k >= 500),
        "latency_ms_p50": round(latencies[len(latencies) // 2], 1),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "latency_ms_max": round(latencies[-1], 1),
        "live_instances_after": live,
    }


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="host-bench-") as tmp:
        host = Host(Path(tmp))
        try:
            connector = aiohttp.TCPConnector(limit=1000)
            timeout = aiohttp.ClientTimeout(total=120)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
                short = await bench_chain(s, host, steps=5, runs=5, tag="short")
                chain = await bench_chain(s, host, steps=50, runs=3)
                throughput = await bench_throughput(s, host, n=200)
                storm = await bench_storm(s, host, posts=1000, vms=50)
        finally:
            host.stop()
    return {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "chain_5": short, "chain": chain, "throughput": throughput, "storm": storm,
    }


def table(results: dict[str, Any]) -> str:
    c, t, s = results["chain"], results["throughput"], results["storm"]
    c5 = results["chain_5"]
    rows = [
        ("5-step activity chain", f"{c5['ms_per_step_median']} ms/step (median of {c5['runs']})"),
        ("50-step activity chain", f"{c['ms_per_step_median']} ms/step (median of {c['runs']})"),
        ("instances/s (200 x 1 activity)", f"{t['instances_per_second']} ({t['total_seconds']} s)"),
        ("storm: 1000 POSTs / 50 ids", f"{s['seconds']} s, codes {s['status_codes']}"),
        ("storm latency p50 / p99 / max",
         f"{s['latency_ms_p50']} / {s['latency_ms_p99']} / {s['latency_ms_max']} ms"),
        ("storm 5xx / live instances", f"{s['server_errors']} / {s['live_instances_after']}"),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


if __name__ == "__main__":
    figures = asyncio.run(main())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))
    print(f"written to {RESULTS.relative_to(REPO)}")
