"""Microsoft.Authorization view: ``GET {scope}/providers/Microsoft.Authorization/
permissions`` as ARM answers it: ``{"value": [{"actions", "notActions", "dataActions",
"notDataActions"}]}``, one entry per grant that applies at the scope (granted there or on
a parent scope: a subscription grant shows up for its resource groups and resources).
The grants are seeded per scope by the config; a test door removes actions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from ..server import ArmServer

FIELDS = ("actions", "notActions", "dataActions", "notDataActions")


def _applies(grant_scope: str, scope: str) -> bool:
    g, s = grant_scope.rstrip("/").lower(), scope.rstrip("/").lower()
    return s == g or s.startswith(g + "/")


def permissions_for(srv: ArmServer, scope: str) -> list[dict[str, Any]]:
    return [{f: list(grant.get(f, [])) for f in FIELDS}
            for grant_scope, grant in srv.permissions.items() if _applies(grant_scope, scope)]


async def list_permissions(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response({"value": permissions_for(srv, p["scope"])})
