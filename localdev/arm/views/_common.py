"""Helpers the views share: JSON bodies, typed properties, lookups."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import bad_request

if TYPE_CHECKING:
    from ..config import Vm
    from ..server import ArmServer


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("InvalidRequestContent",
                          "The request content is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestContent", "The request content must be an object.")
    return body


def find_vm(srv: ArmServer, ref: str, code: str = "InvalidFaultRule") -> Vm:
    """A VM, or a scale set's agent record, by name or id (for the test doors)."""
    for vm in srv.config.vms:
        if ref.lower() in (vm.name.lower(), vm.id.lower()):
            return vm
    for vmss in srv.config.scale_sets:
        if ref.lower() in (vmss.name.lower(), vmss.id.lower()):
            return vmss.agent
    raise bad_request(code, f"Unknown VM or scale set '{ref}'.")
