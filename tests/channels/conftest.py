"""The local receivers as a subprocess (``python -m localdev.receivers``), as ``localdev
up`` will run them, on a free port, with Chromium rendering Teams cards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_local_receiver_test"
PD_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("receivers")
    log = state / "log.txt"
    env = {**os.environ, "LOCALDEV_WEBHOOK_SECRET": WEBHOOK_SECRET,
           "LOCALDEV_PAGERDUTY_ROUTING_KEYS": PD_KEY}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.receivers", "--state-dir", str(state),
             "--port", "0"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        info_path = state / "receivers.json"
        deadline = time.monotonic() + 20
        while not info_path.exists():
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
            if time.monotonic() > deadline:
                raise TimeoutError("the receiver never wrote receivers.json")
            time.sleep(0.05)
        info = json.loads(info_path.read_text())
        yield {**info, "state": state, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def rx(receiver: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The receiver with no faults and an empty delivery list."""
    base = receiver["endpoint"].rstrip("/")
    http = requests.Session()
    http.verify = receiver["certPath"]  # trust the local stack's own certificate
    # REQUESTS_CA_BUNDLE in the environment would otherwise override the session's verify.
    http.trust_env = False
    http.delete(f"{base}/_localdev/faults", timeout=5).raise_for_status()
    http.delete(f"{base}/_localdev/deliveries", timeout=5).raise_for_status()
    with http:
        yield {**receiver, "base": base, "http": http}
