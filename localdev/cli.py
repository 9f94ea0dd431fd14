"""`python -m localdev up|down|status|alert FILE|demo`: the local stack, from one command.

    up      start Azurite, the ARM endpoint (with its identity endpoint), the email
            endpoint and the Functions host in the background; wait until healthy; write
            .localdev/endpoints.json
    down    stop them all (and remove the demo VM's network namespace)
    status  what runs, where
    restart-host [--kill]   restart (or crash and restart) the Functions host only
    alert   post an alert payload with the function key and follow its status URL
    demo    up, make the demo VM send an unusual burst of TCP traffic, post a
            real-shaped alert, follow the run, print the capture, summary and email, down

Boundary: process management and HTTP calls to our own stack on 127.0.0.1 only. The app
knows none of this; it gets endpoints through settings (.localdev/app.settings.json).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Tests run their own stack beside a developer's: another state folder, port 0.
STATE = Path(os.environ.get("LOCALDEV_STATE_DIR") or ROOT / ".localdev")
ENDPOINTS = STATE / "endpoints.json"
PIDS = STATE / "pids.json"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
REGION = "eastus"
DEMO_RG = "demo-rg"
STORAGE_ID = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/alertcap-rg/providers/"
              "Microsoft.Storage/storageAccounts/devstoreaccount1")
DEMO_NETNS = os.environ.get("LOCALDEV_NETNS") or "alertcap-vm1"


def vm_id(name: str) -> str:
    return (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{DEMO_RG}/providers/"
            f"Microsoft.Compute/virtualMachines/{name}")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _write_secret(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], what: str, log: Path,
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


def _spawn(name: str, argv: list[str], env: dict[str, str] | None = None
           ) -> tuple[subprocess.Popen[bytes], Path]:
    log = STATE / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    out = log.open("ab")
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})})
    pids = json.loads(PIDS.read_text()) if PIDS.is_file() else {}
    pids[name] = proc.pid
    PIDS.write_text(json.dumps(pids))
    return proc, log


# --- up ------------------------------------------------------------------------------


def _demo_vms() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """vm1 lives in its own network namespace (a clean capture of just its traffic);
    vm2 is this machine's loopback. Without root, both use loopback."""
    vms: list[dict[str, Any]] = []
    demo: dict[str, Any] = {}
    try:
        from localdev.arm import vmnet

        with suppress(Exception):
            subprocess.run(["ip", "netns", "delete", DEMO_NETNS], capture_output=True,
                           check=False)
        net = vmnet.create(DEMO_NETNS)
        vms.append({"id": vm_id("vm1"), "location": REGION, "osType": "Linux",
                    "netns": net.netns, "interface": net.vm_if, "ipAddress": net.vm_ip})
        demo = {"netns": net.netns, "host_if": net.host_if, "host_ip": net.host_ip,
                "vm_ip": net.vm_ip}
    except Exception as exc:
        say(f"no network namespace for vm1 ({exc}); vm1 captures on loopback")
        vms.append({"id": vm_id("vm1"), "location": REGION, "osType": "Linux",
                    "interface": "lo"})
    vms.append({"id": vm_id("vm2"), "location": REGION, "osType": "Linux", "interface": "lo"})
    # Extra loopback VMs for storm tests and benchmarks (LOCALDEV_EXTRA_VMS=50).
    for i in range(int(os.environ.get("LOCALDEV_EXTRA_VMS") or 0)):
        vms.append({"id": vm_id(f"storm{i:03d}"), "location": REGION, "osType": "Linux",
                    "interface": "lo"})
    return vms, demo


