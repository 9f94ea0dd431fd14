"""The HTTP routes over a scripted Durable client: what a caller of the webhook sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from alertcap.domain.vm import VmRef, instance_id_for
from alertcap.settings import Settings
from orchestrators.capture import ORCHESTRATOR, STOP_EVENT
from starters.http import Starter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alerts"
BASE = "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/"
VM1 = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/vm1"


class Status:
    def __init__(self, runtime_status: str | None, input_: Any = None, output: Any = None
                 ) -> None:
        self.runtime_status = runtime_status
        self.input_ = input_
        self.output = output


class FakeClient:
    """The DurableOrchestrationClient calls the starter makes, with a live-instance table."""

    def __init__(self) -> None:
        self.instances: dict[str, str] = {}
        self.started: list[tuple[str, str, Any]] = []
        self.events: list[tuple[str, str, Any]] = []
        self.refuse_next_start = False
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self.lose_next_race = False  # Azure Storage: both starts "succeed", the other's input stays

    def get_client_response_links(self, req: Any, instance_id: str) -> dict[str, str]:
        q = "?taskHub=alertcap&connection=Storage&code=SYSTEMKEY"
        return {"id": instance_id, "statusQueryGetUri": BASE + instance_id + q,
                "sendEventPostUri": BASE + instance_id + "/raiseEvent/{eventName}" + q,
                "terminatePostUri": BASE + instance_id + "/terminate?reason={text}&" + q[1:],
                "rewindPostUri": BASE + instance_id + "/rewind?reason={text}&" + q[1:],
                "purgeHistoryDeleteUri": BASE + instance_id + q}

    async def get_status(self, instance_id: str, show_input: bool = False) -> Status:
        # As the extension stores it: the SDK's JSON text, kept as a JSON string.
        recorded = json.dumps(json.dumps(self.inputs[instance_id])) if (
            show_input and instance_id in self.inputs) else None
        return Status(self.instances.get(instance_id), recorded,
                      self.outputs.get(instance_id))

    async def start_new(self, name: str, instance_id: str, client_input: Any) -> str:
        if self.refuse_next_start:  # another delivery of the alert won the race
            self.refuse_next_start = False
            self.instances[instance_id] = "Running"
            raise Exception("An instance with ID already exists")
        self.started.append((name, instance_id, client_input))
        self.instances[instance_id] = "Pending"
        if self.lose_next_race:
            self.lose_next_race = False
            winner = json.loads(json.dumps(client_input))
            winner["request"]["start_token"] = "the-other-delivery"
            self.inputs[instance_id] = winner
        else:
            self.inputs[instance_id] = client_input
        return instance_id

    async def raise_event(self, instance_id: str, name: str, data: Any) -> None:
        self.events.append((instance_id, name, data))


def settings(**env: str) -> Settings:
    return Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": "/subscriptions/x/sa",
                              "ALERTCAP_WEBHOOK_AUTH": "functionKey", **env})


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


def test_alert_starts_one_run_and_answers_with_keyless_status_urls() -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp.status_code == 202
    b = body(resp)
    # Least privilege: whoever holds the webhook's key gets no management URLs and no
    # system key, only what identifies and locates the run.
    assert "code=" not in json.dumps(b) and "code=" not in resp.headers["Location"]
    for key in ("sendEventPostUri", "terminatePostUri", "rewindPostUri",
                "purgeHistoryDeleteUri"):
        assert key not in json.dumps(b)
    assert b["accepted"] == 1
    entry = b["instances"][0]
    assert resp.headers["Location"] == entry["statusQueryGetUri"]
    assert entry["statusQueryGetUri"].split("?")[0].endswith(entry["instanceId"])
    assert len(client.started) == 1
    name, instance_id, run_input = client.started[0]
    assert name == ORCHESTRATOR
    assert instance_id == entry["instanceId"] and entry["state"] == "started"
    request = run_input["request"]
    assert request["vm_id"].lower().endswith("/virtualmachines/vm1")
    assert request["alert"]["alert_rule"] == "vm1-network-out-high"
    assert request["policy"]["storage_account_id"] == "/subscriptions/x/sa"
    # The status URL kept in the run (and so in its output and email) carries no key.
    assert "code=" not in request["status_url"] and "taskHub=alertcap" in request["status_url"]


def test_multi_target_alert_hands_every_vm_to_one_fan_out() -> None:
    client = FakeClient()
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-multi-target.json"))))
    assert resp.status_code == 202
    ((name, instance_id, inp),) = client.started
    assert name == "fanout_orchestrator" and body(resp)["id"] == instance_id
    assert body(resp)["accepted"] == 3 == len(inp["targets"])
    assert len({t["vm_id"].lower() for t in inp["targets"]}) == 3


def test_duplicate_alert_while_running_starts_nothing_and_returns_the_run() -> None:
    client = FakeClient()
    starter = Starter(client, settings())
    first = body(call(starter.alert(post(fixture("common-metric-fired.json")))))["instances"][0]
    client.instances[first["instanceId"]] = "Running"
    again = call(starter.alert(post(fixture("common-metric-mixed-case.json"))))
    other_vm = body(again)["instances"][0]["instanceId"] != first["instanceId"]
    assert other_vm  # web-01, not vm1: a different run
    dup = call(starter.alert(post(fixture("common-metric-fired.json"))))
    assert dup.status_code == 200
    assert body(dup)["instances"][0]["instanceId"] == first["instanceId"]
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
                            "filters": [{"protocol": "TCP", "remotePort": "8080-8090"},
                                        {"protocol": "UDP", "remotePort": "53;123;"}]}},
               "captures")
    resp = call(Starter(client, settings()).manual(req))
    assert resp.status_code == 202
    request = client.started[0][2]["request"]
    assert request["requested_by"] == "manual"
    assert request["location"] == "eastus"
    assert request["options"]["time_limit_seconds"] == 120
    assert request["options"]["bytes_per_packet"] == 128
    assert request["options"]["filters"][0]["remote_port"] == "8080-8090"
    assert request["options"]["filters"][1]["remote_port"] == "53;123;"
    assert request["options"]["total_bytes"] == 1073741824  # the configured default


@pytest.mark.parametrize("payload", [
    {"vmId": VM1, "capture": {"timeLimitInSeconds": 99999}},
    {"vmId": VM1, "capture": {"timeLimitInSeconds": "60"}},
    {"vmId": VM1, "capture": {"filters": [{"protocol": "ICMP"}]}},
    {"vmId": VM1, "capture": {"filters": [{"localPort": "70000"}]}},
    {"vmId": VM1, "capture": {"filters": [{"remoteIPAddress": "10.0.0.1; DROP TABLE"}]}},
    {"vmId": VM1, "capture": {"localFilePath": "/var/captures/../../etc/passwd.cap"}},
    # What Network Watcher itself refuses (REST spec, PacketCaptureFilter), so the run
    # would only fail later with an email: refused at the door instead.
    {"vmId": VM1, "capture": {"filters": [{"localPort": "\u00b2"}]}},           # superscript two
    {"vmId": VM1, "capture": {"filters": [{"localPort": "\u0668\u0660"}]}},     # Arabic-Indic 80
    {"vmId": VM1, "capture": {"filters": [{"remotePort": "443;8080-8090"}]}},  # range + list
    {"vmId": VM1, "capture": {"filters": [{"remotePort": "80-85;90-95"}]}},    # two ranges
    {"vmId": VM1, "capture": {"filters": [{"remotePort": "90-80"}]}},
    {"vmId": VM1, "capture": {"filters": [{"localIPAddress": "fe80::1"}]}},
    {"vmId": VM1, "capture": {"filters": [{"localIPAddress": "10.0.0.9-10.0.0.1"}]}},
    {"vmId": VM1, "capture": {"filters": [{"localIPAddress": "010.0.0.1.2"}]}},
    {"vmId": VM1, "capture": {"filters": [
        {"localIPAddress": "0.0.0.1-255.255.255.254", "remoteIPAddress": "0.0.0.1-255.255.255.254",
         "localPort": ";".join(str(p) for p in range(1000, 1039))}] * 10}},  # BPF too large
    {"vmId": VM1, "capture": {"localFilePath": "/var/captures/x.cap\n"}},
    {"vmId": VM1, "capture": {"localFilePath": "/tmp/x.cap"}},
    {"vmId": VM1, "location": "\uff45\uff41\uff53\uff54\uff55\uff53"},  # full-width "eastus"
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
    client.instances["alertcap-vm1-0123456789ab"] = "Running"
    resp = call(Starter(client, settings()).stop(post(b"{}", "captures/x/stop"),
                                                 "alertcap-vm1-0123456789ab"))
    assert resp.status_code == 202
    assert client.events == [("alertcap-vm1-0123456789ab", STOP_EVENT, {"by": "operator"})]


def test_stop_unknown_is_404_and_finished_is_409() -> None:
    client = FakeClient()
    starter = Starter(client, settings())
    assert call(starter.stop(post(b"{}"), "alertcap-nope-0123456789ab")).status_code == 404
    client.instances["alertcap-done-0123456789ab"] = "Completed"
    assert call(starter.stop(post(b"{}"), "alertcap-done-0123456789ab")).status_code == 409


@pytest.mark.parametrize("bad", ["alertcap-vm1-0123456789ab?x", "alertcap-vm1-0123456789ab/x",
                                 "../alertcap-vm1-0123456789ab", "@alertcap", "x" * 300])
def test_stop_with_an_id_that_cannot_be_ours_is_404_without_asking_durable(bad: str) -> None:
    client = FakeClient()
    client.instances[bad] = "Running"
    resp = call(Starter(client, settings()).stop(post(b"{}"), bad))
    assert resp.status_code == 404 and body(resp)["error"]["code"] == "InstanceNotFound"
    assert client.events == []
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


def test_a_start_that_lost_a_non_atomic_race_says_running_not_started() -> None:
    """Azure Storage's create is not atomic: both racing starts return normally and one is
    discarded later. Only the start whose token is in the recorded input says started."""
    client = FakeClient()
    client.lose_next_race = True
    resp = call(Starter(client, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp.status_code == 200
    assert [i["state"] for i in body(resp)["instances"]] == ["running"]
    client2 = FakeClient()
    resp2 = call(Starter(client2, settings()).alert(post(fixture("common-metric-fired.json"))))
    assert resp2.status_code == 202
    assert client2.started[0][2]["version"] >= 2  # new runs start on the current version


def test_notify_again_starts_a_resend_of_a_completed_runs_output() -> None:
    from orchestrators.deliver import NOTIFY_AGAIN_ORCHESTRATOR

    client = FakeClient()
    iid = "alertcap-vm1-0123456789ab"
    client.instances[iid] = "Completed"
    output = {"instance_id": iid, "vm_id": VM1, "outcome": "captured",
              "started_at": "2026-11-24T02:00:00.000000Z",
              "notification": {"message_id": "", "recipients": [], "status": "undelivered"}}
    client.outputs[iid] = output
    resp = call(Starter(client, settings()).notify_again(post(b""), iid))
    assert resp.status_code == 202, body(resp)
    name, again_id, again_input = client.started[0]
    assert name == NOTIFY_AGAIN_ORCHESTRATOR and again_id.startswith(iid + "-notify-")
    assert again_input["result"]["instance_id"] == iid
    assert again_input["key"].startswith(f"{iid}/2026-11-24T02:00:00.000000Z/again/")
    # Twice asked, twice a new key (each request is one new email).
    call(Starter(client, settings()).notify_again(post(b""), iid))
    assert client.started[1][2]["key"] != again_input["key"]


@pytest.mark.parametrize(("state", "code"), [(None, 404), ("Running", 409), ("Failed", 409)])
def test_notify_again_refuses_what_has_no_result(state: str | None, code: int) -> None:
    client = FakeClient()
    iid = "alertcap-vm1-0123456789ab"
    if state:
        client.instances[iid] = state
    resp = call(Starter(client, settings()).notify_again(post(b""), iid))
    assert resp.status_code == code and body(resp)["error"]["code"]
    assert client.started == []


@pytest.mark.parametrize(("auth_enabled", "headers", "code"), [
    ("True", {"X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-MS-CLIENT-PRINCIPAL-ID": "a1b2"}, 202),
    ("True", {}, 401),                                                  # no token at all
    ("True", {"X-MS-CLIENT-PRINCIPAL-IDP": "github", "X-MS-CLIENT-PRINCIPAL-ID": "x"}, 401),
    ("", {"X-MS-CLIENT-PRINCIPAL-IDP": "aad", "X-MS-CLIENT-PRINCIPAL-ID": "a1b2"}, 401),  # forged: Easy Auth off
])
def test_the_secure_webhook_trusts_only_app_service_authentications_principal(
        monkeypatch: pytest.MonkeyPatch, auth_enabled: str, headers: dict[str, str],
        code: int) -> None:
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", auth_enabled)
    client = FakeClient()
    req = func.HttpRequest("POST", "http://127.0.0.1:7071/api/alerts",
                           body=json.dumps(fixture("common-metric-fired.json")).encode(),
                           headers={"content-type": "application/json", **headers})
    resp = call(Starter(client, settings(ALERTCAP_WEBHOOK_AUTH="entra")).alert(req))
    assert resp.status_code == code, body(resp)
    assert (client.started != []) == (code == 202)
    if code == 401:
        assert body(resp)["error"]["code"] == "Unauthenticated"


def test_with_the_secure_webhook_the_host_asks_no_key_on_the_webhook_only() -> None:
    from alertcap.settings import webhook_auth_from_env

    assert webhook_auth_from_env({"ALERTCAP_WEBHOOK_AUTH": "Entra"}) == "entra"
    assert webhook_auth_from_env({}) == "entra"  # secure by default
    assert webhook_auth_from_env({"ALERTCAP_WEBHOOK_AUTH": "functionKey"}) == "functionKey"
    assert webhook_auth_from_env({"ALERTCAP_WEBHOOK_AUTH": "none"}) is None
    with pytest.raises(Exception, match="ALERTCAP_WEBHOOK_AUTH"):
        settings(ALERTCAP_WEBHOOK_AUTH="none")
