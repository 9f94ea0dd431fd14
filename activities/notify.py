"""Send the notification email through Azure Communication Services.

The send is idempotent per attempt key: the ACS operation id is derived from it, so an
activity re-run after a crash (at-least-once) asks the service for the same operation
instead of sending a second email.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from activities.spec import activity
from alertcap.domain import email
from alertcap.domain.run import Notification, RunResult
from alertcap.domain.wire import Model
from alertcap.errors import NotificationFailed
from alertcap.sdk.clients import Clients
from alertcap.sdk.errors import from_azure

_NAMESPACE = uuid.UUID("6f1c1f50-8f0c-4a43-9d5e-3c0d2b7a9e11")


def operation_id_for(key: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, key))


@dataclass(frozen=True)
class NotifyInput(Model):
    run: RunResult  # the result so far, as the orchestration will output it
    idempotency_key: str


@activity("notify")
def send(clients: Clients, inp: NotifyInput) -> Notification:
    s = clients.settings
    if not s.email_recipients or not s.email_sender:
        return Notification(message_id="", recipients=(),
                            status="skipped: ALERTCAP_EMAIL_SENDER or _RECIPIENTS not set")
    rendered = email.render(inp.run)
    message: dict[str, Any] = {
        "senderAddress": s.email_sender,
        "recipients": {"to": [{"address": r} for r in s.email_recipients]},
        "content": {"subject": rendered.subject, "plainText": rendered.text,
                    "html": rendered.html},
        "headers": {"x-alertcap-instance": inp.run.instance_id},
    }
    if rendered.inline:
        # Inline attachments: the HTML shows them by content id (cid:), as mail clients do.
        message["attachments"] = [
            {"name": i.name, "contentType": i.content_type, "contentId": i.content_id,
             "contentInBase64": base64.b64encode(i.data).decode()} for i in rendered.inline]
    operation_id = operation_id_for(inp.idempotency_key)
    try:
        poller = clients.email().begin_send(message, operation_id=operation_id,
                                            polling_interval=s.lro_polling_seconds)
        result = poller.result()
    except Exception as exc:
        raise from_azure(exc, "send the notification email") from exc
    status = str(result.get("status", "Unknown")) if isinstance(result, dict) else "Unknown"
    if status.lower() != "succeeded":
        # The operation is over and failed: asking again with this id would only return it.
        error = result.get("error") if isinstance(result, dict) else None
        detail = f": {error.get('message')}" if isinstance(error, dict) else ""
        raise NotificationFailed(f"the email service ended the send as {status}{detail}")
    return Notification(message_id=str(result.get("id", operation_id)),
                        recipients=s.email_recipients, status=status)
