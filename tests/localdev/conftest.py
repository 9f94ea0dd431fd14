"""Fixtures: Azurite, the local ARM endpoint (subprocess, HTTPS, ephemeral ports), a
network namespace VM, and real SDK clients pointed at them."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from localdev import azurite, tls
from localdev.arm import vmnet

SUB = "11111111-2222-3333-4444-555555555555"
RG = "demo-rg"
VM1 = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm1"
VM2 = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm2"
VM3 = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm3"
# On loopback with an address of its own there, as localdev/stack.py makes vm2
VM4 = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm4"
VM4_IP = "127.0.2.9"
STORAGE = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/capstore"
)
VMSS = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/"
    "virtualMachineScaleSets/ss1"
)
WATCHER_RG, WATCHER = "NetworkWatcherRG", "NetworkWatcher_eastus"
SEEDED_ACTIONS = [
    "Microsoft.Network/networkWatchers/read",
    "Microsoft.Network/networkWatchers/packetCaptures/write",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Storage/storageAccounts/listKeys/action",
]
SEEDED_DATA_ACTIONS = ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"]
REPO = Path(__file__).resolve().parents[2]


def wait_for_file(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise TimeoutError(f"{path} never appeared")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("localdev")


@pytest.fixture(scope="session")
def blob_store(state_root: Path):
    az = azurite.start(state_root / "azurite")
    yield az
    az.stop()


@pytest.fixture(scope="session")
def netns_vm():
    vn = vmnet.create()
    yield vn
    vmnet.delete(vn)


@pytest.fixture(scope="session")
def arm(state_root: Path, blob_store, netns_vm):
    """The ARM endpoint as a subprocess; yields its arm.json plus test handles."""
    state = state_root / "arm"
    state.mkdir()
    header = secrets.token_urlsafe(16)
    config = {
        "subscriptionId": SUB,
        "lroRetryAfterSeconds": 0,
        "storageAccounts": {
            STORAGE: {"connectionString": blob_store.connection_string, "location": "eastus"}
        },
        "permissions": {
            f"/subscriptions/{SUB}": {
                "actions": SEEDED_ACTIONS,
                "notActions": [],
                "dataActions": SEEDED_DATA_ACTIONS,
            }
        },
        "scaleSets": [
            {
                "id": VMSS,
                "location": "eastus",
                "osType": "Linux",
                "instances": [
                    {"instanceId": "0", "interface": "lo"},
                    {
                        "instanceId": "1",
                        "netns": netns_vm.netns,
                        "interface": netns_vm.vm_if,
                        "ipAddress": netns_vm.vm_ip,
                    },
                ],
            }
        ],
        "watchers": [
            {"resourceGroup": WATCHER_RG, "name": WATCHER, "location": "eastus"},
            {"resourceGroup": "other-rg", "name": "nw-west", "location": "westus"},
        ],
        "vms": [
            {"id": VM1, "location": "eastus", "osType": "Linux", "interface": "lo"},
            {
                "id": VM2,
                "location": "eastus",
                "osType": "Linux",
                "netns": netns_vm.netns,
                "interface": netns_vm.vm_if,
                "ipAddress": netns_vm.vm_ip,
            },
            {"id": VM3, "location": "eastus", "osType": "Windows", "agentInstalled": False},
            {"id": VM4, "location": "eastus", "osType": "Linux", "interface": "lo",
             "ipAddress": VM4_IP},
        ],
    }
    cfg = state / "config.json"
    cfg.write_text(json.dumps(config))
    env = {**os.environ, "LOCALDEV_IDENTITY_HEADER": header}
    log = state / "arm.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localdev.arm",
                "--state-dir",
                str(state),
                "--config",
                str(cfg),
                "--port",
                "0",
                "--identity-port",
                "0",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        info = wait_for_file(state / "arm.json", proc, log)
        yield {**info, "header": header, "state": state, "proc": proc}
    finally:
        stop_process(proc)


@pytest.fixture(scope="session")
def credential(arm):
    from azure.identity import ManagedIdentityCredential

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IDENTITY_ENDPOINT", arm["identityEndpoint"])
        mp.setenv("IDENTITY_HEADER", arm["header"])
        yield ManagedIdentityCredential()


def _arm_client(cls, arm, credential):
    """An unmodified SDK client pointed at our ARM endpoint, trusting its certificate."""
    return cls(credential, SUB, base_url=arm["armUrl"], connection_verify=arm["certPath"],
               credential_scopes=["https://management.azure.com/.default"])


@pytest.fixture(scope="session")
def network(arm, credential):
    from azure.mgmt.network import NetworkManagementClient

    return _arm_client(NetworkManagementClient, arm, credential)


@pytest.fixture(scope="session")
def resources(arm, credential):
    from azure.mgmt.resource.resources import ResourceManagementClient

    return _arm_client(ResourceManagementClient, arm, credential)


@pytest.fixture(scope="session")
def token(arm) -> str:
    r = requests.get(
        arm["identityEndpoint"],
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": arm["header"]},
        timeout=5,
    )
    r.raise_for_status()
    return r.json()["access_token"]


class Local:
    """Test-only /_localdev routes of the ARM endpoint."""

    def __init__(self, arm: dict, token: str) -> None:
        self.base = arm["armUrl"]
        self.s = requests.Session()
        self.s.headers["Authorization"] = f"Bearer {token}"
        # Per request: a session-level verify loses to REQUESTS_CA_BUNDLE from the env.
        self.kw = {"verify": arm["certPath"], "timeout": 5}

    def fault(self, **rule) -> dict:
        r = self.s.post(f"{self.base}/_localdev/faults", json=rule, **self.kw)
        r.raise_for_status()
        return r.json()

    def clear(self) -> None:
        self.s.delete(f"{self.base}/_localdev/faults", **self.kw).raise_for_status()

    def call(self, method: str, route: str, body: dict | None = None) -> requests.Response:
        return self.s.request(method, f"{self.base}/_localdev/{route}", json=body, **self.kw)

    def requests_log(self) -> list[dict]:
        r = self.s.get(f"{self.base}/_localdev/requests", **self.kw)
        r.raise_for_status()
        return r.json()["requests"]


@pytest.fixture
def local(arm, token):
    loc = Local(arm, token)
    yield loc
    loc.clear()
    # Every door's change is undone, whatever the test did.
    loc.call("PUT", "latency", {"milliseconds": 0}).raise_for_status()
    loc.call("DELETE", "permissions").raise_for_status()
    loc.call("DELETE", "storageAccounts").raise_for_status()


@pytest.fixture
def tls_cert(state_root: Path) -> str:
    return tls.ensure_cert(state_root / "arm")[0]
