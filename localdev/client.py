"""One client for a running local stack: what the demo, the e2e tests and the benchmarks
all use to talk to it.

Everything here is what an operator or a script does against the deployed app: post
alerts and manual starts with the function key, follow the Durable status URLs (with a
progress line if asked), read capture blobs and the inbox. The only test-only doors are
the ARM and email endpoints' ``/_localdev/`` routes (faults, latency, request log, world
changes), authenticated as those services require: a managed-identity bearer token for
ARM, an ACS HMAC signature for email.

Boundary: HTTP(S) to 127.0.0.1 and files in the stack's state folder; no process
management (``localdev.supervise``) and no wiring (``localdev.stack``).
"""

from __future__ import annotations

import base64
import email.utils
import json
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.email.auth import content_hash, sign

TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


REFUSED_RETRY_SECONDS = 30.0  # a host restart (a deploy, a crash test) takes a few seconds


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         context: ssl.SSLContext | None = None, raw: bytes | None = None,
         timeout: float = 60) -> Response:
    """One JSON request; HTTP errors are answers, not exceptions (OSError still raises).

    A refused connection is tried again for up to REFUSED_RETRY_SECONDS, as an operator's
    script would while the host restarts: the request never reached the server, so even a
    POST is safe to repeat. Timeouts and resets are not retried (the server may have acted).
    """
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,  # noqa: S310 - our own stack
                                 headers={"Content-Type": "application/json", **(headers or {})})
    deadline = time.monotonic() + REFUSED_RETRY_SECONDS
    while True:
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=context) as r:  # noqa: S310
                payload = r.read()
                status, hdrs = r.status, dict(r.headers)
            break
        except urllib.error.HTTPError as err:
            payload, status, hdrs = err.read(), err.code, dict(err.headers)
            break
        except urllib.error.URLError as err:
            if not isinstance(err.reason, ConnectionRefusedError) or \
                    time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        parsed: Any = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return Response(status, hdrs, parsed)


def progress_line(body: dict[str, Any]) -> str:
    custom = body.get("customStatus") or {}
    if not isinstance(custom, dict):
        custom = {}
    parts = [f"{body.get('runtimeStatus', '?'):10}", str(custom.get("phase", ""))]
    if custom.get("captureStatus"):
        parts.append(f"capture {custom['captureStatus']}")
    if custom.get("elapsedSeconds") is not None:
        parts.append(f"{custom['elapsedSeconds']}s")
    return "  ".join(p for p in parts if p)


class ProgressPrinter:
    """One line that rewrites itself on a terminal, one line per change otherwise."""

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, body: dict[str, Any]) -> None:
        line = progress_line(body)
        if sys.stdout.isatty():
            print(f"\r    {line:<70}", end="", flush=True)
            if body.get("runtimeStatus") in TERMINAL:
                print()
        elif line != self.last:
            print(f"    {line}", flush=True)
        self.last = line


