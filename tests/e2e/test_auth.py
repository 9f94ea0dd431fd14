"""Issue 4: who may start, see and control captures. The webhook needs the function key,
the Durable management API the system key; a refused or malformed request starts
nothing and says why in JSON.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

import pytest

from localdev.cli import demo_alert

from .stack import SUBSCRIPTION, Stack, http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def _exclusive(exclusive_stack: Stack) -> None:
    """This module starts runs: no background scenario's fault may meet them."""

# A VM no other test touches: any instance for it would have been started by these tests.
PROBE_VM = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/demo-rg/providers/"
            "Microsoft.Compute/virtualMachines/vmauthprobe")


def _probe_instances(stack: Stack) -> list[str]:
    return [i["instanceId"] for i in stack.instances() if "vmauthprobe" in i["instanceId"]]


@pytest.mark.parametrize("code", [None, "", "not-the-key"], ids=["no-code", "empty", "wrong"])
def test_the_webhook_refuses_a_missing_or_wrong_key(stack: Stack, code: str | None) -> None:
    r = stack.post_alert(demo_alert(PROBE_VM, datetime.now(UTC)), code=code)
    assert r.status == 401, (r.status, r.body)
    r = stack.start_capture(PROBE_VM, seconds=4, code=code)
    assert r.status == 401, (r.status, r.body)
    assert _probe_instances(stack) == []


def test_a_malformed_alert_is_a_400_json_error_and_starts_nothing(stack: Stack) -> None:
    url = f"{stack.base}/api/alerts?code={urllib.parse.quote(stack.function_key)}"
    r = http("POST", url, raw=b'{"schemaId": "azureMonitorCommonAlertSchema", "data": ')
    assert r.status == 400, (r.status, r.body)
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.body["error"]["code"] == "MalformedJson"
    assert r.body["error"]["message"]
    assert _probe_instances(stack) == []


def test_the_management_api_needs_the_system_key(stack: Stack) -> None:
    base = f"{stack.base}/runtime/webhooks/durabletask/instances"
    assert http("GET", base).status == 401
    assert http("GET", f"{base}?code=not-the-key").status == 401
    assert http("GET", f"{base}?code={urllib.parse.quote(stack.function_key)}").status == 401
    r = http("GET", f"{base}?code={urllib.parse.quote(stack.system_key)}")
    assert r.status == 200 and isinstance(r.body, list)


def test_status_urls_without_their_key_are_refused(stack: Stack) -> None:
    r = stack.start_capture(stack.vm("vm2"), seconds=4, code="wrong")  # refused: no run
    assert r.status == 401
    instance = f"{stack.base}/runtime/webhooks/durabletask/instances/alertcap-vm2-x"
    assert http("GET", instance).status == 401
    assert http("POST", f"{instance}/terminate?reason=x").status == 401