def up(port: int = 7071, fast: bool = True) -> dict[str, Any]:
    if ENDPOINTS.is_file() and _healthy(json.loads(ENDPOINTS.read_text())):
        say(f"local stack already running: {ENDPOINTS}")
        return dict(json.loads(ENDPOINTS.read_text()))
    down(quiet=True)
    STATE.mkdir(exist_ok=True)
    if port and not _port_free(port):
        raise SystemExit(f"port {port} is taken; stop what uses it or pass --port")
    from localdev import tls

    stack = STATE / "stack"
    for stale in (stack / "arm.json", stack / "email.json", STATE / "host" / "host-runtime.json"):
        stale.unlink(missing_ok=True)
    cert, _key = tls.ensure_cert(stack)  # one certificate for ARM and email: one CA bundle

    say("Azurite (Blob storage)")
    blob_port = _free_port()
    azurite = ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not azurite.exists():
        raise SystemExit("Azurite is not installed: run `npm ci` (make up does)")
    az_proc, az_log = _spawn("azurite", [str(azurite), "--location", str(STATE / "azurite"),
                                         "--blobHost", "127.0.0.1", "--blobPort", str(blob_port),
                                         "--silent", "--skipApiVersionCheck"])
    from localdev.azurite import connection_string

    blob_conn = connection_string(blob_port)
    _wait_port(blob_port, az_proc, "Azurite", az_log)

    say("local ARM endpoint (Network Watcher, VMs, managed identity)")
    vms, demo = _demo_vms()
    identity_header = secrets.token_urlsafe(24)
    _write_secret(STATE / "arm-config.json", {
        "subscriptionId": SUBSCRIPTION, "identityHeader": identity_header,
        "lroRetryAfterSeconds": 0,
        "storageAccounts": {STORAGE_ID: {"connectionString": blob_conn}},
        "watchers": [{"resourceGroup": "NetworkWatcherRG", "name": f"NetworkWatcher_{REGION}",
                      "location": REGION}],
        "vms": vms})
    arm_proc, arm_log = _spawn("arm", [sys.executable, "-m", "localdev.arm", "--state-dir",
                                       str(stack), "--config", str(STATE / "arm-config.json")])
    arm = _wait_file(stack / "arm.json", arm_proc, "ARM endpoint", arm_log)

    say("local email endpoint (Azure Communication Services)")
    access_key = base64.b64encode(secrets.token_bytes(32)).decode()
    mail_proc, mail_log = _spawn("email", [sys.executable, "-m", "localdev.email",
                                           "--state-dir", str(stack)],
                                 env={"LOCALDEV_EMAIL_ACCESS_KEY": access_key})
    mail = _wait_file(stack / "email.json", mail_proc, "email endpoint", mail_log)

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
    }
    if fast:  # seconds, not minutes: the local stack answers at once
        values.update({
            "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS": "15", "ALERTCAP_POLL_INTERVAL_SECONDS": "2",
            "ALERTCAP_MAX_POLL_INTERVAL_SECONDS": "3", "ALERTCAP_STOP_GRACE_SECONDS": "15",
            # Continue as new every 4 polls, so every local run crosses a generation.
            "ALERTCAP_POLLS_PER_GENERATION": "4",
            "ALERTCAP_RETRY_FIRST_INTERVAL_MS": "1000", "ALERTCAP_RETRY_MAX_ATTEMPTS": "5",
            "ALERTCAP_LRO_POLLING_SECONDS": "0.2"})
    _write_secret(STATE / "app.settings.json", {"Values": values})

    say(f"Functions host on http://127.0.0.1:{port}")
    runtime = _start_host(port)
    keys = json.loads(Path(runtime["keysFile"]).read_text())

    endpoints = {
        "functions_url": runtime["baseUrl"].rstrip("/"),
        "function_key": keys["functionKeys"]["default"],
        "master_key": keys["masterKey"],
        "arm_url": arm["armUrl"],
        "blob_connection_string": blob_conn,
        "inbox_dir": mail["inbox"],
        "vms": {v["id"]: v.get("netns") or v.get("interface", "lo") for v in vms},
    }
    _write_secret(ENDPOINTS, endpoints)
    _write_secret(STATE / "demo.json", {**demo, "ca_bundle": cert, "inbox_url": mail["inboxUrl"],
                                        "system_key": keys["systemKeys"]["durabletask_extension"]})
    say(f"local stack ready: {ENDPOINTS} (keys inside; logs in {STATE / 'logs'})")
    return endpoints


