"""Start and stop Azurite's blob service for the local stack and its tests.

Boundary: one ``azurite-blob`` process on 127.0.0.1 and a free port, data under a
directory we are given; returns the well-known devstoreaccount1 connection string.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
AZURITE_BLOB = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every installation).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connection_string(port: int) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    location: Path

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    def stop(self, timeout: float = 10) -> None:
        try:
            self._stop(timeout)
        finally:
            if self.process.stderr is not None:
                self.process.stderr.close()

    def _stop(self, timeout: float) -> None:
        if self.process.poll() is not None:
            return
        # Azurite runs under node via a shell shim: signal its whole process group.
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def start(location: str | os.PathLike[str], port: int = 0, timeout: float = 30) -> Azurite:
    """Start azurite-blob and wait until it answers HTTP."""
    loc = Path(location)
    loc.mkdir(parents=True, exist_ok=True)
    # Picking the port ourselves leaves a tiny race with other processes; retry once.
    for attempt in range(3):
        chosen = port or free_port()
        proc = subprocess.Popen(
            [
                str(AZURITE_BLOB),
                "--location",
                str(loc),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(chosen),
                "--silent",
                "--skipApiVersionCheck",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        azurite = Azurite(proc, chosen, loc)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _answers(chosen):
                return azurite
            time.sleep(0.1)
        err = b""
        if proc.poll() is not None and proc.stderr is not None:
            err = proc.stderr.read()
        azurite.stop()
        if port or attempt == 2:
            msg = err.decode(errors="replace")
            raise RuntimeError(f"azurite-blob did not start on {chosen}: {msg}")
    raise RuntimeError("unreachable")
