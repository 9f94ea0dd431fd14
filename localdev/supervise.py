"""Process supervision for the local stack: spawn, wait for, stop and remember processes.

Boundary: processes on this machine and ports on 127.0.0.1 only. Every process runs in
its own session (a process group), so stopping it stops its children (tcpdump under the
ARM endpoint, node under Azurite's shell shim). Pids live in ``<state>/pids.json``.
Nothing here knows what the processes are; ``localdev.stack`` decides that.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def write_secret(path: Path, data: Any) -> None:
    """Write JSON readable by us only, atomically (readers never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)


class Supervisor:
    """The processes of one state folder."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.pids_file = state / "pids.json"

    def pids(self) -> dict[str, int]:
        if not self.pids_file.is_file():
            return {}
        return {str(k): int(v) for k, v in json.loads(self.pids_file.read_text()).items()}

    def forget_all(self) -> None:
        self.pids_file.unlink(missing_ok=True)

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.state / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    env={**os.environ, **(env or {})})
        pids = self.pids()
        pids[name] = proc.pid
        self.pids_file.write_text(json.dumps(pids))
        return proc, log

    def stop(self, *names: str, timeout: float = 10) -> list[str]:
        """Stop these processes side by side; the names that were running."""
        pids = self.pids()
        found = [n for n in names if n in pids]
        stop(*(pids[n] for n in found), timeout=timeout)
        return found


def wait_file(path: Path, proc: subprocess.Popen[bytes], what: str, log: Path,
              timeout: float = 60) -> dict[str, Any]:
    """Wait for the runtime file a server writes once it listens (callers remove any stale
    one before spawning it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file():
            with suppress(ValueError):
                data: dict[str, Any] = json.loads(path.read_text())
                return data
        if proc.poll() is not None:
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise SystemExit(f"{what} exited during start-up (code {proc.returncode}):\n{tail}")
        time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready in {timeout:.0f}s; see {log}")


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path,
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during start-up; see {log}")
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start; see {log}")


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """True once the process group is gone (reaping our own child on the way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def stop(*pids: int, timeout: float = 10) -> None:
    """SIGTERM the process groups, SIGKILL any that outlives TIMEOUT.

    All get the signal first and then are waited for together: each server takes a
    moment to close its connections, and those moments overlap.
    """
    signalled = []
    for pid in pids:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + timeout
    for pid in signalled:
        if not wait_gone(pid, max(deadline - time.monotonic(), 0.1)):
            with suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def kill(pid: int) -> None:
    """SIGKILL the process group (a crash), and wait until it is gone."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    wait_gone(pid)


def alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True