def _start_host(port: int) -> dict[str, Any]:
    host_state = STATE / "host"
    (host_state / "host-runtime.json").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "localdev.host", "--app-dir", str(ROOT), "--port", str(port),
            "--state-dir", str(host_state), "--settings", str(STATE / "app.settings.json")]
    proc, log = _spawn("host", argv)
    return _wait_file(host_state / "host-runtime.json", proc, "Functions host", log)


def restart_host(kill: bool) -> None:
    """Stop the host (SIGKILL with --kill: a crash) and start it again on the same port
    and state; the durable store resumes every instance it held."""
    pids = json.loads(PIDS.read_text()) if PIDS.is_file() else {}
    if "host" not in pids or not ENDPOINTS.is_file():
        raise SystemExit("the local stack is not running: make up")
    port = int(json.loads(ENDPOINTS.read_text())["functions_url"].rsplit(":", 1)[1])
    if kill:
        with suppress(ProcessLookupError):
            os.killpg(pids["host"], signal.SIGKILL)
        _wait_gone(pids["host"])
    else:
        _stop(pids["host"])
    say("host stopped" + (" with SIGKILL" if kill else ""))
    _start_host(port)
    say(f"host restarted on port {port}")


def _wait_gone(pid: int, timeout: float = 10) -> bool:
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


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited during start-up; see {log}")
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start; see {log}")


def _healthy(endpoints: dict[str, Any]) -> bool:
    try:
        with urllib.request.urlopen(endpoints["functions_url"] + "/", timeout=2) as r:  # noqa: S310
            return bool(r.status == 200)
    except (OSError, KeyError):
        return False


# --- down / status -------------------------------------------------------------------


def down(quiet: bool = False) -> None:
    pids = json.loads(PIDS.read_text()) if PIDS.is_file() else {}
    # Host first (it stops calling the others), Azurite last (ARM uploads to it on stop).
    order = [n for n in ("host", "email", "arm", "azurite") if n in pids]
    for name in order:
        _stop(pids[name])
        if not quiet:
            say(f"stopped {name}")
    with suppress(FileNotFoundError):
        PIDS.unlink()
    with suppress(FileNotFoundError):
        ENDPOINTS.unlink()
    subprocess.run(["ip", "netns", "delete", DEMO_NETNS], capture_output=True, check=False)
    if not quiet and not order:
        say("nothing was running")


def _stop(pid: int, timeout: float = 10) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    if not _wait_gone(pid, timeout):
        with suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def status() -> int:
    pids = json.loads(PIDS.read_text()) if PIDS.is_file() else {}
    if not pids:
        print("local stack: not running (make up)")
        return 1
    for name, pid in pids.items():
        try:
            os.killpg(pid, 0)
            state = "running"
        except ProcessLookupError:
            state = "stopped"
        print(f"{name:8} pid {pid:<7} {state}")
    if ENDPOINTS.is_file():
        e = json.loads(ENDPOINTS.read_text())
        print(f"functions {e['functions_url']}  healthy={_healthy(e)}")
        print(f"arm       {e['arm_url']}")
        print(f"inbox     {e['inbox_dir']}")
    return 0


# --- alert: post and follow ----------------------------------------------------------


