"""Raw ARM LRO headers, process hygiene (no tcpdump outlives the server), secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from .conftest import REPO, STORAGE, SUB, VM1, WATCHER, WATCHER_RG, stop_process, wait_for_file

API = "api-version=2026-03-01"


def _capture_url(arm: dict, name: str) -> str:
    return (
        f"{arm['armUrl']}/subscriptions/{SUB}/resourceGroups/{WATCHER_RG}/providers/"
        f"Microsoft.Network/networkWatchers/{WATCHER}/packetCaptures/{name}"
    )


def _body() -> dict:
    return {"properties": {"target": VM1, "storageLocation": {"storageId": STORAGE}}}


def test_lro_headers_are_arms(arm, token):
    kw = {"headers": {"Authorization": f"Bearer {token}"}, "verify": arm["certPath"]}
    url = _capture_url(arm, f"raw-{uuid.uuid4().hex[:6]}")
    put = requests.put(f"{url}?{API}", json=_body(), timeout=5, **kw)
    assert put.status_code == 201
    assert "/operations/" in put.headers["Azure-AsyncOperation"]
    assert put.headers["Retry-After"] == "0"
    assert put.json()["properties"]["provisioningState"] == "Updating"
    deadline = time.monotonic() + 10
    while (
        requests.get(put.headers["Azure-AsyncOperation"], timeout=5, **kw).json()["status"]
        != "Succeeded"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for action in ("queryStatus", "stop"):
        r = requests.post(f"{url}/{action}?{API}", timeout=5, **kw)
        assert r.status_code == 202 and "/operationResults/" in r.headers["Location"]
    delete = requests.delete(f"{url}?{API}", timeout=5, **kw)
    assert delete.status_code == 202 and "Location" in delete.headers
    while (res := requests.get(delete.headers["Location"], timeout=5, **kw)).status_code == 202:
        time.sleep(0.05)
    assert res.status_code == 204
    assert requests.get(f"{url}?{API}", timeout=5, **kw).status_code == 404
    # Deleting what is gone succeeds, as in ARM.
    assert requests.delete(f"{url}?{API}", timeout=5, **kw).status_code == 204


def test_default_azure_credential_drives_the_sdk(arm, monkeypatch):
    from azure.identity import DefaultAzureCredential
    from azure.mgmt.network import NetworkManagementClient

    monkeypatch.setenv("IDENTITY_ENDPOINT", arm["identityEndpoint"])
    monkeypatch.setenv("IDENTITY_HEADER", arm["header"])
    for var in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME"):
        monkeypatch.delenv(var, raising=False)
    client = NetworkManagementClient(
        DefaultAzureCredential(),
        SUB,
        base_url=arm["armUrl"],
        connection_verify=arm["certPath"],
        credential_scopes=["https://management.azure.com/.default"],
    )
    assert client.network_watchers.get(WATCHER_RG, WATCHER).location == "eastus"


def test_secrets_never_logged(arm, token, network):
    network.network_watchers.get(WATCHER_RG, WATCHER)
    log = (arm["state"] / "arm.log").read_text()
    assert "GET" in log
    assert arm["header"] not in log and token not in log


def _start_server(state: Path, config: dict, header: str) -> subprocess.Popen:
    state.mkdir(parents=True)
    (state / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "LOCALDEV_IDENTITY_HEADER": header}
    with (state / "arm.log").open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localdev.arm",
                "--state-dir",
                str(state),
                "--config",
                str(state / "config.json"),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _tcpdumps(state: Path) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if ln.startswith("tcpdump") and str(state) in ln]


def _wait_gone(state: Path, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while _tcpdumps(state):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_no_tcpdump_outlives_the_server(tmp_path, arm):
    config = json.loads((arm["state"] / "config.json").read_text())
    for how in (signal.SIGTERM, signal.SIGKILL):
        state = tmp_path / how.name
        header = "h-" + uuid.uuid4().hex
        proc = _start_server(state, config, header)
        try:
            info = wait_for_file(state / "arm.json", proc, state / "arm.log")
            token = requests.get(
                info["identityEndpoint"],
                params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
                headers={"X-IDENTITY-HEADER": header},
                timeout=5,
            ).json()["access_token"]
            url = _capture_url(info, "c1")
            kw = {"headers": {"Authorization": f"Bearer {token}"}, "verify": info["certPath"]}
            assert requests.put(f"{url}?{API}", json=_body(), timeout=5, **kw).status_code == 201
            deadline = time.monotonic() + 5
            while not _tcpdumps(state):
                assert time.monotonic() < deadline, "tcpdump never started"
                time.sleep(0.05)
            proc.send_signal(how)
            proc.wait(10)
            assert _wait_gone(state), f"tcpdump survived {how.name}"
        finally:
            stop_process(proc)
