"""Activity adapters over fakes of the Azure SDK clients (unit level; the end-to-end
tests run the same code over HTTPS against the local ARM endpoint)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network import models
from azure.mgmt.resource.resources.models import GenericResource

from activities import network
from activities.network import (
    CaptureStatusInput,
    CheckLimitInput,
    ClearStaleInput,
    CreateCaptureInput,
    EnsureAgentInput,
    ResolveWatcherInput,
)
from alertcap.domain.run import CaptureFilter, CaptureOptions, Watcher
from alertcap.domain.vm import VmRef
from alertcap.errors import (
    AgentMissing,
    AzureBadRequest,
    CaptureLimitReached,
    PermanentAzureError,
    ResourceNotFound,
    TransientAzureError,
    WatcherNotFound,
)
from alertcap.settings import Settings

SUB = "00000000-0000-0000-0000-000000000000"
VM = f"/subscriptions/{SUB}/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/vm1"
NW = f"/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_eastus"
VMREF = VmRef.parse(VM)
W = Watcher(NW, "NetworkWatcher_eastus", "NetworkWatcherRG", SUB, "eastus")


def http_error(status: int, message: str = "boom", code: str | None = None) -> HttpResponseError:
    err = HttpResponseError(message=message)
    err.status_code = status
    if code:  # what azure-mgmt's ARM error format puts on the exception
        err.error = SimpleNamespace(code=code, message=message)
    return err


class Poller:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class FakeWatchers:
    def __init__(self, watchers: list[models.NetworkWatcher], get_status: int = 200) -> None:
        self.watchers = watchers
        self.get_status = get_status
        self.list_all_calls = 0

    def get(self, rg: str, name: str) -> models.NetworkWatcher:
        if self.get_status != 200:
            raise http_error(self.get_status)
        for w in self.watchers:
            if w.name == name and w.id.split("/")[4] == rg:
                return w
        raise http_error(404, "ResourceNotFound")

    def list_all(self) -> list[models.NetworkWatcher]:
        self.list_all_calls += 1
        return self.watchers


class FakeCaptures:
    def __init__(self, names: list[str] = ()) -> None:  # type: ignore[assignment]
        self.items = {n: self._result(n) for n in names}
        self.deleted: list[str] = []
        self.created: list[tuple[str, Any]] = []
        self.fail_create: HttpResponseError | None = None
        self.status = "Running"

    def _result(self, name: str) -> models.PacketCaptureResult:
        return models.PacketCaptureResult({"name": name, "id": f"{NW}/packetCaptures/{name}",
                                           "properties": {"target": VM, "storageLocation": {
                                               "storagePath": f"https://sa/{name}.cap"}}})

    def list(self, rg: str, nw: str) -> list[models.PacketCaptureResult]:
        return list(self.items.values())

    def get(self, rg: str, nw: str, name: str) -> models.PacketCaptureResult:
        if name not in self.items:
            raise http_error(404, "NotFound")
        return self.items[name]

    def begin_delete(self, rg: str, nw: str, name: str) -> Poller:
        self.deleted.append(name)
        self.items.pop(name, None)
        return Poller()

    def begin_create(self, rg: str, nw: str, name: str, params: Any) -> Poller:
        if self.fail_create is not None:
            self.items[name] = self._result(name)  # Azure can leave a Failed session
            raise self.fail_create
        self.created.append((name, params))
        self.items[name] = self._result(name)
        return Poller(self.items[name])

    def begin_get_status(self, rg: str, nw: str, name: str) -> Poller:
        return Poller(models.PacketCaptureQueryStatusResult(
            {"packetCaptureStatus": self.status, "stopReason": "TimeExceeded"
             if self.status == "Stopped" else None}))

    def begin_stop(self, rg: str, nw: str, name: str) -> Poller:
        self.status = "Stopped"
        return Poller()


class FakeResources:
    def __init__(self, vm: dict[str, Any]) -> None:
        self.vm = vm
        self.installed: list[tuple[str, Any]] = []

    def get_by_id(self, resource_id: str, *, api_version: str) -> GenericResource:
        assert api_version
        return GenericResource(self.vm)

    def begin_create_or_update_by_id(self, resource_id: str, body: Any, *,
                                     api_version: str) -> Poller:
        self.installed.append((resource_id, body))
        return Poller()


def watcher_model(region: str, rg: str = "NetworkWatcherRG", name: str | None = None
                  ) -> models.NetworkWatcher:
    name = name or f"NetworkWatcher_{region}"
    return models.NetworkWatcher({"id": f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/"
                                  f"Microsoft.Network/networkWatchers/{name}", "name": name,
                                  "location": region})


def clients(watchers: FakeWatchers | None = None, captures: FakeCaptures | None = None,
            vm: dict[str, Any] | None = None) -> Any:
    net = SimpleNamespace(network_watchers=watchers or FakeWatchers([]),
                          packet_captures=captures or FakeCaptures())
    res = SimpleNamespace(resources=FakeResources(vm or {"id": VM, "location": "East US"}))
    return SimpleNamespace(network=lambda sub: net, resources=lambda sub: res,
                           settings=Settings())


def test_watcher_by_default_name_without_listing() -> None:
    fake = FakeWatchers([watcher_model("eastus")])
    out = network.resolve_watcher(clients(fake), ResolveWatcherInput(VMREF, "eastus"))
    assert out.watcher.name == "NetworkWatcher_eastus" and out.found_by == "default-name"
    assert fake.list_all_calls == 0


def test_watcher_fallback_lists_and_filters_by_region_read_from_the_vm() -> None:
    fake = FakeWatchers([watcher_model("westeurope", "ops", "nw-we"),
                         watcher_model("eastus", "ops", "custom-eastus")])
    out = network.resolve_watcher(clients(fake), ResolveWatcherInput(VMREF, None))
    assert out.watcher.name == "custom-eastus" and out.found_by == "list_all"
    assert out.vm_location == "eastus"  # "East US" from the VM, normalised


def test_no_watcher_in_region_is_a_clear_permanent_error() -> None:
    with pytest.raises(WatcherNotFound, match="az network watcher configure -l eastus"):
        network.resolve_watcher(clients(FakeWatchers([watcher_model("westus")])),
                                ResolveWatcherInput(VMREF, "eastus"))


def test_throttled_watcher_read_is_transient() -> None:
    with pytest.raises(TransientAzureError):
        network.resolve_watcher(clients(FakeWatchers([], get_status=429)),
                                ResolveWatcherInput(VMREF, "eastus"))


def agent_vm(ext_type: str | None, os_type: str = "Linux") -> dict[str, Any]:
    vm: dict[str, Any] = {"id": VM, "location": "eastus", "properties": {
        "storageProfile": {"osDisk": {"osType": os_type}}}, "resources": []}
    if ext_type:
        vm["resources"].append({"id": VM + "/extensions/AzureNetworkWatcherExtension",
                                "name": "AzureNetworkWatcherExtension", "properties": {
                                    "publisher": "Microsoft.Azure.NetworkWatcher",
                                    "type": ext_type, "typeHandlerVersion": "1.4",
                                    "provisioningState": "Succeeded"}})
    return vm


def test_agent_present() -> None:
    out = network.ensure_agent(clients(vm=agent_vm("NetworkWatcherAgentLinux")),
                               EnsureAgentInput(VMREF))
    assert out.type == "NetworkWatcherAgentLinux" and not out.installed_now


def test_agent_missing_fails_clearly_unless_install_allowed() -> None:
    with pytest.raises(AgentMissing, match="ALERTCAP_INSTALL_AGENT"):
        network.ensure_agent(clients(vm=agent_vm(None)), EnsureAgentInput(VMREF, install=False))
    c = clients(vm=agent_vm(None, "Windows"))
    out = network.ensure_agent(c, EnsureAgentInput(VMREF, install=True))
    assert out.installed_now and out.type == "NetworkWatcherAgentWindows"
    (rid, body), = c.resources("x").resources.installed
    assert rid.endswith("/extensions/AzureNetworkWatcherExtension")
    assert body["properties"]["publisher"] == "Microsoft.Azure.NetworkWatcher"


def test_clear_stale_deletes_only_our_earlier_captures_of_this_vm() -> None:
    caps = FakeCaptures(["alertcap-vm1-abcd1234-20260101000000", "alertcap-vm1-abcd1234-now",
                         "alertcap-vm10-ffff0000-20260101000000", "someone-elses", "alertcap-vm1"])
    out = network.clear_stale_capture(clients(captures=caps), ClearStaleInput(
        W, "alertcap-vm1-abcd1234-", keep_name="alertcap-vm1-abcd1234-now"))
    assert out.deleted == ("alertcap-vm1-abcd1234-20260101000000",)
    assert set(caps.items) == {"alertcap-vm1-abcd1234-now", "alertcap-vm10-ffff0000-20260101000000",
                               "someone-elses", "alertcap-vm1"}


def test_limit() -> None:
    caps = FakeCaptures(["a", "b", "mine"])
    assert network.check_limit(clients(captures=caps), CheckLimitInput(W, 3, "mine")).count == 2
    with pytest.raises(CaptureLimitReached, match="limit 2"):
        network.check_limit(clients(captures=caps), CheckLimitInput(W, 2, "mine"))


def test_create_sends_every_option_and_is_idempotent() -> None:
    caps = FakeCaptures()
    opts = CaptureOptions(time_limit_seconds=90, bytes_per_packet=96, total_bytes=1000,
                          local_file_path="/var/captures/x.cap",
                          filters=(CaptureFilter("TCP", None, "10.0.0.1", None, "443"),))
    inp = CreateCaptureInput(W, VMREF, "alertcap-vm1-x-1", opts, "/subscriptions/x/sa")
    ref = network.create_capture(clients(captures=caps), inp)
    assert not ref.adopted and ref.storage_path == "https://sa/alertcap-vm1-x-1.cap"
    wire = caps.created[0][1].as_dict()["properties"]
    assert wire["target"] == VM and wire["targetType"] == "AzureVM"
    assert wire["timeLimitInSeconds"] == 90 and wire["bytesToCapturePerPacket"] == 96
    assert wire["totalBytesPerSession"] == 1000
    assert wire["storageLocation"] == {"storageId": "/subscriptions/x/sa",
                                       "filePath": "/var/captures/x.cap"}
    assert wire["filters"] == [{"protocol": "TCP", "remoteIPAddress": "10.0.0.1",
                                "remotePort": "443"}]
    again = network.create_capture(clients(captures=caps), inp)  # re-run after a crash
    assert again.adopted and len(caps.created) == 1


def test_failed_create_leaves_nothing_behind() -> None:
    caps = FakeCaptures()
    caps.fail_create = http_error(400, "Invalid filter")
    inp = CreateCaptureInput(W, VMREF, "n1", CaptureOptions(), "/sa")
    with pytest.raises(AzureBadRequest):
        network.create_capture(clients(captures=caps), inp)
    assert caps.deleted == ["n1"] and caps.items == {}


def test_a_create_whose_progress_answers_404_still_cleans_up() -> None:
    caps = FakeCaptures()
    caps.fail_create = http_error(404, "operation not found")
    with pytest.raises(ResourceNotFound):
        network.create_capture(clients(captures=caps),
                               CreateCaptureInput(W, VMREF, "n1", CaptureOptions(), "/sa"))
    assert caps.deleted == ["n1"]


def test_a_create_error_is_never_reclassified_by_its_words() -> None:
    """Whether the agent is missing comes from the VM's extensions (ensure_agent), not from
    an error message: Azure's wording is not a contract, and ours least of all."""
    caps = FakeCaptures()
    caps.fail_create = http_error(400, "The Network Watcher agent extension is not installed",
                                  code="InvalidRequestFormat")
    with pytest.raises(PermanentAzureError) as raised:
        network.create_capture(clients(captures=caps),
                               CreateCaptureInput(W, VMREF, "n1", CaptureOptions(), "/sa"))
    assert type(raised.value) is AzureBadRequest
    assert "agent extension is not installed" in raised.value.message  # the operator sees it