def _request(method: str, url: str, body: Any = None, timeout: float = 30
             ) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - our own host
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            raw = r.read()
            return r.status, dict(r.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return err.code, dict(err.headers), parsed


def post_alert(endpoints: dict[str, Any], payload: Any) -> tuple[int, Any]:
    url = f"{endpoints['functions_url']}/api/alerts?code={endpoints['function_key']}"
    code, _headers, body = _request("POST", url, payload)
    return code, body


def with_system_key(status_url: str) -> str:
    """The webhook answers with keyless status URLs; the operator adds the system key."""
    if "code=" in status_url:
        return status_url
    key = json.loads((STATE / "demo.json").read_text())["system_key"]
    return f"{status_url}{'&' if '?' in status_url else '?'}code={key}"


def follow(status_url: str, timeout: float = 300) -> dict[str, Any]:
    """Poll a statusQueryGetUri, printing one progress line, until the run ends."""
    status_url = with_system_key(status_url)
    deadline = time.monotonic() + timeout
    last = ""
    body: Any = {}
    while time.monotonic() < deadline:
        _code, _h, body = _request("GET", status_url)
        body = body or {}
        custom = body.get("customStatus") or {}
        parts = [f"{body.get('runtimeStatus', '?'):10}", str(custom.get("phase", ""))]
        if custom.get("captureStatus"):
            parts.append(f"capture {custom['captureStatus']}")
        if custom.get("elapsedSeconds") is not None:
            parts.append(f"{custom['elapsedSeconds']}s")
        line = "  ".join(p for p in parts if p)
        if sys.stdout.isatty():
            print(f"\r    {line:<70}", end="", flush=True)
        elif line != last:
            print(f"    {line}", flush=True)
        last = line
        if body.get("runtimeStatus") in ("Completed", "Failed", "Terminated", "Canceled"):
            if sys.stdout.isatty():
                print()
            return dict(body)
        time.sleep(1)
    raise SystemExit(f"the run did not finish in {timeout:.0f}s; last status: {last}")


def alert(path: str) -> int:
    endpoints = json.loads(ENDPOINTS.read_text()) if ENDPOINTS.is_file() else None
    if not endpoints:
        raise SystemExit("the local stack is not running: make up")
    payload = json.loads(Path(path).read_text())
    code, body = post_alert(endpoints, payload)
    print(json.dumps(body, indent=2))
    if code not in (200, 202) or not isinstance(body, dict) or "statusQueryGetUri" not in body:
        return 1 if code >= 400 else 0
    final = follow(body["statusQueryGetUri"])
    print(json.dumps(final.get("output"), indent=2))
    return 0 if final.get("runtimeStatus") == "Completed" else 1


# --- demo ----------------------------------------------------------------------------


def demo_alert(vm: str, fired: datetime) -> dict[str, Any]:
    """A common-schema metric alert, as an action group posts it for a dynamic threshold."""
    when = fired.strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    rule = "vm1-outbound-flows-unusual"
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.AlertsManagement/"
                           f"alerts/{secrets.token_hex(16)}",
                "alertRule": rule, "severity": "Sev2", "signalType": "Metric",
                "monitorCondition": "Fired", "monitoringService": "Platform",
                "alertTargetIDs": [vm.lower()], "configurationItems": ["vm1"],
                "originAlertId": f"{SUBSCRIPTION}_{DEMO_RG}_microsoft.insights_metricalerts_{rule}",
                "firedDateTime": when,
                "description": "vm1 opens far more outbound TCP flows than usual",
                "essentialsVersion": "1.0", "alertContextVersion": "1.0"},
            "alertContext": {
                "properties": None, "conditionType": "DynamicThresholdCriteria",
                "condition": {"windowSize": "PT5M", "allOf": [{
                    "alertSensitivity": "Medium", "metricName": "Outbound Flows",
                    "metricNamespace": "Microsoft.Compute/virtualMachines",
                    "operator": "GreaterThan", "timeAggregation": "Average",
                    "dimensions": [], "metricValue": 412.0,
                    "failingPeriods": {"numberOfEvaluationPeriods": 4,
                                       "minFailingPeriodsToAlert": 3}}],
                    "windowStartTime": when, "windowEndTime": when}},
            "customProperties": None}}


