"""The local ACS Email endpoint through azure-communication-email's EmailClient."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import email.utils
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from localdev.email.auth import content_hash, sign

from .conftest import REPO, stop_process, wait_for_file

MESSAGE = {
    "senderAddress": "alertcap@localdev.example",
    "recipients": {"to": [{"address": "oncall@example.com", "displayName": "On Call"}]},
    "content": {
        "subject": "Capture finished on vm1",
        "plainText": "1234 packets, top talker 10.0.0.4",
        "html": "<h1>Capture finished</h1><p>1234 packets</p>",
    },
}


@pytest.fixture(scope="module")
def mail(state_root: Path):
    state = state_root / f"email-{uuid.uuid4().hex[:6]}"
    state.mkdir()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "LOCALDEV_EMAIL_ACCESS_KEY": key}
    log = state / "email.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localdev.email", "--state-dir", str(state), "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        info = wait_for_file(state / "email.json", proc, log)
        yield {**info, "key": key, "state": state}
    finally:
        stop_process(proc)
    assert key not in log.read_text()


def _client(mail: dict, key: str | None = None):
    from azure.communication.email import EmailClient

    conn = f"endpoint={mail['endpoint']};accesskey={key or mail['key']}"
    return EmailClient.from_connection_string(conn, connection_verify=mail["certPath"])


class Signed:
    """Signs requests to the test routes the way the SDK signs its own."""

    def __init__(self, mail: dict) -> None:
        self.mail, self.key = mail, base64.b64decode(mail["key"])

    def __call__(self, method: str, path: str, body: bytes = b"") -> requests.Response:
        host = f"127.0.0.1:{self.mail['port']}"
        date = email.utils.formatdate(usegmt=True)
        h = content_hash(body)
        sig = sign(self.key, method, path, date, host, h)
        headers = {
            "x-ms-date": date,
            "x-ms-content-sha256": h,
            "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}",
            "Content-Type": "application/json",
        }
        return requests.request(
            method,
            f"https://{host}{path}",
            data=body,
            headers=headers,
            verify=self.mail["certPath"],
            timeout=5,
        )


@pytest.fixture
def signed(mail):
    s = Signed(mail)
    yield s
    s("DELETE", "/_localdev/faults")


def test_send_stores_json_and_eml(mail):
    result = _client(mail).begin_send(MESSAGE, polling_interval=0.1).result(10)
    assert result["status"] == "Succeeded"
    msg_id = result["id"]
    record = json.loads((mail["state"] / "inbox" / f"{msg_id}.json").read_text())
    assert record["sender"] == MESSAGE["senderAddress"]
    assert record["to"] == ["oncall@example.com"]
    assert record["subject"] == "Capture finished on vm1"
    assert record["plainText"].startswith("1234 packets")
    assert record["html"].startswith("<h1>")
    assert dt.datetime.fromisoformat(record["receivedAt"])
    eml = email.message_from_bytes(
        (mail["state"] / "inbox" / f"{msg_id}.eml").read_bytes(), policy=email.policy.default
    )
    assert eml["Subject"] == "Capture finished on vm1"
    assert "oncall@example.com" in eml["To"]
    assert eml.get_body(("html",)).get_content().startswith("<h1>")
    # The inbox pages show it.
    page = requests.get(f"{mail['endpoint']}inbox", verify=mail["certPath"], timeout=5)
    assert "Capture finished on vm1" in page.text and f"/inbox/{msg_id}" in page.text
    body = requests.get(f"{mail['endpoint']}inbox/{msg_id}", verify=mail["certPath"], timeout=5)
    assert body.text == MESSAGE["content"]["html"]


def test_inbox_is_newest_first(mail):
    for subject in ("first", "second"):
        msg = {**MESSAGE, "content": {"subject": subject, "plainText": "x"}}
        _client(mail).begin_send(msg, polling_interval=0.1).result(10)
    page = requests.get(f"{mail['endpoint']}inbox", verify=mail["certPath"], timeout=5).text
    assert page.index(">second<") < page.index(">first<")


def test_wrong_key_is_401(mail):
    wrong = base64.b64encode(secrets.token_bytes(32)).decode()
    with pytest.raises(ClientAuthenticationError) as err:
        _client(mail, wrong).begin_send(MESSAGE, polling_interval=0.1)
    assert err.value.status_code == 401


def test_tampered_body_and_stale_date_are_401(mail, signed):
    r = signed("POST", "/emails:send?api-version=2025-09-01", json.dumps(MESSAGE).encode())
    assert r.status_code == 202
    # Same signature headers, different body: the content hash no longer matches.
    headers = {k: v for k, v in r.request.headers.items() if k.lower() != "content-length"}
    r2 = requests.post(
        r.request.url, data=b'{"x": 1}', headers=headers, verify=mail["certPath"], timeout=5
    )
    assert r2.status_code == 401
    assert r2.json()["error"]["code"] == "Denied"
    key = base64.b64decode(mail["key"])
    host = f"127.0.0.1:{mail['port']}"
    old = email.utils.format_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), usegmt=True)
    body = json.dumps(MESSAGE).encode()
    path = "/emails:send?api-version=2025-09-01"
    sig = sign(key, "POST", path, old, host, content_hash(body))
    r3 = requests.post(
        f"https://{host}{path}",
        data=body,
        verify=mail["certPath"],
        timeout=5,
        headers={
            "x-ms-date": old,
            "x-ms-content-sha256": content_hash(body),
            "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={sig}",
        },
    )
    assert r3.status_code == 401


def test_same_operation_id_stores_one_message(mail):
    op_id = str(uuid.uuid4())
    client = _client(mail)
    first = client.begin_send(MESSAGE, operation_id=op_id, polling_interval=0.1).result(10)
    again = client.begin_send(MESSAGE, operation_id=op_id, polling_interval=0.1).result(10)
    assert first["id"] == again["id"] == op_id
    assert again["status"] == "Succeeded"
    stored = [
        p
        for p in (mail["state"] / "inbox").glob("*.json")
        if json.loads(p.read_text())["id"] == op_id
    ]
    assert len(stored) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"senderAddress": "not-an-address"}, "InvalidEmailAddress"),
        ({"recipients": {"to": []}}, "BadRequest"),
        ({"recipients": {"to": [{"address": "bad@"}]}}, "InvalidEmailAddress"),
        ({"content": {"subject": "no body"}}, "BadRequest"),
        ({"content": {"plainText": "no subject"}}, "BadRequest"),
    ],
)
def test_invalid_message_is_400(mail, change, code):
    with pytest.raises(HttpResponseError) as err:
        _client(mail).begin_send({**MESSAGE, **change}, polling_interval=0.1)
    assert err.value.status_code == 400
    assert err.value.error.code == code


def test_5xx_fault_then_retry_succeeds(mail, signed):
    rule = {
        "method": "POST",
        "pathContains": "/emails:send",
        "status": 503,
        "retryAfter": 0,
        "count": 1,
    }
    assert signed("POST", "/_localdev/faults", json.dumps(rule).encode()).status_code == 201
    op_id = str(uuid.uuid4())
    result = _client(mail).begin_send(MESSAGE, operation_id=op_id, polling_interval=0.1).result(10)
    assert result["status"] == "Succeeded"
    log = signed("GET", "/_localdev/requests").json()["requests"]
    assert [r["status"] for r in log if r["path"] == "/emails:send"][-2:] == [503, 202]


def test_5xx_fault_surfaces_without_retries(mail, signed):
    rule = {"pathContains": "/emails:send", "status": 500, "count": 1}
    signed("POST", "/_localdev/faults", json.dumps(rule).encode())
    with pytest.raises(HttpResponseError) as err:
        _client(mail).begin_send(MESSAGE, polling_interval=0.1, retry_total=0)
    assert err.value.status_code == 500


def test_failed_delivery_reports_failed(mail, signed):
    signed("POST", "/_localdev/faults", json.dumps({"kind": "sendFailed", "count": 1}).encode())
    with pytest.raises(HttpResponseError) as err:
        _client(mail).begin_send(MESSAGE, polling_interval=0.1).result(10)
    assert "EmailDroppedAllRecipientsSuppressed" in str(err.value)
