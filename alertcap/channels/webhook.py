"""Generic webhook: the run's JSON result, signed so a receiver can trust it and refuse replays.

Boundary: builds the exact body bytes and headers of the POST, and verifies them on the
receiving side; no I/O and no clock (the caller passes the time).

The scheme (the way Stripe signs, with GitHub's hex HMAC-SHA256):

``Alertcap-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]``
    ``hex`` is HMAC-SHA256, keyed with the shared secret (its UTF-8 bytes), over
    ``<t>.<body>``: the timestamp's decimal digits, one ``.``, then the raw body bytes
    exactly as received (do not re-serialise the JSON). While a secret is being rotated
    the sender signs with each secret, one ``v1`` per secret; any one matching is enough.
``Alertcap-Event-Id: <id>``
    The same for every delivery of the same run result (retries included): the receiver's
    idempotency key.
``Content-Type: application/json``

A receiver: (1) parses the header; (2) rejects when ``|now - t|`` exceeds its tolerance
(300 s here), which bounds how long a captured request stays replayable; (3) computes the
HMAC for each of its secrets and compares in constant time; (4) remembers the event id (or
the signature) for at least the tolerance window and ignores a second delivery. ``verify``
does steps 1 to 3.

Body: ``{"type": "alertcap.run.finished", "id": <event id>, "run": <alertcap.run/1>,
"links": {"run_page", "capture"}}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alertcap.channels.common import Links

SIGNATURE_HEADER = "Alertcap-Signature"
EVENT_ID_HEADER = "Alertcap-Event-Id"
EVENT_TYPE = "alertcap.run.finished"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The request is not one we signed recently; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WebhookRequest:
    body: bytes
    headers: dict[str, str]


def _secrets(secrets: str | Sequence[str]) -> list[bytes]:
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    if not items or any(not s for s in items):
        raise ValueError("a webhook secret must be a non-empty string")
    return [s.encode() for s in items]


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def event_id(run: dict[str, Any]) -> str:
    """One id per run result: instance id and finish time (a rewound run is a new result)."""
    basis = f"{run.get('instance_id')}|{run.get('finished_at')}|{run.get('outcome')}"
    return "evt_" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def render(run: dict[str, Any], links: Links, *, secrets: str | Sequence[str],
           timestamp: int) -> WebhookRequest:
    """Body bytes and headers for one delivery at ``timestamp`` (unix seconds, send time)."""
    keys = _secrets(secrets)
    eid = event_id(run)
    body = json.dumps(
        {"type": EVENT_TYPE, "id": eid, "run": run,
         "links": {"run_page": links.run_page, "capture": links.capture}},
        separators=(",", ":"), sort_keys=True, ensure_ascii=False,
    ).encode()
    signature = ",".join([f"t={int(timestamp)}", *(f"v1={sign(body, k, int(timestamp))}"
                                                   for k in keys)])
    return WebhookRequest(body=body, headers={
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature,
        EVENT_ID_HEADER: eid,
    })


def verify(body: bytes, header: str | None, secrets: str | Sequence[str], *, now: float,
           tolerance: int = TOLERANCE_SECONDS) -> int:
    """Check a delivery; returns its timestamp or raises ``SignatureError``."""
    keys = _secrets(secrets)
    if not header:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            if not value.isdigit():
                raise SignatureError("timestamp is not a number of seconds")
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None:
        raise SignatureError("no timestamp (t=) in the signature header")
    if not candidates:
        raise SignatureError("no v1 signature in the signature header")
    if abs(now - timestamp) > tolerance:
        raise SignatureError(f"timestamp outside the {tolerance} s tolerance (replay?)")
    expected = [sign(body, k, timestamp) for k in keys]
    # Every comparison runs: stopping at the first match would leak which secret matched.
    matched = False
    for got in candidates:
        for want in expected:
            matched |= hmac.compare_digest(got, want)
    if not matched:
        raise SignatureError("signature does not match")
    return timestamp