def demo(keep: bool = False) -> int:
    started = time.monotonic()
    endpoints = up()
    info = json.loads((STATE / "demo.json").read_text())
    vm = vm_id("vm1")
    traffic = _start_burst(info)
    try:
        say("vm1 sends an unusual burst of TCP traffic; Azure Monitor fires an alert")
        code, body = post_alert(endpoints, demo_alert(vm, datetime.now(UTC)))
        if code != 202:
            raise SystemExit(f"webhook answered {code}: {body}")
        say(f"webhook answered 202; following {body['id']}")
        status_url = body["statusQueryGetUri"]
        final = follow(status_url)
    finally:
        _stop(traffic.pid, timeout=3)
    output = final.get("output")
    if not isinstance(output, dict):  # a Failed run's output is the error text
        output = {"outcome": "failed", "reason": str(output)}
    print()
    _print_result(final, output, info, endpoints)
    say(f"demo finished in {time.monotonic() - started:.0f}s")
    if not keep:
        down()
    return 0 if output.get("outcome") == "captured" else 1


def _start_burst(info: dict[str, Any]) -> subprocess.Popen[bytes]:
    """A sink on the host side of vm1's link, and a client inside vm1 that floods it."""
    host = info.get("host_ip") or "127.0.0.1"
    argv = [sys.executable, "-m", "localdev.traffic", "--listen", host, "--seconds", "40"]
    if info.get("netns"):
        argv += ["--netns", info["netns"]]
    proc, _log = _spawn("traffic", argv)
    return proc


def _print_result(final: dict[str, Any], output: dict[str, Any], info: dict[str, Any],
                  endpoints: dict[str, Any]) -> None:
    from alertcap import pcap

    say(f"run {final.get('runtimeStatus')}: outcome {output.get('outcome')}, "
        f"reason {output.get('reason')}")
    summary = output.get("summary") or {}
    blob_url = summary.get("blob_url")
    if blob_url:
        local = STATE / "demo" / "capture.cap"
        local.parent.mkdir(parents=True, exist_ok=True)
        from alertcap.sdk.clients import Clients
        from alertcap.settings import Settings

        blob = Clients(Settings(blob_connection_string=endpoints["blob_connection_string"]))
        local.write_bytes(blob.blob(blob_url).download_blob().readall())
        say(f"capture file: {blob_url}")
        say(f"downloaded to {local} ({local.stat().st_size:,} bytes); "
            f"open it with: tcpdump -nr {local.relative_to(ROOT)} | head")
    if summary.get("summary"):
        say("traffic summary")
        print(pcap.render_text(summary["summary"]))
    inbox = Path(endpoints["inbox_dir"])
    messages = sorted(inbox.glob("*.json"), key=lambda p: p.stat().st_mtime)
    if messages:
        message = json.loads(messages[-1].read_text())
        say(f"email sent to {', '.join(_addresses(message))}: {message.get('subject')}")
        # The summary was printed above; the email's own lines are what the on-call reads.
        print(message.get("plainText", "").split("\nCapture summary\n")[0].rstrip())
        say(f"the same email as HTML: {messages[-1].with_suffix('.html')} "
            f"(inbox page {info.get('inbox_url')} while the stack runs)")


def _addresses(message: dict[str, Any]) -> list[str]:
    to = message.get("to") or []
    return [t.get("address", str(t)) if isinstance(t, dict) else str(t) for t in to]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--port", type=int, default=7071)
    sub.add_parser("down")
    sub.add_parser("status")
    p_restart = sub.add_parser("restart-host", help="restart the Functions host only")
    p_restart.add_argument("--kill", action="store_true", help="SIGKILL it first (a crash)")
    p_alert = sub.add_parser("alert")
    p_alert.add_argument("file")
    p_demo = sub.add_parser("demo")
    p_demo.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args.port)
        return 0
    if args.command == "down":
        down()
        return 0
    if args.command == "status":
        return status()
    if args.command == "restart-host":
        restart_host(args.kill)
        return 0
    if args.command == "alert":
        return alert(args.file)
    return demo(args.keep)
