"""Managed identity (App Service flavour) token endpoint, and the tokens it issued.

Boundary: ``GET /msi/token?api-version=2019-08-01&resource=...`` with header
``X-IDENTITY-HEADER`` on plain HTTP 127.0.0.1 (what azure-identity's
ManagedIdentityCredential calls when IDENTITY_ENDPOINT/IDENTITY_HEADER are set).
Tokens are opaque random strings; the ARM endpoint accepts only those we issued.
"""

from __future__ import annotations

import hmac
import secrets
import time

from aiohttp import web

TOKEN_LIFETIME = 24 * 3600  # App Service managed identity tokens last about a day


class TokenIssuer:
    def __init__(self, identity_header: str):
        self._header = identity_header
        self._tokens: dict[str, float] = {}

    def issue(self) -> tuple[str, int]:
        token = secrets.token_urlsafe(32)
        expires = int(time.time()) + TOKEN_LIFETIME
        self._tokens[token] = expires
        return token, expires

    def valid(self, token: str) -> bool:
        expires = self._tokens.get(token)
        return expires is not None and expires > time.time()

    def header_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self._header.encode())

    async def handle(self, request: web.Request) -> web.Response:
        presented = request.headers.get("X-IDENTITY-HEADER")
        if presented is None:
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "X-IDENTITY-HEADER is required."}},
                status=400,
            )
        if not self.header_ok(presented):
            return web.json_response(
                {"error": {"code": "Unauthorized", "message": "Invalid X-IDENTITY-HEADER."}},
                status=401,
            )
        if request.query.get("api-version") != "2019-08-01":
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "api-version 2019-08-01 required."}},
                status=400,
            )
        resource = request.query.get("resource")
        if not resource:
            return web.json_response(
                {"error": {"code": "BadRequest", "message": "resource is required."}}, status=400
            )
        token, expires = self.issue()
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": "00000000-0000-0000-0000-00000000a1e7",
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/msi/token", self.handle)
        return app
