"""ACS HMAC-SHA256 request authentication, checked the way the service checks it.

The client signs ``VERB\\n<path and query>\\n<x-ms-date>;<host>;<x-ms-content-sha256>``
with the base64-decoded access key and sends ``Authorization: HMAC-SHA256
SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<base64>``. We recompute it,
check the content hash against the body and refuse dates too far from now.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
from collections.abc import Mapping

MAX_SKEW = dt.timedelta(minutes=15)
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"


class AuthError(Exception):
    pass


def content_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def sign(key: bytes, verb: str, path_and_query: str, date: str, host: str, body_hash: str) -> str:
    to_sign = f"{verb.upper()}\n{path_and_query}\n{date};{host};{body_hash}"
    return base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()


def verify(
    key: bytes,
    *,
    method: str,
    path_and_query: str,
    host: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime | None = None,
) -> None:
    """Raise AuthError unless the request carries a valid, fresh signature."""
    get = headers.get
    auth = get("Authorization") or ""
    date = get("x-ms-date") or ""
    claimed_hash = get("x-ms-content-sha256") or ""
    scheme, _, params = auth.partition(" ")
    if scheme != "HMAC-SHA256":
        raise AuthError("missing HMAC-SHA256 authorization")
    fields = dict(p.split("=", 1) for p in params.split("&") if "=" in p)
    if fields.get("SignedHeaders", "").lower() != SIGNED_HEADERS:
        raise AuthError("unexpected SignedHeaders")
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise AuthError("bad x-ms-date") from None
    now = now or dt.datetime.now(dt.UTC)
    if when.tzinfo is None or abs(now - when) > MAX_SKEW:
        raise AuthError("stale x-ms-date")
    if not hmac.compare_digest(claimed_hash, content_hash(body)):
        raise AuthError("x-ms-content-sha256 does not match the body")
    expected = sign(key, method, path_and_query, date, host, claimed_hash)
    if not hmac.compare_digest(fields.get("Signature", ""), expected):
        raise AuthError("signature mismatch")
