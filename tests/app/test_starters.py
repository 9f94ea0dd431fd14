"""The HTTP routes over a scripted Durable client: what a caller of the webhook sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from alertcap import names
from alertcap.naming import VmRef, instance_id_for
from alertcap.settings import Settings
from starters.http import Starter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alerts"
BASE = "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/"
VM1 = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/vm1"


class Status:
    def __init__(self, runtime_status: str | None) -> None:
        self.runtime_status = runtime_status


class FakeClient:
    """The DurableOrchestrationClient calls the starter makes, with a live-instance table."""

    def __init__(self) -> None:
        self.instances: dict[str, str] = {}
        self.started: list[tuple[str, str, Any]] = []
        self.events: list[tuple[str, str, Any]] = []
        self.refuse_next_start = False

    def get_client_response_links(self, req: Any, instance_id: str) -> dict[str, str]:
        q = "?taskHub=alertcap&connection=Storage&code=SYSTEMKEY"
        return {"id": instance_id, "statusQueryGetUri": BASE + instance_id + q,
                "sendEventPostUri": BASE + instance_id + "/raiseEvent/{eventName}" + q,
                "terminatePostUri": BASE + instance_id + "/terminate?reason={text}&" + q[1:],
                "rewindPostUri": BASE + instance_id + "/rewind?reason={text}&" + q[1:],
                "purgeHistoryDeleteUri": BASE + instance_id + q}

    async def get_status(self, instance_id: str) -> Status:
        return Status(self.instances.get(instance_id))

    async def start_new(self, name: str, instance_id: str, client_input: Any) -> str:
        if self.refuse_next_start:  # another delivery of the alert won the race
            self.refuse_next_start = False
            self.instances[instance_id] = "Running"
            raise Exception("An instance with ID already exists")
        self.started.append((name, instance_id, client_input))
        self.instances[instance_id] = "Pending"
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.events.append((instance_id, name, data))


def settings(**env: str) -> Settings:
    return Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": "/subscriptions/x/sa", **env})


def post(body: bytes | str | dict[str, Any], route: str = "alerts") -> func.HttpRequest:
    data = body if isinstance(body, bytes) else (
        body.encode() if isinstance(body, str) else json.dumps(body).encode())
    return func.HttpRequest("POST", f"http://127.0.0.1:7071/api/{route}", body=data,
                            headers={"content-type": "application/json"})


def call(coro: Any) -> func.HttpResponse:
    from starters.http import _handle

    async def go() -> func.HttpResponse:
        return await _handle("test", lambda: coro)

    return asyncio.run(go())


def body(resp: func.HttpResponse) -> Any:
    return json.loads(resp.get_body())


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def test_alert_starts_one_run_and_answers_with_status_urls() -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp.status_code == 202
    b = body(resp)
    for key in ("statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "rewindPostUri",
                "purgeHistoryDeleteUri"):
        assert key in b
    assert resp.headers["Location"] == b["statusQueryGetUri"]
    assert len(client.started) == 1
    name, instance_id, run_input = client.started[0]
    assert name == names.ORCHESTRATOR
    assert instance_id == b["id"] == b["instances"][0]["id"]
    request = run_input["request"]
    assert request["vm_id"].lower().endswith("/virtualmachines/vm1")
    assert request["alert"]["alert_rule"] == "vm1-network-out-high"
    assert request["policy"]["storage_account_id"] == "/subscriptions/x/sa"
    # The status URL kept in the run (and so in its output and email) carries no key.
    assert "code=" not in request["status_url"] and "taskHub=alertcap" in request["status_url"]


def test_multi_target_alert_starts_one_run_per_vm() -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-multi-target.json"))))
    assert resp.status_code == 202
    assert len(client.started) == 3 == len(body(resp)["instances"])
    assert len({i for _, i, _ in client.started}) == 3


def test_duplicate_alert_while_running_starts_nothing_and_returns_the_run() -> None:
    client = FakeClient()
    starter = Starter(client, settings())
    first = call(starter.alert(post(fixture("common-metric-fired.json"))))
    client.instances[body(first)["id"]] = "Running"
    again = call(starter.alert(post(fixture("common-metric-mixed-case.json"))))
    other_vm = body(again)["id"] != body(first)["id"]
    assert other_vm  # web-01, not vm1: a different run
    dup = call(starter.alert(post(fixture("common-metric-fired.json"))))
    assert dup.status_code == 200
    assert body(dup)["id"] == body(first)["id"]
    assert body(dup)["instances"][0]["state"] == "running"
    assert len(client.started) == 2


def test_race_lost_to_a_concurrent_delivery_returns_the_running_run() -> None:
    client = FakeClient()
    client.refuse_next_start = True
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp.status_code == 200
    assert body(resp)["instances"][0]["state"] == "running"
    assert client.started == []


def test_finished_run_may_be_replaced() -> None:
    client = FakeClient()
    vm = VmRef.parse(VM1)
    client.instances[instance_id_for(vm)] = "Completed"
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp.status_code == 202 and len(client.started) == 1


@pytest.mark.parametrize("name", ["common-metric-resolved.json", "classic-metric-deactivated.json",
                                  "metric-noncommon-resolved.json"])
def test_resolved_alert_starts_nothing_and_says_so(name: str) -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture(name))))
    assert resp.status_code == 200
    assert body(resp)["status"] == "ignored" and "Resolved" in body(resp)["reason"]
    assert client.started == []


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"{not json", 400, "MalformedJson"),
    (b"", 400, "MalformedJson"),
    (b"[" * 100000 + b"]" * 100000, 400, "MalformedJson"),
    (json.dumps({"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": {
        "monitorCondition": "Fired", "alertTargetIDs": ["/subscriptions/x/y"]}}}).encode(),
     422, "NoVmTarget"),
    (b'{"hello": "world"}', 422, "UnknownAlertSchema"),
    (b'"just a string"', 422, "UnknownAlertSchema"),
])
def test_bad_alerts_get_json_errors_and_start_nothing(raw: bytes, status: int, code: str) -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(raw)))
    assert resp.status_code == status
    assert body(resp)["error"]["code"] == code
    assert client.started == []


def test_oversize_body_is_refused() -> None:
    client = FakeClient()
    big = fixture("common-metric-fired.json")
    big["data"]["essentials"]["description"] = "x" * 5000
    resp = call(Starter(client, settings(ALERTCAP_MAX_BODY_BYTES="2048")).alert(post(big)))
    assert resp.status_code == 400 and body(resp)["error"]["code"] == "BodyTooLarge"
    assert client.started == []


def test_non_vm_target_is_422() -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture("common-non-vm-target.json"))))
    assert resp.status_code == 422
    assert "storageaccounts" in json.dumps(body(resp)).lower()


def test_manual_start_with_options() -> None:
    client = FakeClient()
    req = post({"vmId": VM1, "location": "EastUS", "reason": "investigating",
                "capture": {"timeLimitInSeconds": 120, "bytesToCapturePerPacket": 128,
                            "filters": [{"protocol": "TCP", "remotePort": "443;8080-8090"}]}},
               "captures")
    resp = call(Starter(client, settings()).manual(req))
    assert resp.status_code == 202
    request = client.started[0][2]["request"]
    assert request["requested_by"] == "manual"
    assert request["location"] == "eastus"
    assert request["options"]["time_limit_seconds"] == 120
    assert request["options"]["bytes_per_packet"] == 128
    assert request["options"]["filters"][0]["remote_port"] == "443;8080-8090"
    assert request["options"]["total_bytes"] == 1073741824  # the configured default


@pytest.mark.parametrize("payload", [
    {"vmId": VM1, "capture": {"timeLimitInSeconds": 99999}},
    {"vmId": VM1, "capture": {"timeLimitInSeconds": "60"}},
    {"vmId": VM1, "capture": {"filters": [{"protocol": "ICMP"}]}},
    {"vmId": VM1, "capture": {"filters": [{"localPort": "70000"}]}},
    {"vmId": VM1, "capture": {"filters": [{"remoteIPAddress": "10.0.0.1; DROP TABLE"}]}},
    {"vmId": VM1, "capture": {"localFilePath": "/var/captures/../../etc/passwd.cap"}},
    {"vmId": VM1, "capture": {"shell": "rm -rf /"}},
    {"vmId": VM1, "location": "east us; rm"},
    {"vmId": VM1 + "/../../other"},
    {"vmId": None},
    {"vm": VM1},
])
def test_manual_start_validation_is_422_and_starts_nothing(payload: dict[str, Any]) -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).manual(post(payload, "captures")))
    assert resp.status_code == 422, body(resp)
    assert "error" in body(resp)
    assert client.started == []


def test_stop_raises_the_stop_event_for_a_running_capture() -> None:
    client = FakeClient()
    client.instances["alertcap-vm1-abc"] = "Running"
    resp = call(Starter(client, settings()).stop(post(b"{}", "captures/x/stop"),
                                                 "alertcap-vm1-abc"))
    assert resp.status_code == 202
    assert client.events == [("alertcap-vm1-abc", names.STOP_EVENT, {"by": "operator"})]


def test_stop_unknown_is_404_and_finished_is_409() -> None:
    client = FakeClient()
    starter = Starter(client, settings())
    assert call(starter.stop(post(b"{}"), "nope")).status_code == 404
    client.instances["done"] = "Completed"
    assert call(starter.stop(post(b"{}"), "done")).status_code == 409
    assert client.events == []


def test_openapi_document_describes_the_routes_and_their_limits() -> None:
    from starters.openapi import document

    doc = document()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/alerts", "/captures", "/captures/{instanceId}/stop"}
    capture = doc["paths"]["/captures"]["post"]["requestBody"]["content"]["application/json"]
    limits = capture["schema"]["properties"]["capture"]["properties"]
    assert limits["timeLimitInSeconds"]["maximum"] == 18000
    assert doc["components"]["securitySchemes"]["functionKey"]["name"] == "code"


def test_host_json_refuses_to_replace_a_live_instance_in_azure() -> None:
    # The starter's one-live-run-per-VM promise rests on the extension refusing start_new
    # for a running id; its default (AnyState) would silently replace the run.
    host = json.loads((Path(__file__).parent.parent.parent / "host.json").read_text())
    assert host["extensions"]["durableTask"]["overridableExistingInstanceStates"] == \
        "NonRunningStates"