def test_status_and_stop() -> None:
    caps = FakeCaptures(["n1"])
    c = clients(captures=caps)
    running = network.get_capture_status(c, CaptureStatusInput(W, "n1"))
    assert running.status == "Running" and running.storage_path is None
    stopped = network.stop_capture(c, CaptureStatusInput(W, "n1"))
    assert stopped.status == "Stopped" and stopped.storage_path == "https://sa/n1.cap"


def test_runtime_envelope_reports_permanent_and_raises_transient() -> None:
    c = clients(FakeWatchers([watcher_model("westus")]))
    out = network.resolve_watcher.run({"vm_id": VM, "location": "eastus"}, clients=c)
    assert out["error"]["type"] == "WatcherNotFound"
    c = clients(FakeWatchers([], get_status=503))
    with pytest.raises(TransientAzureError):
        network.resolve_watcher.run({"vm_id": VM, "location": "eastus"}, clients=c)
    ok = network.resolve_watcher.run({"vm_id": VM, "location": "eastus"},
                                     clients=clients(FakeWatchers([watcher_model("eastus")])))
    assert ok["value"]["watcher"]["name"] == "NetworkWatcher_eastus"


@pytest.mark.parametrize(("status", "kind"), [(403, "AccessDenied"), (404, "ResourceNotFound"),
                                              (400, "AzureBadRequest"), (429, "TransientAzureError"),
                                              (500, "TransientAzureError"),
                                              (503, "TransientAzureError")])
def test_azure_status_mapping(status: int, kind: str) -> None:
    from alertcap.sdk.errors import from_azure

    assert type(from_azure(http_error(status), "x")).__name__ == kind


def test_every_activity_the_orchestrator_calls_is_registered() -> None:
    import function_app
    from activities.spec import declared
    from orchestrators.capture import ORCHESTRATOR

    registered = {f.get_function_name(): f.get_trigger().type
                  for f in function_app.app.get_functions()}
    for spec in declared():
        assert registered.get(spec.name) == "activityTrigger", spec.name
    assert len(declared()) >= 9
    assert registered[ORCHESTRATOR] == "orchestrationTrigger"
    # Including those declared in modules nothing else imported first: every
    # @activity("name") in the package's source is a registered activity.
    import ast
    from pathlib import Path

    in_source = set()
    for path in (Path(__file__).parent.parent.parent / "activities").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "activity"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                in_source.add(node.args[0].value)
    assert "save_run" in in_source
    assert {n for n in in_source if registered.get(n) == "activityTrigger"} == in_source

