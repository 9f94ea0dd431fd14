"""The local ARM endpoint: its state and its aiohttp application.

Boundary: holds the in-memory world (config.Config, the test doors' changes to it),
capture sessions (captures.Capture / ScaleSetCapture) and long-running operations
(operations.Operations); the routing table is routes.py, the answers are views/, the
LRO answer is lro.py, and the request log, auth, faults and latency are the middleware
shared with the email endpoint (localdev.middleware). Every route needs
``Authorization: Bearer <token from /msi/token>``; ARM routes need ``api-version``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from ..middleware import ServiceError, add_latency, authenticate, inject_faults, request_log
from .captures import Capture, ScaleSetCapture
from .config import Config
from .faults import Faults
from .identity import TokenIssuer
from .operations import Operations
from .routes import Router

log = logging.getLogger("localdev.arm")

Session = Capture | ScaleSetCapture


class ArmServer:
    def __init__(self, config: Config, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.tokens = TokenIssuer(config.identity_header)
        self.faults = Faults()
        self.ops = Operations()
        self.captures: dict[tuple[str, str, str], Session] = {}
        self.latency_ms = config.latency_ms
        self.permissions: dict[str, dict[str, Any]] = copy.deepcopy(config.permissions)
        self.storage_overrides: dict[str, dict[str, Any]] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[
            request_log(self.faults, log),
            authenticate(self._check_token),
            inject_faults(self.faults),
            add_latency(lambda: self.latency_ms / 1000),
        ])
        app.router.add_route("*", "/{tail:.*}", Router(self))
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _check_token(self, request: web.Request) -> ServiceError | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth:
            return ServiceError(401, "AuthenticationFailed",
                                "Authentication failed. The 'Authorization' header is missing.")
        if scheme.lower() != "bearer" or not self.tokens.valid(token.strip()):
            return ServiceError(401, "InvalidAuthenticationToken",
                                "The access token is invalid or has expired.")
        return None

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(c.shutdown() for c in self.captures.values()))
