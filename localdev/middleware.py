"""aiohttp middleware shared by the local ARM and email endpoints: the request log (and
the error JSON every failure becomes), authentication, injected faults and latency.

Each factory takes what differs between the two services (how to authenticate, which
paths are test doors, where the fault rules live) and returns a middleware; the order is
``[request_log, auth, faults, latency]`` so that even a refused or faulted request is
logged and recorded.

Boundary: cross-cutting HTTP concerns only; no routes, no service state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

DEFAULT_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class ServiceError(Exception):
    """An error answer: ``{"error": {"code", "message"}}`` with a status and headers."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


class FaultLog(Protocol):
    def record(self, method: str, path: str, status: int,
               started: float | None = None) -> None: ...

    def match_http(self, method: str, path: str) -> dict[str, Any] | None: ...


def _skipped(request: web.Request, prefixes: tuple[str, ...]) -> bool:
    return bool(prefixes) and request.path.startswith(prefixes)


def request_log(faults: FaultLog, log: logging.Logger,
                unrecorded: tuple[str, ...] = ("/_localdev/",)) -> Middleware:
    """Turn ServiceError / HTTPException into error JSON, record the request in the
    fault log (not the test doors), and log method, path and status only: never the query
    string or headers, which may carry keys."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.time()  # with the end time: calls in flight at once (bench/)
        try:
            response = await handler(request)
        except ServiceError as err:
            response = err.response()
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason.replace(" ", ""), exc.reason)
        if not _skipped(request, unrecorded):
            faults.record(request.method, request.path, response.status, started)
        log.info("%s %s -> %s", request.method, request.path, response.status)
        return response

    return middleware


def authenticate(check: Callable[[web.Request], Awaitable[ServiceError | None]],
                 open_paths: tuple[str, ...] = ()) -> Middleware:
    """Refuse a request that CHECK finds fault with (it returns the error to answer)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _skipped(request, open_paths):
            error = await check(request)
            if error is not None:
                raise error
        return await handler(request)

    return middleware


def inject_faults(faults: FaultLog, exempt: tuple[str, ...] = ("/_localdev/",)) -> Middleware:
    """Answer a request matching an ``http`` fault rule with that status and error JSON."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _skipped(request, exempt):
            rule = faults.match_http(request.method, request.path)
            if rule is not None:
                status = int(rule["status"])
                headers = {"Retry-After": str(rule["retryAfter"])} if "retryAfter" in rule else {}
                code = rule.get("code") or DEFAULT_CODES.get(status, "InjectedFault")
                raise ServiceError(status, str(code), f"Injected fault ({status}).", headers)
        return await handler(request)

    return middleware


def add_latency(seconds: Callable[[], float],
                exempt: tuple[str, ...] = ("/_localdev/",)) -> Middleware:
    """Delay every service call by SECONDS() (read per call: a door can change it), so a
    benchmark sees Azure-like round trips instead of loopback ones."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        delay = seconds()
        if delay > 0 and not _skipped(request, exempt):
            await asyncio.sleep(delay)
        return await handler(request)

    return middleware
