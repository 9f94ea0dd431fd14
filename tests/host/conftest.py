"""Fixtures for the localdev.host tests: the host as a real subprocess on ephemeral ports.

Other test suites run concurrently on this machine, so every host gets port 0 (the host
writes the ports it got to `<state-dir>/host-runtime.json`) and its own state directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE_APP = Path(__file__).resolve().parent / "sample_app"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Response:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return Response(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, dict(err.headers), err.read())


@dataclass
class HostProcess:
    """One `python -m localdev.host` subprocess over the sample app."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    runtime: dict[str, Any] = field(default_factory=dict)
    starts: int = 0
    app_dir: Path = SAMPLE_APP
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        return self.workdir / "state"

    @property
    def sample_dir(self) -> Path:
        return self.workdir / "sample"

    @property
    def base(self) -> str:
        return str(self.runtime["baseUrl"])

    @property
    def keys(self) -> dict[str, Any]:
        return dict(json.loads((self.state_dir / "host-keys.json").read_text()))

    @property
    def function_key(self) -> str:
        return str(self.keys["functionKeys"]["default"])

    @property
    def master_key(self) -> str:
        return str(self.keys["masterKey"])

    @property
    def system_key(self) -> str:
        return str(self.keys["systemKeys"]["durabletask_extension"])

    def start(self) -> HostProcess:
        settings = self.workdir / "settings.json"
        values = {"SAMPLE_STATE_DIR": str(self.sample_dir), **self.settings}
        settings.write_text(json.dumps({"Values": values}))
        runtime_file = self.state_dir / "host-runtime.json"
        runtime_file.unlink(missing_ok=True)
        self.starts += 1
        log = open(self.workdir / f"stderr-{self.starts}.log", "wb")  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k != "SAMPLE_STATE_DIR"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.host", "--app-dir", str(self.app_dir),
             "--port", "0", "--rpc-port", "0", "--state-dir", str(self.state_dir),
             "--settings", str(settings)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"host exited: {self.stderr()}")
            if runtime_file.exists():
                try:
                    runtime = json.loads(runtime_file.read_text())
                except ValueError:
                    runtime = {}
                if runtime.get("pid") == self.proc.pid:
                    self.runtime = runtime
                    if http("GET", self.base + "/").status == 200:
                        return self
            time.sleep(0.05)
        raise RuntimeError(f"host did not start: {self.stderr()}")

    def stderr(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob("stderr-*.log"))
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    # --- app and API helpers -----------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, key: str | None = "function",
            raw: bytes | None = None) -> Response:
        url = f"{self.base}/api/{path}"
        code = {"function": self.function_key, "master": self.master_key, None: None}[key]
        if code:
            url += ("&" if "?" in url else "?") + f"code={code}"
        return http(method, url, body, raw=raw)

    def start_orchestration(self, name: str, instance_id: str, body: Any = None) -> Response:
        return self.api("POST", f"start/{name}?id={instance_id}", body)

    def op(self, op: str, instance_id: str = "", query: str = "", body: Any = None) -> Any:
        resp = self.api("POST", f"ops/{op}/{instance_id}?{query}", body)
        assert resp.status == 200, (resp.status, resp.body, self.stderr()[-3000:])
        return resp.json()["result"]

    def webhook(self, method: str, path: str, query: str = "", key: str | None = "system",
                body: Any = None, headers: dict[str, str] | None = None) -> Response:
        code = {"system": self.system_key, "master": self.master_key,
                "function": self.function_key, None: None}[key]
        params = "&".join(p for p in (query, f"code={code}" if code else "") if p)
        url = f"{self.runtime['webhookBaseUrl']}/{path}" + (f"?{params}" if params else "")
        return http(method, url, body, headers)

    def status(self, instance_id: str, query: str = "showHistory=true&showHistoryOutput=true"
               ) -> dict[str, Any]:
        resp = self.webhook("GET", f"instances/{instance_id}", query)
        assert resp.status in (200, 202), (resp.status, resp.body)
        return dict(resp.json())

    def wait(self, instance_id: str, statuses: tuple[str, ...] = ("Completed",),
             timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            resp = self.webhook("GET", f"instances/{instance_id}",
                                "showHistory=true&showHistoryOutput=true")
            if resp.status in (200, 202):
                status = resp.json()
                if status["runtimeStatus"] in statuses:
                    return status
            time.sleep(0.05)
        raise AssertionError(f"{instance_id} never reached {statuses}: {status}\n"
                             f"{self.stderr()[-3000:]}")

    def count(self, name: str) -> int:
        path = self.sample_dir / f"{name}.count"
        return int(path.read_text()) if path.exists() else 0


def copy_app(dest: Path, **durable_and_host: Any) -> Path:
    """The sample app in `dest` with host.json changed: `durableTask__<name>` keys go to
    extensions.durableTask (None removes), others to the top level."""
    shutil.copytree(SAMPLE_APP, dest, ignore=shutil.ignore_patterns("__pycache__"))
    config = json.loads((dest / "host.json").read_text())
    for key, value in durable_and_host.items():
        section = config
        if key.startswith("durableTask__"):
            section, key = config["extensions"]["durableTask"], key.split("__", 1)[1]
        if value is None:
            section.pop(key, None)
        else:
            section[key] = value
    (dest / "host.json").write_text(json.dumps(config))
    return dest


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Callable[..., HostProcess]]:
    hosts: list[HostProcess] = []

    def factory(app_dir: Path = SAMPLE_APP, **settings: str) -> HostProcess:
        host = HostProcess(tmp_path / f"host{len(hosts)}", app_dir=app_dir, settings=settings)
        host.workdir.mkdir()
        hosts.append(host)
        return host.start()

    yield factory
    for host in hosts:
        host.stop()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    """A host shared by a module's tests; each test uses its own instance ids."""
    proc = HostProcess(tmp_path_factory.mktemp("host"))
    proc.start()
    yield proc
    proc.stop()
