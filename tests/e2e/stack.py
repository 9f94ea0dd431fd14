"""The e2e tests' handle on one running local stack: localdev.client.StackClient plus
test-only helpers (the demo namespace, traffic generators, the secrets that must never
leak, which emails belong to a run, a lock for global fault rules).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localdev.client import TERMINAL, Response, StackClient, http
from localdev.stack import SUBSCRIPTION

__all__ = ["SUBSCRIPTION", "TERMINAL", "Response", "Stack", "free_port", "http"]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def flood(host: str, netns: str | None, seconds: float, rate: int) -> Iterator[int]:
    """A TCP sink on HOST and a client flooding it from NETNS (or loopback): the sink's
    port. The client ends by itself after SECONDS; a straggler is killed."""
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "localdev.traffic", "--listen", host, "--port", str(port),
         "--seconds", str(seconds), "--rate", str(rate),
         *(["--netns", netns] if netns else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        try:
            proc.wait(timeout=seconds + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack(StackClient):
    netns: str = ""
    demo: dict[str, Any] = field(default_factory=dict)
    # Fault rules are global to the ARM (or email) endpoint and DELETE clears them all:
    # scenarios that inject faults hold this lock from injection until they clean up.
    # Held while ARM or email faults are on, and by the foreground tests that start runs
    # (conftest.exclusive_stack): a fault meant for one run must not meet another's.
    fault_lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def load(cls, state: Path, netns: str = "") -> Stack:  # type: ignore[override]
        base = StackClient.load(state)
        fields = {k: getattr(base, k) for k in (
            "state", "endpoints", "arm", "email", "system_key", "ca_bundle",
            "identity_header", "email_access_key")}
        return cls(**fields, netns=netns,
                   demo=json.loads((state / "demo.json").read_text()))

    def secrets(self) -> dict[str, str]:
        conn = dict(p.split("=", 1) for p in self.endpoints["blob_connection_string"]
                    .split(";") if "=" in p)
        return {"function key": self.function_key,
                "master key": str(self.endpoints["master_key"]),
                "system key": self.system_key,
                "email access key": self.email_access_key,
                "identity header": self.identity_header,
                "Azurite account key": conn["AccountKey"]}

    def emails_for(self, output: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages about one run: same instance, same start time."""
        return [m for m in self.inbox()
                if m.get("headers", {}).get("x-alertcap-instance") == output["instance_id"]
                and output["started_at"] in (m.get("plainText") or "")]

    @contextmanager
    def traffic(self, vm_name: str, seconds: float = 6, rate: int = 50):
        """A TCP sink and a client flooding it: from vm1's namespace, or on loopback to
        vm2's own address there (the only loopback traffic its captures record). Yields
        the sink's port."""
        if vm_name == "vm1":
            host, netns = self.demo["host_ip"], self.netns
        else:
            host, netns = self.demo["vm2_ip"], None
        with flood(host, netns, seconds, rate) as port:
            yield port
