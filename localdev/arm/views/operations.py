"""``.../locations/{loc}/operations/{id}`` and ``.../operationResults/{id}``: what the SDK's
pollers read after an LRO answer (see localdev.arm.lro)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import ArmError, error_response
from ..operations import Operation

if TYPE_CHECKING:
    from ..server import ArmServer


def _op(srv: ArmServer, op_id: str) -> Operation:
    op = srv.ops.get(op_id)
    if op is None:
        raise ArmError(404, "OperationNotFound", f"Operation '{op_id}' was not found.")
    return op


async def status(srv: ArmServer, _request: web.Request, p: dict[str, str]) -> web.Response:
    op = _op(srv, p["op"])
    body: dict = {"name": op.id, "status": op.status}
    if op.error:
        body["error"] = op.error
    return web.json_response(body)


async def result(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    op = _op(srv, p["op"])
    if not op.done.is_set():
        headers = {"Location": str(request.url), "Retry-After": str(srv.config.lro_retry_after)}
        return web.Response(status=202, headers=headers)
    if op.error:
        return error_response(500 if op.error["code"] == "InternalServerError" else 400,
                              op.error["code"], op.error["message"])
    if op.final_body is None:
        return web.Response(status=op.final_status)
    return web.json_response(op.final_body, status=op.final_status)
