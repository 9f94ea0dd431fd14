"""The one way the local ARM answers a long-running operation, as ARM does.

``accepted`` starts the work in ``operations.Operations`` and answers 201 (create, with
the resource body) or 202 (the rest) with either ``Azure-AsyncOperation`` (PUT: the
poller reads ``{"status"}`` there, then GETs the resource) or ``Location`` (POST/DELETE:
202 until done, then the final status and body), always with ``Retry-After``, which
azure-core's pollers honour over their own polling_interval.

Boundary: headers and status codes; what the work does is the caller's.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .server import ArmServer

ASYNC_OPERATION = "Azure-AsyncOperation"
LOCATION = "Location"


def accepted(srv: ArmServer, request: web.Request, work: Awaitable[tuple[int, object]], *,
             namespace: str, location: str, header: str = LOCATION, status: int = 202,
             body: object = None) -> web.Response:
    op = srv.ops.start(work)
    kind = "operations" if header == ASYNC_OPERATION else "operationResults"
    url = (f"https://{request.host}/subscriptions/{srv.config.subscription}/providers/"
           f"{namespace}/locations/{location}/{kind}/{op.id}"
           f"?api-version={request.query.get('api-version', '')}")
    headers = {header: url, "Retry-After": str(srv.config.lro_retry_after)}
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(body, status=status, headers=headers)


async def done(status: int, body: object = None) -> tuple[int, object]:
    """Work that is already finished (an LRO that completes at once)."""
    return status, body
