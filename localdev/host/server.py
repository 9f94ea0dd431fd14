"""The host's HTTP listeners: the public Functions port and the internal Durable RPC port.

Boundary: aiohttp plumbing, authorization and HTTP-trigger invocation. Public port:
`GET /` (readiness), `GET /admin/host/status` (master key), `/<routePrefix>/<route>` (the
app's HTTP triggers, with their auth levels) and `/runtime/webhooks/durabletask/...` (the
management API, system or master key). Internal port (127.0.0.1 only, like the
extension's local RPC endpoint): `/durabletask/...`, the `rpcBaseUrl` the Python SDK's
DurableOrchestrationClient calls; it needs no key because only local processes reach it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import azure.functions as func
from aiohttp import web

from . import logs
from .keys import HostKeys
from .loader import FunctionInfo, HostConfig, call, new_invocation_id
from .mgmt_api import ManagementApi, management_links
from .store import Store
from .workers import Engine

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask/"
CONNECTION_NAME = "Storage"
# Listen backlog: an alert storm opens hundreds of connections in a burst.
BACKLOG = 4096
# Threads for sync HTTP functions; the Python worker's own knob, read like it does.
DEFAULT_HTTP_THREADS = 64


def bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@dataclass
class Urls:
    base: str  # http://127.0.0.1:<port>
    rpc_base: str  # http://127.0.0.1:<rpc-port>/durabletask/

    @property
    def webhook(self) -> str:
        return self.base + WEBHOOK_PATH


class Host:
    def __init__(
        self,
        *,
        app_dir: Path,
        config: HostConfig,
        functions: dict[str, FunctionInfo],
        keys: HostKeys,
        store: Store,
        engine: Engine,
    ):
        self.app_dir = app_dir
        self.config = config
        self.functions = functions
        self.keys = keys
        self.store = store
        self.engine = engine
        threads = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
        self.http_pool = ThreadPoolExecutor(
            int(threads) if threads.isdigit() and int(threads) > 0 else DEFAULT_HTTP_THREADS,
            "http",
        )
        self.urls = Urls("", "")
        self.started = time.time()
        self.host_id = uuid.uuid4().hex
        self.public_api = ManagementApi(engine, store, self.links, config.hub_name)
        self.rpc_api = ManagementApi(engine, store, self.links, config.hub_name)
        self._runners: list[web.AppRunner] = []

    # --- durable client binding --------------------------------------------------------

    def links(self, instance_id: str) -> dict[str, str]:
        return management_links(
            self.urls.webhook,
            self.config.hub_name,
            CONNECTION_NAME,
            self.keys.system_key,
            instance_id,
        )

    def client_binding(self) -> str:
        """The JSON the Durable extension hands to a `durableClient` input binding."""
        hub = self.config.hub_name
        code = f"code={self.keys.system_key}"
        orchestrators = f"{self.urls.webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
        return json.dumps(
            {
                "taskHubName": hub,
                "connectionName": CONNECTION_NAME,
                "creationUrls": {
                    "createNewInstancePostUri": f"{orchestrators}?{code}",
                    "createAndWaitOnNewInstancePostUri": (
                    f"{orchestrators}?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&{code}"
                ),
                },
                "managementUrls": self.links("INSTANCEID"),
                "baseUrl": self.urls.webhook,
                "requiredQueryStringParameters": code,
                "rpcBaseUrl": self.urls.rpc_base,
                "httpBaseUrl": "",
            }
        )

    # --- apps --------------------------------------------------------------------------

    def public_app(self) -> web.Application:
        # One catch-all route: the Functions host matches its routes case-insensitively
        # and answers a path nothing matches with an empty 404, not aiohttp's text page.

        @web.middleware
        async def route_all(request: web.Request, handler: Any) -> web.StreamResponse:
            # What aiohttp's router cannot match (a decoded path with a newline escapes
            # `.*`) goes through the host's routing too, never to aiohttp's text 404.
            try:
                response: web.StreamResponse = await handler(request)
            except web.HTTPNotFound:
                return await self._public(request)
            return response

        app = web.Application(client_max_size=100 * 1024 * 1024, middlewares=[route_all])
        app.router.add_route("*", "/{tail:.*}", self._public)
        return app

    async def _public(self, request: web.Request) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        lower = raw_path.lower()
        if raw_path == "/" and request.method == "GET":
            return await self._ready(request)
        if lower.rstrip("/") == "/admin/host/status" and request.method == "GET":
            return await self._host_status(request)
        if lower == WEBHOOK_PATH or lower.startswith(WEBHOOK_PATH + "/"):
            return await self._webhook(request, request.path[len(WEBHOOK_PATH) :])
        prefix = f"/{self.config.route_prefix}".lower() if self.config.route_prefix else ""
        if lower == prefix or lower.startswith(prefix + "/"):
            return await self._http_trigger(request, raw_path[len(prefix) :])
        return web.Response(status=404)

    def rpc_app(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", RPC_PATH + "{tail:.*}", self._rpc)
        return app

    async def start(self, port: int, rpc_port: int) -> None:
        public_sock = bind(port)
        actual = public_sock.getsockname()[1]
        if rpc_port < 0:
            rpc_port = actual + 10000 if port else 0
        rpc_sock = bind(rpc_port)
        self.urls = Urls(
            base=f"http://127.0.0.1:{actual}",
            rpc_base=f"http://127.0.0.1:{rpc_sock.getsockname()[1]}{RPC_PATH}",
        )
        for app, sock in ((self.rpc_app(), rpc_sock), (self.public_app(), public_sock)):
            # access_log=None: aiohttp's access log would print `code=` query values.
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            await web.SockSite(runner, sock, backlog=BACKLOG).start()
            self._runners.append(runner)

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self.http_pool.shutdown(wait=False, cancel_futures=True)

    # --- handlers ----------------------------------------------------------------------

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="Your Functions host is running.")

    def _key(self, request: web.Request) -> str | None:
        return request.query.get("code") or request.headers.get("x-functions-key")

    async def _host_status(self, request: web.Request) -> web.Response:
        if not self.keys.is_master(self._key(request)):
            return web.Response(status=401)
        return web.json_response(
            {
                "id": self.host_id,
                "state": "Running",
                "version": "localdev",
                "processUptime": int((time.time() - self.started) * 1000),
                "extensionBundle": None,
            }
        )

    async def _webhook(self, request: web.Request, tail: str) -> web.StreamResponse:
        if not self.keys.is_system_key(self._key(request)):
            return web.Response(status=401)
        return await self.public_api.handle(request, tail)

    async def _rpc(self, request: web.Request) -> web.StreamResponse:
        return await self.rpc_api.handle(request, request.match_info["tail"])

    def _match(self, method: str, raw_route: str) -> tuple[FunctionInfo, dict[str, str]] | None:
        """Match the still-encoded path, so an encoded '/' stays inside its segment; the
        route values are then decoded (what the function receives in route_params)."""
        for info in self.functions.values():
            if info.kind != "http" or info.route_regex is None:
                continue
            m = info.route_regex.match(raw_route)
            if m and (not info.methods or method in info.methods):
                return info, {k: unquote(v) for k, v in m.groupdict().items() if v is not None}
        return None

    def _authorized(self, info: FunctionInfo, request: web.Request) -> bool:
        key = self._key(request)
        if info.auth_level == "anonymous":
            return True
        if info.auth_level == "admin":
            return self.keys.is_master(key)
        return self.keys.is_function_key(key)

    async def _http_trigger(self, request: web.Request, raw_route: str) -> web.StreamResponse:
        found = self._match(request.method, raw_route.strip("/"))
        if found is None:
            return web.Response(status=404)
        info, route_params = found
        if not self._authorized(info, request):
            return web.Response(status=401)
        body = await request.read()
        req = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=route_params,
            body=body,
        )
        kwargs: dict[str, Any] = {}
        for binding in info.bindings:
            if binding.get("direction") != "IN":
                continue
            if binding["type"] == "httpTrigger":
                kwargs[binding["name"]] = req
            elif binding["type"] == "durableClient":
                kwargs[binding["name"]] = self.client_binding()
        invocation_id = new_invocation_id()
        reason = "This function was programmatically called via the host APIs."
        try:
            with logs.invocation(info.name, reason, invocation_id):
                result = await call(info, kwargs, invocation_id, self.app_dir, self.http_pool)
        except asyncio.CancelledError:
            raise
        except Exception:
            logs.log.exception("Function '%s' raised", info.name)
            return web.Response(status=500)
        return to_aiohttp(result)


def to_aiohttp(result: Any) -> web.Response:
    """func.HttpResponse (or a plain return value for `$return`) to an aiohttp response."""
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            charset = f"; charset={result.charset}" if result.charset else ""
            headers["Content-Type"] = f"{result.mimetype}{charset}"
        return web.Response(body=result.get_body(), status=result.status_code, headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, bytes):
        return web.Response(body=result)
    if isinstance(result, str):
        return web.Response(text=result, content_type="text/plain")
    return web.Response(text=json.dumps(result), content_type="application/json")

