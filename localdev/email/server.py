"""HTTP routes of the local ACS Email endpoint.

Boundary: what azure-communication-email's EmailClient calls -- ``POST /emails:send``
(HMAC-signed; 202 + ``Operation-Location`` + ``{"id", "status"}``) and ``GET
/emails/operations/{id}`` (``{"id", "status": Running|Succeeded|Failed, "error"?}``) --
plus a browsable inbox (``GET /inbox``, ``GET /inbox/{id}``, unauthenticated, local
only) and signed test routes under ``/_localdev/`` (faults, see localdev.arm.faults:
``http`` rules, and ``{"kind": "sendFailed", "count": 1}`` for an operation that ends
Failed). The same ``Operation-Id`` never stores a second message.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import html
import json
import logging
import re
import uuid
from dataclasses import dataclass

from aiohttp import web

from ..arm.faults import Faults
from ..middleware import ServiceError, authenticate, error_response, inject_faults, request_log
from .auth import AuthError, verify
from .store import Inbox

log = logging.getLogger("localdev.email")

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_RECIPIENTS = 50
# ACS Email's service limits: the whole message (attachments base64-encoded) at most 10 MB.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
CID_RE = re.compile(r"^[A-Za-z0-9._@-]{1,128}$")
DELIVERY_DELAY = 0.2  # seconds a message stays Running, so pollers really poll


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return error_response(status, code, message, headers)


class BadMessage(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def validate(message: object) -> dict:
    """Check a send request body like the service does (400 on failure)."""
    if not isinstance(message, dict):
        raise BadMessage("BadRequest", "The request body must be a JSON object.")
    sender = message.get("senderAddress")
    if not isinstance(sender, str) or not sender:
        raise BadMessage("BadRequest", "senderAddress is required.")
    if not EMAIL_RE.match(sender):
        raise BadMessage("InvalidEmailAddress", f"Invalid sender address '{sender}'.")
    content = message.get("content")
    if not isinstance(content, dict) or not content.get("subject"):
        raise BadMessage("BadRequest", "content.subject is required.")
    if not (content.get("plainText") or content.get("html")):
        raise BadMessage("BadRequest", "content needs plainText or html.")
    rcpt = message.get("recipients")
    if not isinstance(rcpt, dict) or not rcpt.get("to"):
        raise BadMessage("BadRequest", "recipients.to needs at least one recipient.")
    total = 0
    for kind in ("to", "cc", "bcc"):
        items = rcpt.get(kind) or []
        if not isinstance(items, list):
            raise BadMessage("BadRequest", f"recipients.{kind} must be an array.")
        for item in items:
            address = item.get("address") if isinstance(item, dict) else None
            if not isinstance(address, str) or not EMAIL_RE.match(address):
                raise BadMessage("InvalidEmailAddress", f"Invalid recipient address '{address}'.")
        total += len(items)
    if total > MAX_RECIPIENTS:
        raise BadMessage("BadRequest", f"At most {MAX_RECIPIENTS} recipients are allowed.")
    _validate_attachments(message.get("attachments"), content.get("html") or "")
    if len(json.dumps(message)) > MAX_MESSAGE_BYTES:
        raise BadMessage("EmailSizeLimitExceeded", "The email exceeds the 10 MB size limit.")
    return message


def _validate_attachments(items: object, body_html: str) -> None:
    """EmailAttachment: name, contentType, contentInBase64 required; contentId (inline)
    must be unique and is what the HTML refers to as cid:<contentId>."""
    if items is None:
        return
    if not isinstance(items, list):
        raise BadMessage("BadRequest", "attachments must be an array.")
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise BadMessage("BadRequest", f"attachments[{i}] must be an object.")
        for field in ("name", "contentType", "contentInBase64"):
            if not isinstance(item.get(field), str) or not item[field]:
                raise BadMessage("BadRequest", f"attachments[{i}].{field} is required.")
        try:
            base64.b64decode(item["contentInBase64"], validate=True)
        except (ValueError, binascii.Error):
            raise BadMessage("BadRequest",
                             f"attachments[{i}].contentInBase64 is not base64.") from None
        cid = item.get("contentId")
        if cid is not None:
            if not isinstance(cid, str) or not CID_RE.match(cid) or cid in seen:
                raise BadMessage("BadRequest", f"attachments[{i}].contentId is invalid or "
                                 "not unique.")
            seen.add(cid)


@dataclass
class SendOperation:
    id: str
    status: str = "Running"
    error: dict | None = None

    def body(self) -> dict:
        out: dict = {"id": self.id, "status": self.status}
        if self.error:
            out["error"] = self.error
        return out


class EmailServer:
    def __init__(self, access_key: bytes, inbox: Inbox, retry_after: int = 0) -> None:
        self.key = access_key
        self.inbox = inbox
        self.retry_after = retry_after
        self.faults = Faults(kinds=frozenset({"http", "sendFailed"}))
        self.ops: dict[str, SendOperation] = {}
        self._tasks: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[
            request_log(self.faults, log),
            authenticate(self._check_signature, open_paths=("/inbox",)),
            inject_faults(self.faults, exempt=("/_localdev/", "/inbox")),
        ])
        app.router.add_post("/emails:send", self.send)
        app.router.add_get("/emails/operations/{op_id}", self.operation)
        app.router.add_get("/inbox", self.inbox_page)
        app.router.add_get("/inbox/{msg_id}", self.message_page)
        app.router.add_get("/inbox/{msg_id}/cid/{cid}", self.inline_part)
        app.router.add_route("*", "/_localdev/faults", self.faults_route)
        app.router.add_get("/_localdev/requests", self.requests_route)
        return app

    # ---- authentication (the shared middleware calls it) --------------------------------
    async def _check_signature(self, request: web.Request) -> ServiceError | None:
        body = await request.read()
        try:
            verify(
                self.key,
                method=request.method,
                path_and_query=request.raw_path,
                host=request.host,
                headers=request.headers,
                body=body,
            )
        except AuthError as exc:
            log.info("auth refused: %s", exc)
            return ServiceError(401, "Denied", "Denied by the resource provider.")
        return None

    # ---- ACS Email API -------------------------------------------------------------------
    def _operation_location(self, request: web.Request, op_id: str) -> str:
        api = request.query.get("api-version", "")
        return f"https://{request.host}/emails/operations/{op_id}?api-version={api}"

    def _accepted(self, request: web.Request, op: SendOperation) -> web.Response:
        headers = {"Operation-Location": self._operation_location(request, op.id)}
        if self.retry_after:
            headers["Retry-After"] = str(self.retry_after)
        return web.json_response(op.body(), status=202, headers=headers)

    async def send(self, request: web.Request) -> web.Response:
        if "api-version" not in request.query:
            return _error(
                400, "MissingApiVersionParameter", "The api-version query parameter is required."
            )
        op_id = request.headers.get("Operation-Id") or str(uuid.uuid4())
        if not ID_RE.match(op_id):
            return _error(400, "BadRequest", "Operation-Id has an invalid format.")
        existing = self.ops.get(op_id)
        if existing is not None or self.inbox.has(op_id):
            # Idempotent resend: same operation, no second message.
            return self._accepted(request, existing or SendOperation(op_id, "Succeeded"))
        try:
            message = validate(json.loads(await request.read()))
        except (ValueError, UnicodeDecodeError) as exc:
            code = exc.code if isinstance(exc, BadMessage) else "BadRequest"
            return _error(400, code, str(exc) if isinstance(exc, BadMessage) else "Invalid JSON.")
        op = SendOperation(op_id)
        self.ops[op_id] = op
        failure = self.faults.take("sendFailed")
        task = asyncio.get_running_loop().create_task(self._deliver(op, message, failure))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._accepted(request, op)

    async def _deliver(self, op: SendOperation, message: dict, failure: dict | None) -> None:
        await asyncio.sleep(DELIVERY_DELAY)
        if failure is not None:
            op.status = "Failed"
            op.error = {
                "code": failure.get("code", "EmailDroppedAllRecipientsSuppressed"),
                "message": "Message delivery failed (injected).",
            }
            return
        try:
            await asyncio.to_thread(self.inbox.store, op.id, message)
        except OSError as exc:
            op.status, op.error = "Failed", {"code": "InternalError", "message": str(exc)}
            return
        op.status = "Succeeded"

    async def operation(self, request: web.Request) -> web.Response:
        op_id = request.match_info["op_id"]
        op = self.ops.get(op_id)
        if op is None and ID_RE.match(op_id) and self.inbox.has(op_id):
            op = SendOperation(op_id, "Succeeded")  # stored before a restart
        if op is None:
            return _error(404, "NotFound", f"Operation '{op_id}' was not found.")
        headers = {}
        if op.status == "Running" and self.retry_after:
            headers["Retry-After"] = str(self.retry_after)
        return web.json_response(op.body(), headers=headers)

    # ---- inbox pages -----------------------------------------------------------------
    async def inbox_page(self, _request: web.Request) -> web.Response:
        rows = "".join(
            f"<tr><td>{html.escape(r['receivedAt'])}</td><td>{html.escape(r['sender'])}</td>"
            f"<td>{html.escape(', '.join(r['to']))}</td>"
            f'<td><a href="/inbox/{html.escape(r["id"])}">{html.escape(r["subject"])}</a></td></tr>'
            for r in self.inbox.newest_first()
        )
        page = (
            '<!doctype html><html><head><meta charset="utf-8"><title>Local inbox</title></head>'
            "<body><h1>Local inbox</h1><table><thead><tr><th>Received</th><th>From</th>"
            f"<th>To</th><th>Subject</th></tr></thead><tbody>{rows}</tbody></table></body></html>"
        )
        return web.Response(text=page, content_type="text/html")

    async def message_page(self, request: web.Request) -> web.Response:
        msg_id = request.match_info["msg_id"]
        record = self.inbox.get(msg_id) if ID_RE.match(msg_id) else None
        if record is None:
            return _error(404, "NotFound", f"No message '{msg_id}'.")
        body = record.get("html") or f"<pre>{html.escape(record.get('plainText') or '')}</pre>"
        # As webmail does: cid: references become URLs of the message's inline parts.
        body = re.sub(r'src="cid:([A-Za-z0-9._@-]{1,128})"',
                      lambda m: f'src="/inbox/{msg_id}/cid/{m[1]}"', body)
        return web.Response(text=body, content_type="text/html")

    async def inline_part(self, request: web.Request) -> web.Response:
        msg_id, cid = request.match_info["msg_id"], request.match_info["cid"]
        part = self.inbox.inline(msg_id, cid) if ID_RE.match(msg_id) and CID_RE.match(cid) \
            else None
        if part is None:
            return _error(404, "NotFound", f"No inline part '{cid}'.")
        content_type, data = part
        return web.Response(body=data, content_type=content_type)

    # ---- test routes ---------------------------------------------------------------------
    async def faults_route(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"rules": self.faults.describe()})
        if request.method == "DELETE":
            self.faults.clear()
            return web.Response(status=204)
        if request.method == "POST":
            try:
                rule = self.faults.add(json.loads(await request.read()))
            except (ValueError, TypeError) as exc:
                return _error(400, "InvalidFaultRule", str(exc))
            return web.json_response(rule.spec, status=201)
        return _error(405, "MethodNotAllowed", "GET, POST or DELETE.")

    async def requests_route(self, _request: web.Request) -> web.Response:
        return web.json_response({"requests": list(self.faults.log)})