@dataclass
class StackClient:
    """A running stack, from its state folder (``LOCALDEV_STATE_DIR`` or ``.localdev``)."""

    state: Path
    endpoints: dict[str, Any]
    arm: dict[str, Any]
    email: dict[str, Any]
    system_key: str
    ca_bundle: str
    identity_header: str
    email_access_key: str
    _token: str | None = field(default=None, repr=False)

    @classmethod
    def load(cls, state: Path) -> StackClient:
        endpoints_file = state / "endpoints.json"
        if not endpoints_file.is_file():
            raise SystemExit("the local stack is not running: make up")
        settings = json.loads((state / "app.settings.json").read_text())["Values"]
        conn = dict(p.split("=", 1) for p in settings["ALERTCAP_EMAIL_CONNECTION_STRING"]
                    .split(";") if "=" in p)
        demo = json.loads((state / "demo.json").read_text())
        return cls(state=state,
                   endpoints=json.loads(endpoints_file.read_text()),
                   arm=json.loads((state / "stack" / "arm.json").read_text()),
                   email=json.loads((state / "stack" / "email.json").read_text()),
                   system_key=str(demo["system_key"]), ca_bundle=str(demo["ca_bundle"]),
                   identity_header=json.loads(
                       (state / "arm-config.json").read_text())["identityHeader"],
                   email_access_key=conn["accesskey"])

    # --- identities ---------------------------------------------------------------------
    @property
    def base(self) -> str:
        return str(self.endpoints["functions_url"])

    @property
    def function_key(self) -> str:
        return str(self.endpoints["function_key"])

    @property
    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def vm(self, name: str) -> str:
        """The resource id of the VM called NAME."""
        return next(v for v in self.endpoints["vms"] if v.lower().endswith("/" + name.lower()))

    # --- the app's HTTP API -------------------------------------------------------------
    def post_alert(self, payload: Any, code: str | None = "default") -> Response:
        return http("POST", self._api("alerts", code), payload)

    def start_capture(self, vm: str, seconds: int, code: str | None = "default",
                      **body: Any) -> Response:
        return http("POST", self._api("captures", code),
                    {"vmId": vm, "capture": {"timeLimitInSeconds": seconds}, **body})

    def stop_capture(self, instance_id: str) -> Response:
        return http("POST", self._api(f"captures/{instance_id}/stop", "default"), {})

    def _api(self, route: str, code: str | None) -> str:
        url = f"{self.base}/api/{route}"
        if code == "default":
            code = self.function_key
        return url if code is None else f"{url}?code={urllib.parse.quote(code)}"

    def with_key(self, url: str) -> str:
        """The webhook answers with keyless status URLs: an operator adds the system key."""
        if "code=" in url:
            return url
        return f"{url}{'&' if '?' in url else '?'}code={urllib.parse.quote(self.system_key)}"

    def status(self, status_url: str) -> dict[str, Any]:
        r = http("GET", self.with_key(status_url))
        if r.status not in (200, 202) or not isinstance(r.body, dict):
            raise AssertionError(f"status query answered {r.status}: {r.body}")
        return dict(r.body)

    def status_post(self, url: str) -> Response:
        """POST to a Durable management URL from a 202 body (terminate, rewind, ...)."""
        return http("POST", url)

    def wait(self, status_url: str, timeout: float = 150, until: tuple[str, ...] = TERMINAL,
             interval: float = 0.25,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll a statusQueryGetUri until runtimeStatus is in UNTIL (bounded by TIMEOUT)."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.status(status_url)
            if on_status is not None:
                on_status(body)
            if body.get("runtimeStatus") in until:
                return body
            time.sleep(interval)
        raise AssertionError(f"run did not reach {until} in {timeout}s; last: "
                             f"{progress_line(body)}")

    def follow(self, status_url: str, timeout: float = 300) -> dict[str, Any]:
        """wait() with a progress line on stdout (the CLI and the demo)."""
        return self.wait(status_url, timeout=timeout, interval=1, on_status=ProgressPrinter())

    def wait_for(self, status_url: str, ready: Callable[[dict[str, Any]], bool],
                 timeout: float = 30) -> dict[str, Any]:
        """Poll until READY(status) holds; fails if the run ends first."""
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.status(status_url)
            if ready(body):
                return body
            if body.get("runtimeStatus") in TERMINAL:
                raise AssertionError(f"run ended before it was ready: {body}")
            time.sleep(0.2)
        raise AssertionError(f"run was not ready in {timeout}s; last: {body}")

    def wait_phase(self, status_url: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.status(status_url)
            if (body.get("customStatus") or {}).get("phase") == phase:
                return body
            if body.get("runtimeStatus") in TERMINAL:
                raise AssertionError(f"run ended before phase {phase!r}: {body}")
            time.sleep(0.2)
        raise AssertionError(f"run never reached phase {phase!r}; last: {body}")

    def instances(self, **query: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"code": self.system_key, **query})
        r = http("GET", f"{self.base}/runtime/webhooks/durabletask/instances?{params}")
        if r.status != 200:
            raise AssertionError(f"instances answered {r.status}: {r.body}")
        return list(r.body)

    # --- storage ------------------------------------------------------------------------
    def download_blob(self, blob_url: str) -> bytes:
        """A capture blob, read with the stack's connection string (as the app does)."""
        from alertcap.sdk.clients import Clients
        from alertcap.settings import Settings

        clients = Clients(Settings(blob_connection_string=self.endpoints["blob_connection_string"]))
        data: bytes = clients.blob(blob_url).download_blob().readall()
        return data

    def inbox(self) -> list[dict[str, Any]]:
        """Every stored message, oldest first."""
        files = sorted(Path(self.endpoints["inbox_dir"]).glob("*.json"),
                       key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text()) for p in files]

    # --- the ARM endpoint -----------------------------------------------------------------
    def arm_token(self) -> str:
        if self._token is None:
            url = (f"{self.arm['identityEndpoint']}?api-version=2019-08-01"
                   "&resource=https://management.azure.com")
            r = http("GET", url, headers={"X-IDENTITY-HEADER": self.identity_header})
            if r.status != 200:
                raise AssertionError(f"identity endpoint answered {r.status}: {r.body}")
            self._token = str(r.body["access_token"])
        return self._token

    def arm_call(self, method: str, path: str, body: Any = None) -> Response:
        return http(method, self.arm["armUrl"] + path, body, context=self.tls,
                    headers={"Authorization": f"Bearer {self.arm_token()}"})

    def _door(self, method: str, path: str, body: Any, ok: tuple[int, ...]) -> Response:
        r = self.arm_call(method, path, body)
        if r.status not in ok:
            raise AssertionError(f"{method} {path} answered {r.status}: {r.body}")
        return r

    def arm_fault(self, rule: dict[str, Any]) -> dict[str, Any]:
        return dict(self._door("POST", "/_localdev/faults", rule, (201,)).body)

    def arm_clear_faults(self) -> None:
        self._door("DELETE", "/_localdev/faults", None, (204,))

    def arm_requests(self) -> list[dict[str, Any]]:
        return list(self._door("GET", "/_localdev/requests", None, (200,)).body["requests"])

    def arm_latency(self, milliseconds: float | None = None) -> float:
        """Set (or just read) the delay the ARM endpoint adds to every ARM call."""
        if milliseconds is None:
            r = self._door("GET", "/_localdev/latency", None, (200,))
        else:
            r = self._door("PUT", "/_localdev/latency", {"milliseconds": milliseconds}, (200,))
        return float(r.body["milliseconds"])

    def vm_captures(self, vm_name: str, watcher_rg: str = "NetworkWatcherRG",
                    watcher: str = "NetworkWatcher_eastus") -> list[dict[str, Any]]:
        sub = self.vm(vm_name).split("/")[2]
        path = (f"/subscriptions/{sub}/resourceGroups/{watcher_rg}/providers/"
                f"Microsoft.Network/networkWatchers/{watcher}/packetCaptures"
                "?api-version=2024-05-01")
        r = self._door("GET", path, None, (200,))
        return [c for c in r.body["value"]
                if c["properties"]["target"].lower().endswith("/" + vm_name.lower())]

    # --- the email endpoint (HMAC-signed like every ACS call) -----------------------------
    def email_call(self, method: str, path: str, body: Any = None) -> Response:
        raw = b"" if body is None else json.dumps(body).encode()
        endpoint = urllib.parse.urlsplit(self.email["endpoint"])
        date = email.utils.format_datetime(datetime.now(UTC), usegmt=True)
        digest = content_hash(raw)
        signature = sign(base64.b64decode(self.email_access_key), method, path, date,
                         endpoint.netloc, digest)
        headers = {"x-ms-date": date, "x-ms-content-sha256": digest,
                   "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;"
                                    f"x-ms-content-sha256&Signature={signature}"}
        return http(method, f"{endpoint.scheme}://{endpoint.netloc}{path}", raw=raw,
                    headers=headers, context=self.tls)

    def email_fault(self, rule: dict[str, Any]) -> dict[str, Any]:
        r = self.email_call("POST", "/_localdev/faults", rule)
        if r.status != 201:
            raise AssertionError(f"email fault answered {r.status}: {r.body}")
        return dict(r.body)

    def email_clear_faults(self) -> None:
        r = self.email_call("DELETE", "/_localdev/faults")
        if r.status != 204:
            raise AssertionError(f"email fault clear answered {r.status}: {r.body}")
