"""Hostile input at the HTTP routes: whatever arrives, the answer is JSON, never a 5xx,
and nothing is started unless the request was valid."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starters.http import Starter
from tests.app.test_starters import VM1, FakeClient, body, call, post
from tests.app.test_starters import settings as app_settings

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=30,
)

hostile_text = st.sampled_from([
    "../../etc/passwd", "/subscriptions/../../x", "'; DROP TABLE captures; --",
    "$(rm -rf /)", "`id`", "<script>alert(1)</script>", "\u202e\u0000\ud7ff", "%2e%2e%2f",
    "A" * 5000, "vm1\nX-Injected: 1", "{{7*7}}", "\\\\server\\share",
]) | st.text(max_size=80)

SETTINGS = app_settings(ALERTCAP_MAX_BODY_BYTES="65536")
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def check(resp: Any, client: FakeClient) -> None:
    assert resp.status_code in (200, 202, 400, 404, 409, 422), resp.status_code
    parsed = body(resp)
    if resp.status_code >= 400:
        assert set(parsed["error"]) >= {"code", "message"}
        assert client.started == []


@FAST
@given(json_values)
def test_any_json_at_the_webhook(value: Any) -> None:
    client = FakeClient()
    check(call(Starter(client, SETTINGS).alert(post(json.dumps(value)))), client)


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_at_the_webhook(raw: bytes) -> None:
    client = FakeClient()
    check(call(Starter(client, SETTINGS).alert(post(raw))), client)


@FAST
@given(st.lists(hostile_text | json_values, max_size=4), st.sampled_from(
    ["Fired", "Resolved", "fired", "Activated", None, 3]))
def test_hostile_targets_in_a_common_alert(targets: list[Any], condition: Any) -> None:
    client = FakeClient()
    payload = {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "monitorCondition": condition, "alertTargetIDs": targets, "alertRule": targets[:1]}}}
    resp = call(Starter(client, SETTINGS).alert(post(payload)))
    check(resp, client)
    for _, _, run_input in client.started:  # anything started names a well-formed VM id
        assert run_input["request"]["vm_id"].startswith("/subscriptions/")
        assert ".." not in run_input["request"]["vm_id"]


@FAST
@given(st.dictionaries(st.sampled_from(["vmId", "location", "capture", "reason", "x"]),
                       hostile_text | json_values, max_size=4),
       st.dictionaries(st.sampled_from(["timeLimitInSeconds", "bytesToCapturePerPacket",
                                        "totalBytesPerSession", "localFilePath", "filters",
                                        "toStorage"]), hostile_text | json_values, max_size=4))
def test_hostile_manual_starts(fields: dict[str, Any], capture: dict[str, Any]) -> None:
    client = FakeClient()
    payload = {"vmId": VM1, **fields}
    if "capture" not in fields:
        payload["capture"] = capture
    check(call(Starter(client, SETTINGS).manual(post(payload, "captures"))), client)


def test_deep_nesting_is_a_400_not_a_crash() -> None:
    client = FakeClient()
    deep = "[" * 30000 + "]" * 30000  # under the size limit: the parser's depth is the test
    resp = call(Starter(client, SETTINGS).alert(post(deep)))
    assert resp.status_code == 400 and client.started == []
    assert body(resp)["error"]["code"] == "MalformedJson"
