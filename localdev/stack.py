"""Stack wiring: what ``python -m localdev up`` starts, with which settings, and the
``.localdev/endpoints.json`` it writes; ``down``, ``status`` and ``restart-host``.

``up`` starts Azurite, the ARM endpoint (with its identity endpoint), the email endpoint,
the channel receivers (localdev.receivers) and the Functions host in the background,
waits until each is ready, and writes
``endpoints.json`` (functions_url, function_key, master_key, arm_url,
blob_connection_string, inbox_dir, vms; plus ca_bundle, email_url, scale_sets,
receivers_url, deliveries_dir) and the
app's settings (``app.settings.json``). The app knows none of this: it gets endpoints
through those settings.

Boundary: decides what runs; ``localdev.supervise`` runs it, ``localdev.client`` talks
to it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

from localdev.supervise import (
    ROOT,
    Supervisor,
    alive,
    free_port,
    kill,
    port_free,
    wait_file,
    wait_port,
    write_secret,
)

# Tests run their own stack beside a developer's: another state folder, port 0.
STATE = Path(os.environ.get("LOCALDEV_STATE_DIR") or ROOT / ".localdev")
ENDPOINTS = STATE / "endpoints.json"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
REGION = "eastus"
DEMO_RG = "demo-rg"
STORAGE_RG = "alertcap-rg"
STORAGE_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{STORAGE_RG}/providers/"
              "Microsoft.Storage/storageAccounts/devstoreaccount1")
DEMO_NETNS = os.environ.get("LOCALDEV_NETNS") or "alertcap-vm1"
SCALE_SET = "vmss1"
STANDBY_VM = "standby1"
VM2_IP = "127.0.2.2"
STANDBY_NETNS = f"{DEMO_NETNS}-sb"
STANDBY_TAG = "alertcap-standby"  # the app's default ALERTCAP_STANDBY_TAG
# What the deployed custom role grants (README "Deploy to Azure"), plus the data action of
# Storage Blob Data Reader: the permissions the local identity starts with.
SEEDED_ACTIONS = [
    "Microsoft.Network/networkWatchers/read",
    "Microsoft.Network/networkWatchers/packetCaptures/read",
    "Microsoft.Network/networkWatchers/packetCaptures/write",
    "Microsoft.Network/networkWatchers/packetCaptures/delete",
    "Microsoft.Network/networkWatchers/packetCaptures/queryStatus/action",
    "Microsoft.Network/networkWatchers/packetCaptures/queryStatus/read",
    "Microsoft.Network/networkWatchers/packetCaptures/stop/action",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/write",
    "Microsoft.Compute/virtualMachines/extensions/read",
    "Microsoft.Compute/virtualMachines/extensions/write",
    "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
    "Microsoft.Compute/virtualMachineScaleSets/read",
    "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/read",
    "Microsoft.Storage/storageAccounts/read",
    "Microsoft.Storage/storageAccounts/listKeys/action",
    "Microsoft.Storage/storageAccounts/listServiceSas/action",
    "Microsoft.Storage/storageAccounts/listAccountSas/action",
    "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
]
SEEDED_DATA_ACTIONS = [
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
]


def vm_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DEMO_RG}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}")


def scale_set_id(name: str = SCALE_SET) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DEMO_RG}/providers/"
            f"Microsoft.Compute/virtualMachineScaleSets/{name}")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def supervisor() -> Supervisor:
    return Supervisor(STATE)


# --- up ------------------------------------------------------------------------------


def _netns_names() -> list[str]:
    """Namespaces this stack creates (vm1, then one per scale-set instance)."""
    count = int(os.environ.get("LOCALDEV_VMSS_INSTANCES") or 2)
    return [DEMO_NETNS, *(f"{DEMO_NETNS}-ss{i}" for i in range(count))]


def _fresh_netns(name: str) -> Any:
    from localdev.arm import vmnet

    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    return vmnet.create(name)


def _demo_vms() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """vm1 lives in its own network namespace (a clean capture of just its traffic);
    vm2 is on this machine's loopback with an address of its own there (127.0.2.2; the
    storm VMs likewise), and its captures record that address only; the scale set's
    instances get a namespace each.
    Without root, all of them use loopback."""
    vms: list[dict[str, Any]] = []
    demo: dict[str, Any] = {}
    names = _netns_names()
    try:
        net = _fresh_netns(names[0])
        vms.append({"id": vm_id("vm1"), "location": REGION, "osType": "Linux",
                    "netns": net.netns, "interface": net.vm_if, "ipAddress": net.vm_ip})
        demo = {"netns": net.netns, "host_if": net.host_if, "host_ip": net.host_ip,
                "vm_ip": net.vm_ip}
    except Exception as exc:  # no root, no ip(8): the demo still works on loopback
        say(f"no network namespace for vm1 ({exc}); vm1 captures on loopback")
        vms.append({"id": vm_id("vm1"), "location": REGION, "osType": "Linux",
                    "interface": "lo"})
    # A VM on loopback gets an address of its own there: the local ARM captures only it.
    vms.append({"id": vm_id("vm2"), "location": REGION, "osType": "Linux", "interface": "lo",
                "ipAddress": VM2_IP})
    demo["vm2_ip"] = VM2_IP
    # standby1 keeps a standby ring (issue #14): its own namespace, because a ring on
    # loopback would record its own uploads to Azurite and rotate without end.
    try:
        sb = _fresh_netns(STANDBY_NETNS)
        # Opted in by its tag, as an operator would in Azure: the sweep finds it by
        # listing demo-rg (ALERTCAP_STANDBY_TARGETS below); vm1 and vm2 carry no tag.
        vms.append({"id": vm_id(STANDBY_VM), "location": REGION, "osType": "Linux",
                    "netns": sb.netns, "interface": sb.vm_if, "ipAddress": sb.vm_ip,
                    "tags": {STANDBY_TAG: "true"}})
        demo["standby"] = {"netns": sb.netns, "host_ip": sb.host_ip, "vm_ip": sb.vm_ip}
    except Exception as exc:
        say(f"no network namespace for {STANDBY_VM} ({exc}); no standby VM")
    # Extra loopback VMs for storm tests and benchmarks (LOCALDEV_EXTRA_VMS=50).
    for i in range(int(os.environ.get("LOCALDEV_EXTRA_VMS") or 0)):
        vms.append({"id": vm_id(f"storm{i:03d}"), "location": REGION, "osType": "Linux",
                    "interface": "lo", "ipAddress": f"127.0.3.{i % 250 + 1}"})
    instances: list[dict[str, Any]] = []
    for i, name in enumerate(names[1:]):
        try:
            net = _fresh_netns(name)
            instances.append({"instanceId": str(i), "netns": net.netns,
                              "interface": net.vm_if, "ipAddress": net.vm_ip,
                              "hostIp": net.host_ip})
        except Exception:  # as above: loopback instead of a namespace
            instances.append({"instanceId": str(i), "interface": "lo"})
    scale_sets = [{"id": scale_set_id(), "location": REGION, "osType": "Linux",
                   "instances": instances}] if instances else []
    return vms, demo, scale_sets


def _arm_config(identity_header: str, blob_conn: str, vms: list[dict[str, Any]],
                scale_sets: list[dict[str, Any]], latency_ms: float) -> dict[str, Any]:
    return {
        "subscriptionId": SUBSCRIPTION, "identityHeader": identity_header,
        "lroRetryAfterSeconds": 0, "latencyMs": latency_ms,
        "storageAccounts": {STORAGE_ID: {"connectionString": blob_conn,
                                         "location": REGION}},
        "watchers": [{"resourceGroup": "NetworkWatcherRG", "name": f"NetworkWatcher_{REGION}",
                      "location": REGION}],
        "permissions": {f"/subscriptions/{SUBSCRIPTION}": {
            "actions": SEEDED_ACTIONS, "dataActions": SEEDED_DATA_ACTIONS}},
        "vms": vms, "scaleSets": scale_sets}


def up(port: int = 7071, fast: bool = True, arm_latency_ms: float = 0) -> dict[str, Any]:
    if ENDPOINTS.is_file() and healthy(json.loads(ENDPOINTS.read_text())):
        say(f"local stack already running: {ENDPOINTS}")
        return dict(json.loads(ENDPOINTS.read_text()))
    down(quiet=True)
    STATE.mkdir(exist_ok=True)
    if port and not port_free(port):
        raise SystemExit(f"port {port} is taken; stop what uses it or pass --port")
    from localdev import tls
    from localdev.azurite import ACCOUNT, connection_string

    sup = supervisor()
    stack = STATE / "stack"
    for stale in (stack / "arm.json", stack / "email.json", stack / "receivers.json",
                  STATE / "host" / "host-runtime.json"):
        stale.unlink(missing_ok=True)
    cert, _key = tls.ensure_cert(stack)  # one certificate for ARM and email: one CA bundle

    say("Azurite (Blob storage)")
    blob_port = free_port()
    azurite = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not azurite.exists():
        raise SystemExit("Azurite is not installed: run `npm ci` (make up does)")
    az_proc, az_log = sup.spawn("azurite", [str(azurite), "--location", str(STATE / "azurite"),
                                            "--blobHost", "127.0.0.1", "--blobPort",
                                            str(blob_port), "--silent", "--skipApiVersionCheck"])
    blob_conn = connection_string(blob_port)
    wait_port(blob_port, az_proc, "Azurite", az_log)

    say("local ARM endpoint (Network Watcher, VMs, scale sets, managed identity)")
    vms, demo, scale_sets = _demo_vms()
    identity_header = secrets.token_urlsafe(24)
    write_secret(STATE / "arm-config.json",
                 _arm_config(identity_header, blob_conn, vms, scale_sets, arm_latency_ms))
    arm_proc, arm_log = sup.spawn("arm", [sys.executable, "-m", "localdev.arm", "--state-dir",
                                          str(stack), "--config", str(STATE / "arm-config.json")])
    arm = wait_file(stack / "arm.json", arm_proc, "ARM endpoint", arm_log)

    say("local email endpoint (Azure Communication Services)")
    access_key = base64.b64encode(secrets.token_bytes(32)).decode()
    mail_proc, mail_log = sup.spawn("email", [sys.executable, "-m", "localdev.email",
                                              "--state-dir", str(stack)],
                                    env={"LOCALDEV_EMAIL_ACCESS_KEY": access_key})
    mail = wait_file(stack / "email.json", mail_proc, "email endpoint", mail_log)

    say("local channel receivers (Teams, Slack, PagerDuty, signed webhook)")
    # Same state folder as ARM and email: the receivers serve the same certificate, so
    # the app's one ALERTCAP_CA_BUNDLE trusts them too.
    webhook_secret = secrets.token_hex(24)
    routing_key = secrets.token_hex(16)  # PagerDuty integration keys are 32 characters
    rx_proc, rx_log = sup.spawn("receivers", [sys.executable, "-m", "localdev.receivers",
                                              "--state-dir", str(stack)],
                                env={"LOCALDEV_WEBHOOK_SECRET": webhook_secret,
                                     "LOCALDEV_PAGERDUTY_ROUTING_KEYS": routing_key})
    rx = wait_file(stack / "receivers.json", rx_proc, "channel receivers", rx_log)

    values = {
        "ALERTCAP_ARM_ENDPOINT": arm["armUrl"],
        "ALERTCAP_CA_BUNDLE": cert,
        "IDENTITY_ENDPOINT": arm["identityEndpoint"],
        "IDENTITY_HEADER": identity_header,
        "ALERTCAP_STORAGE_ACCOUNT_ID": STORAGE_ID,
        "ALERTCAP_BLOB_CONNECTION_STRING": blob_conn,
        "ALERTCAP_EMAIL_CONNECTION_STRING": f"endpoint={mail['endpoint']};accesskey={access_key}",
        "ALERTCAP_EMAIL_SENDER": "DoNotReply@alertcap.local",
        "ALERTCAP_EMAIL_RECIPIENTS": "oncall@alertcap.local",
        # No App Service Authentication locally: the webhook takes the function key.
        "ALERTCAP_WEBHOOK_AUTH": "functionKey",
        # Run records in Azurite's account, as Azure keeps them in the app's own storage.
        "ALERTCAP_RUNS_CONTAINER_URL": f"http://127.0.0.1:{blob_port}/{ACCOUNT}/alertcap-runs",
        "ALERTCAP_DOCTOR_TARGETS": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DEMO_RG}",
        "ALERTCAP_TEAMS_URL": rx["teams_url"],
        "ALERTCAP_SLACK_URL": rx["slack_url"],
        "ALERTCAP_PAGERDUTY_ROUTING_KEY": routing_key,
        "ALERTCAP_PAGERDUTY_URL": rx["pagerduty_url"],
        "ALERTCAP_WEBHOOK_URL": rx["webhook_url"],
        "ALERTCAP_WEBHOOK_SECRET": webhook_secret,
        "ALERTCAP_CHANNEL_TIMEOUT_SECONDS": "5",
        # The orphan sweep looks at the local watchers' group, as Azure's at the deployment's.
        "ALERTCAP_ORPHAN_SWEEP_SCOPES": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/"
                                        "NetworkWatcherRG",
    }
    if "standby" in demo:  # a small ring on standby1 (found by its tag), looked after every 10 s
        values.update({
            "ALERTCAP_STANDBY_TARGETS": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DEMO_RG}",
            "ALERTCAP_STANDBY_FILE_COUNT": "200", "ALERTCAP_STANDBY_FILE_SIZE_BYTES": "65536",
            "ALERTCAP_STANDBY_SESSION_SECONDS": "3600", "ALERTCAP_STANDBY_CHECK_SECONDS": "10",
            "ALERTCAP_STANDBY_LOOKBACK_SECONDS": "120"})
    if fast:  # seconds, not minutes: the local stack answers at once
        values.update({
            "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS": "15", "ALERTCAP_POLL_INTERVAL_SECONDS": "2",
            "ALERTCAP_MAX_POLL_INTERVAL_SECONDS": "3", "ALERTCAP_STOP_GRACE_SECONDS": "15",
            # Continue as new every 4 polls, so every local run crosses a generation.
            "ALERTCAP_POLLS_PER_GENERATION": "4",
            "ALERTCAP_RETRY_FIRST_INTERVAL_MS": "1000", "ALERTCAP_RETRY_MAX_ATTEMPTS": "5",
            "ALERTCAP_LRO_POLLING_SECONDS": "0.2",
            # A failed notification is retried within seconds (Azure: a minute, doubling).
            "ALERTCAP_NOTIFY_RETRY_FIRST_SECONDS": "2", "ALERTCAP_NOTIFY_RETRY_MAX_SECONDS": "4",
            # Email and channels give up after 40 s: a channel down for a whole local run
            # ends "undelivered" within a test's minute (Azure default: a day).
            "ALERTCAP_NOTIFY_GIVE_UP_SECONDS": "40"})
    # Benchmarks size the app (e.g. ALERTCAP_FANOUT_CONCURRENCY): a JSON object of settings.
    values.update(json.loads(os.environ.get("LOCALDEV_APP_SETTINGS") or "{}"))
    write_secret(STATE / "app.settings.json", {"Values": values})

    say(f"Functions host on http://127.0.0.1:{port}")
    runtime = start_host(port)
    keys = json.loads(Path(runtime["keysFile"]).read_text())

    endpoints = {
        "functions_url": runtime["baseUrl"].rstrip("/"),
        "function_key": keys["functionKeys"]["default"],
        "master_key": keys["masterKey"],
        "arm_url": arm["armUrl"],
        "blob_connection_string": blob_conn,
        "inbox_dir": mail["inbox"],
        "vms": {v["id"]: v.get("netns") or v.get("interface", "lo") for v in vms},
        # Added keys (README lists the ones above).
        "ca_bundle": cert,
        "email_url": mail["endpoint"],
        "scale_sets": {s["id"]: {i["instanceId"]: i.get("netns") or i.get("interface", "lo")
                                 for i in s["instances"]} for s in scale_sets},
        "receivers_url": rx["endpoint"].rstrip("/"),
        "deliveries_dir": rx["deliveries_dir"],
    }
    write_secret(ENDPOINTS, endpoints)
    write_secret(STATE / "demo.json", {
        **demo, "ca_bundle": cert, "inbox_url": mail["inboxUrl"],
        "system_key": keys["systemKeys"]["durabletask_extension"],
        "scale_set_hosts": {i["instanceId"]: i.get("hostIp", "127.0.0.1")
                            for s in scale_sets for i in s["instances"]}})
    say(f"local stack ready: {ENDPOINTS} (keys inside; logs in {STATE / 'logs'})")
    return endpoints


def start_host(port: int) -> dict[str, Any]:
    host_state = STATE / "host"
    (host_state / "host-runtime.json").unlink(missing_ok=True)
    # LOCALDEV_APP_DIR: another build of the app on the same store (a deploy mid-run).
    app_dir = os.environ.get("LOCALDEV_APP_DIR") or str(ROOT)
    argv = [sys.executable, "-m", "localdev.host", "--app-dir", app_dir, "--port", str(port),
            "--state-dir", str(host_state), "--settings", str(STATE / "app.settings.json")]
    proc, log = supervisor().spawn("host", argv)
    return wait_file(host_state / "host-runtime.json", proc, "Functions host", log)


def restart_host(crash: bool) -> None:
    """Stop the host (SIGKILL with CRASH) and start it again on the same port and state;
    the durable store resumes every instance it held."""
    sup = supervisor()
    pid = sup.pids().get("host")
    if pid is None or not ENDPOINTS.is_file():
        raise SystemExit("the local stack is not running: make up")
    port = int(json.loads(ENDPOINTS.read_text())["functions_url"].rsplit(":", 1)[1])
    if crash:
        kill(pid)
    else:
        sup.stop("host")
    say("host stopped" + (" with SIGKILL" if crash else ""))
    start_host(port)
    say(f"host restarted on port {port}")


def healthy(endpoints: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(endpoints["functions_url"] + "/", timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except (OSError, KeyError):
        return False


# --- down / status -------------------------------------------------------------------


def down(quiet: bool = False) -> None:
    sup = supervisor()
    # Host first (it stops calling the others), Azurite last (ARM uploads to it on stop);
    # the servers between do not call each other, so they stop side by side.
    order = []
    for wave in (("host",), ("receivers", "email", "arm", "traffic"), ("azurite",)):
        stopped = sup.stop(*wave)
        order += stopped
        if not quiet and stopped:
            say(f"stopped {', '.join(stopped)}")
    sup.forget_all()
    with suppress(FileNotFoundError):
        ENDPOINTS.unlink()
    for netns in (*_netns_names(), STANDBY_NETNS):
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)
    if not quiet and not order:
        say("nothing was running")


def status() -> int:
    pids = supervisor().pids()
    if not pids:
        print("local stack: not running (make up)")
        return 1
    for name, pid in pids.items():
        print(f"{name:8} pid {pid:<7} {'running' if alive(pid) else 'stopped'}")
    if ENDPOINTS.is_file():
        e = json.loads(ENDPOINTS.read_text())
        print(f"functions {e['functions_url']}  healthy={healthy(e)}")
        print(f"arm       {e['arm_url']}")
        print(f"inbox     {e['inbox_dir']}")
    return 0
