"""Durability: `kill -9` mid-timer and mid-activity, then a restart resumes the work."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

from .conftest import REPO, SAMPLE_APP, HostProcess, http


def test_kill9_mid_timer_fires_the_overdue_timer_on_restart(
    make_host: Callable[..., HostProcess],
) -> None:
    host = make_host()
    keys_before = host.keys
    host.start_orchestration("sleepy", "crash-timer", 1.0)
    host.wait("crash-timer", ("Running",))
    host.kill9()
    time.sleep(1.3)  # the timer falls due while the host is down
    host.start()
    assert host.keys == keys_before  # keys are reused, not regenerated
    final = host.wait("crash-timer", timeout=10)
    assert final["output"] == {"fired": True, "stamp": 1}
    assert [e["EventType"] for e in final["historyEvents"]] == [
        "ExecutionStarted", "TimerCreated", "TimerFired", "TaskCompleted", "ExecutionCompleted"]


def test_kill9_mid_activity_runs_it_again(make_host: Callable[..., HostProcess]) -> None:
    host = make_host()
    host.start_orchestration("slow", "crash-activity", 1.5)
    deadline = time.monotonic() + 10
    while host.count("slow_started") == 0:
        assert time.monotonic() < deadline, host.stderr()
        time.sleep(0.02)
    host.kill9()
    assert host.count("slow_finished") == 0
    host.start()
    final = host.wait("crash-activity", timeout=15)
    # At-least-once: the interrupted activity ran again; its result is recorded once.
    assert host.count("slow_started") == 2
    assert final["output"] == 1
    assert [e["EventType"] for e in final["historyEvents"]].count("TaskCompleted") == 1


def test_restart_keeps_waiting_instances_and_finished_history(
    make_host: Callable[..., HostProcess],
) -> None:
    host = make_host()
    host.start_orchestration("chain", "kept-done", 2)
    host.wait("kept-done")
    host.start_orchestration("approval", "kept-waiting", 60)
    host.wait("kept-waiting", ("Running",))
    host.kill9()
    host.start()
    assert host.status("kept-done")["output"] == [0, 1]
    assert host.status("kept-waiting")["runtimeStatus"] == "Running"
    host.op("raise", "kept-waiting", "event=approve", True)
    assert host.wait("kept-waiting")["output"] == {"approved": "true"}  # JSON text, as in Azure
    # A graceful stop (SIGTERM) also restarts cleanly.
    host.stop()
    host.start()
    assert host.status("kept-waiting")["runtimeStatus"] == "Completed"


def test_second_host_on_the_same_state_dir_is_refused(
    make_host: Callable[..., HostProcess],
) -> None:
    host = make_host()
    second = subprocess.run(
        [sys.executable, "-m", "localdev.host", "--app-dir", str(SAMPLE_APP), "--port", "0",
         "--rpc-port", "0", "--state-dir", str(host.state_dir)],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )
    assert second.returncode != 0
    assert "already using" in second.stderr
    assert http("GET", host.base + "/").status == 200
