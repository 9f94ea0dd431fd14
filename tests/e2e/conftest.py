"""One local stack per test session (per xdist worker under `make test`: see
tests/conftest.py): `python -m localdev up --port 0` in a temporary state folder with its
own VM network namespace; `python -m localdev down` at the end, which must leave no process
(tcpdump included) and no namespace behind.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .reliability import EXTRA_VMS
from .scenarios import Runs
from .stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def _ours(state: Path) -> list[str]:
    """Command lines of live processes that mention our state folder (tcpdump writes its
    capture there, every server is started with it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state) in cmdline:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


def _netns_exists(name: str) -> bool:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return any(line.split()[0] == name for line in out.stdout.splitlines() if line.strip())


@pytest.fixture(scope="session")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    state = tmp_path_factory.mktemp("localdev")
    return {**os.environ, "LOCALDEV_STATE_DIR": str(state),
            "LOCALDEV_NETNS": f"ace2e-{secrets.token_hex(3)}",
            "LOCALDEV_EXTRA_VMS": str(EXTRA_VMS),
            "LOCALDEV_VMSS_INSTANCES": "3"}  # test_scale_sets.py captures 2 of 3


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str]) -> Iterator[Stack]:
    state, netns = Path(stack_env["LOCALDEV_STATE_DIR"]), stack_env["LOCALDEV_NETNS"]
    up = subprocess.run([sys.executable, "-m", "localdev", "up", "--port", "0"], cwd=ROOT,
                        env=stack_env, capture_output=True, text=True, timeout=180,
                        check=False)
    try:
        assert up.returncode == 0, f"localdev up failed:\n{up.stdout}\n{up.stderr}"
        yield Stack.load(state, netns)
    finally:
        down = subprocess.run([sys.executable, "-m", "localdev", "down"], cwd=ROOT,
                              env=stack_env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert down.returncode == 0, f"localdev down failed:\n{down.stdout}\n{down.stderr}"
        leftovers = _ours(state)
        assert not leftovers, f"processes left after down: {leftovers}"
        assert not _netns_exists(netns), f"network namespace {netns} left after down"


@pytest.fixture(scope="session")
def runs(stack: Stack) -> Iterator[Runs]:
    """Every live scenario, started once in the background (see scenarios.py)."""
    started = Runs(stack)
    yield started
    started.close()


@pytest.fixture(scope="module")
def exclusive_stack(stack: Stack) -> Iterator[Stack]:
    """For a module whose tests start runs in the foreground: the background scenarios
    that switch faults on (they take the same lock) wait until the module is done, so a
    fault meant for one scenario's run never meets these runs, nor theirs."""
    with stack.fault_lock:
        yield stack
