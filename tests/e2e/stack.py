"""A client for one running local stack (`python -m localdev up`), as the e2e tests use it.

Everything here is what an operator or a script would do against the deployed app: post
alerts and manual starts with the function key, follow the Durable status URLs, read the
capture blob and the inbox. The only test-only doors are the ARM and email endpoints'
``/_localdev/`` routes (fault injection, request log), authenticated as those services
require (a managed-identity bearer token; an ACS HMAC signature).
"""

from __future__ import annotations

import base64
import email.utils
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localdev.email.auth import content_hash, sign

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         context: ssl.SSLContext | None = None, raw: bytes | None = None,
         timeout: float = 60) -> Response:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            payload = r.read()
            status, hdrs = r.status, dict(r.headers)
    except urllib.error.HTTPError as err:
        payload, status, hdrs = err.read(), err.code, dict(err.headers)
    try:
        parsed: Any = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload.decode(errors="replace")
    return Response(status, hdrs, parsed)


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Stack:
    state: Path
    netns: str
    endpoints: dict[str, Any]
    demo: dict[str, Any]
    arm: dict[str, Any]
    email: dict[str, Any]
    identity_header: str
    email_access_key: str
    # Fault rules are global to the ARM (or email) endpoint and DELETE clears them all:
    # scenarios that inject faults hold this lock from injection until they clean up.
    fault_lock: threading.Lock = field(default_factory=threading.Lock)
    _token: str | None = None

    @classmethod
    def load(cls, state: Path, netns: str) -> Stack:
        settings = json.loads((state / "app.settings.json").read_text())["Values"]
        conn = dict(p.split("=", 1) for p in settings["ALERTCAP_EMAIL_CONNECTION_STRING"]
                    .split(";") if "=" in p)
        return cls(state=state, netns=netns,
                   endpoints=json.loads((state / "endpoints.json").read_text()),
                   demo=json.loads((state / "demo.json").read_text()),
                   arm=json.loads((state / "stack" / "arm.json").read_text()),
                   email=json.loads((state / "stack" / "email.json").read_text()),
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
    def system_key(self) -> str:
        return str(self.demo["system_key"])

    def vm(self, name: str) -> str:
        return next(v for v in self.endpoints["vms"] if v.lower().endswith("/" + name))

    @property
    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.demo["ca_bundle"])

    def secrets(self) -> dict[str, str]:
        conn = dict(p.split("=", 1) for p in self.endpoints["blob_connection_string"]
                    .split(";") if "=" in p)
        return {"function key": self.function_key,
                "master key": str(self.endpoints["master_key"]),
                "system key": self.system_key,
                "email access key": self.email_access_key,
                "identity header": self.identity_header,
                "Azurite account key": conn["AccountKey"]}

    # --- the app's HTTP API -------------------------------------------------------------
    def post_alert(self, payload: Any, code: str | None = "default") -> Response:
        return http("POST", self._api("alerts", code), payload)

    def start_capture(self, vm: str, seconds: int, code: str | None = "default") -> Response:
        return http("POST", self._api("captures", code),
                    {"vmId": vm, "capture": {"timeLimitInSeconds": seconds}})

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
        assert r.status in (200, 202), (r.status, r.body)
        return dict(r.body)

    def status_post(self, url: str) -> Response:
        """POST to a Durable management URL from a 202 body (terminate, rewind, ...)."""
        return http("POST", url)

    def wait(self, status_url: str, timeout: float = 150,
             until: tuple[str, ...] = TERMINAL) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.status(status_url)
            if body.get("runtimeStatus") in until:
                return body
            time.sleep(0.25)
        raise AssertionError(f"run did not reach {until} in {timeout}s; last: {body}")

    def wait_phase(self, status_url: str, phase: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.status(status_url)
            if (body.get("customStatus") or {}).get("phase") == phase:
                return body
            assert body.get("runtimeStatus") not in TERMINAL, body
            time.sleep(0.2)
        raise AssertionError(f"run never reached phase {phase!r}; last: {body}")

    def instances(self) -> list[dict[str, Any]]:
        r = http("GET", f"{self.base}/runtime/webhooks/durabletask/instances"
                        f"?code={urllib.parse.quote(self.system_key)}")
        assert r.status == 200, (r.status, r.body)
        return list(r.body)

    # --- the ARM endpoint's test routes ---------------------------------------------------
    def arm_token(self) -> str:
        if self._token is None:
            url = (f"{self.arm['identityEndpoint']}?api-version=2019-08-01"
                   "&resource=https://management.azure.com")
            r = http("GET", url, headers={"X-IDENTITY-HEADER": self.identity_header})
            assert r.status == 200, r.body
            self._token = str(r.body["access_token"])
        return self._token

    def arm_call(self, method: str, path: str, body: Any = None) -> Response:
        return http(method, self.arm["armUrl"] + path, body, context=self.tls,
                    headers={"Authorization": f"Bearer {self.arm_token()}"})

    def arm_fault(self, rule: dict[str, Any]) -> None:
        r = self.arm_call("POST", "/_localdev/faults", rule)
        assert r.status == 201, r.body

    def arm_clear_faults(self) -> None:
        assert self.arm_call("DELETE", "/_localdev/faults").status == 204

    def arm_requests(self) -> list[dict[str, Any]]:
        return list(self.arm_call("GET", "/_localdev/requests").body["requests"])

    def vm_captures(self, vm_name: str) -> list[dict[str, Any]]:
        path = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/NetworkWatcherRG/providers/"
                "Microsoft.Network/networkWatchers/NetworkWatcher_eastus/packetCaptures"
                "?api-version=2024-05-01")
        r = self.arm_call("GET", path)
        assert r.status == 200, r.body
        return [c for c in r.body["value"]
                if c["properties"]["target"].lower().endswith("/" + vm_name)]

    # --- the email endpoint's test routes (HMAC-signed like every ACS call) ---------------
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

    # --- the inbox ------------------------------------------------------------------------
    def inbox(self) -> list[dict[str, Any]]:
        out = []
        for p in Path(self.endpoints["inbox_dir"]).glob("*.json"):
            out.append(json.loads(p.read_text()))
        return out

    def emails_for(self, output: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages about one run: same instance, same start time."""
        return [m for m in self.inbox()
                if m.get("headers", {}).get("x-alertcap-instance") == output["instance_id"]
                and output["started_at"] in (m.get("plainText") or "")]

    # --- traffic --------------------------------------------------------------------------
    @contextmanager
    def traffic(self, vm_name: str, seconds: float = 6, rate: int = 50):
        """A TCP sink and a client flooding it: from vm1's namespace, or on loopback for
        vm2. Yields the sink's port."""
        if vm_name == "vm1":
            host, netns = self.demo["host_ip"], ["--netns", self.netns]
        else:
            host, netns = "127.0.0.1", []
        port = free_port(host)
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.traffic", "--listen", host, "--port", str(port),
             "--seconds", str(seconds), "--rate", str(rate), *netns],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield port
        finally:
            try:
                proc.wait(timeout=seconds + 10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
