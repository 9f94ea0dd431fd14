"""Scale-set activities over fakes of the SDK clients: the agent check on the scale set's
model (extension profile, instances behind on the model, every page of the instance list)
and the per-instance summary of an AzureVMSS capture (one file per captured instance)."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace
from typing import Any

import pytest
from azure.mgmt.resource.resources.models import GenericResource

from activities import network
from activities.network import EnsureAgentInput
from activities.summary import SummariseInput, summarise_scale_set_capture
from alertcap.domain.vm import VmRef
from alertcap.errors import AgentMissing
from alertcap.settings import Settings
from tests.pcap.pcapgen import ACK, SLL, SYN, Capture, ether, ipv4, sll, tcp

SUB = "00000000-0000-0000-0000-000000000000"
SS = (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
      "Microsoft.Compute/virtualMachineScaleSets/web")
SSREF = VmRef.parse_scale_set(SS)


class Response:
    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body, self.status_code = body, status

    def json(self) -> dict[str, Any]:
        return self.body


class ScaleSetResources:
    """Compute as the SDK sees it: the scale set's model, its instances in pages."""

    def __init__(self, extensions: list[dict[str, Any]], pages: list[list[dict[str, Any]]]
                 ) -> None:
        self.model = {"id": SS, "location": "eastus", "properties": {"virtualMachineProfile": {
            "storageProfile": {"osDisk": {"osType": "Linux"}},
            "extensionProfile": {"extensions": extensions}}}}
        self.pages = pages
        self.listed: list[str] = []
        self.installed: list[tuple[str, Any]] = []
        self.resources = self

    def get_by_id(self, resource_id: str, *, api_version: str) -> GenericResource:
        assert resource_id == SS and api_version
        return GenericResource(self.model)

    def send_request(self, request: Any) -> Response:
        self.listed.append(request.url)
        page = int(request.url.split("page=")[1]) if "page=" in request.url else 0
        more = page + 1 < len(self.pages)
        return Response({"value": self.pages[page],
                         **({"nextLink": f"{SS}/virtualMachines?page={page + 1}"} if more
                            else {})})

    def begin_create_or_update_by_id(self, resource_id: str, body: Any, *,
                                     api_version: str) -> Any:
        self.installed.append((resource_id, body))
        return SimpleNamespace(result=lambda: None)


def agent(state: str = "Succeeded") -> dict[str, Any]:
    return {"name": "AzureNetworkWatcherExtension", "properties": {
        "publisher": "Microsoft.Azure.NetworkWatcher", "type": "NetworkWatcherAgentLinux",
        "typeHandlerVersion": "1.4", "provisioningState": state}}


def instance(iid: int, latest: bool | None = True) -> dict[str, Any]:
    props = {} if latest is None else {"latestModelApplied": latest}
    return {"instanceId": str(iid), "id": f"{SS}/virtualMachines/{iid}", "properties": props}


def compute(res: ScaleSetResources) -> Any:
    return SimpleNamespace(resources=lambda sub: res, settings=Settings())


def test_agent_in_the_model_names_instances_still_on_an_older_model_across_pages() -> None:
    res = ScaleSetResources([agent()], [[instance(0), instance(1, False)],
                                        [instance(2), instance(3, False)]])
    out = network.ensure_agent(compute(res), EnsureAgentInput(SSREF))
    assert (out.type, out.version, out.installed_now) == ("NetworkWatcherAgentLinux", "1.4",
                                                          False)
    assert out.not_upgraded == ("1", "3")
    assert len(res.listed) == 2 and res.installed == []


def test_no_agent_in_the_model_is_refused_with_the_commands_to_fix_it() -> None:
    res = ScaleSetResources([], [[instance(0)]])
    with pytest.raises(AgentMissing) as caught:
        network.ensure_agent(compute(res), EnsureAgentInput(SSREF, install=False))
    assert "az vmss extension set" in caught.value.message
    assert "--vmss-name web -g rg" in caught.value.message
    assert "az vmss update-instances" in caught.value.message
    assert res.installed == []


def test_a_failed_agent_in_the_model_is_refused() -> None:
    res = ScaleSetResources([agent("Failed")], [[instance(0)]])
    with pytest.raises(AgentMissing, match="state Failed"):
        network.ensure_agent(compute(res), EnsureAgentInput(SSREF))


def test_installing_the_agent_adds_it_to_the_model_and_lists_every_instance_to_upgrade(
        ) -> None:
    res = ScaleSetResources([], [[instance(0, None), instance(1, False), instance(2)]])
    out = network.ensure_agent(compute(res), EnsureAgentInput(SSREF, install=True))
    ((target, body),) = res.installed
    assert target == f"{SS}/extensions/AzureNetworkWatcherExtension"
    assert body["properties"]["type"] == "NetworkWatcherAgentLinux"
    assert out.installed_now and out.not_upgraded == ("0", "1")


# --- the per-instance summary -----------------------------------------------------------

FOLDER = ("https://acct.blob.core.windows.net/network-watcher-logs/subscriptions/"
          f"{SUB}/resourcegroups/rg/providers/microsoft.compute/virtualmachinescalesets/web")
PREFIX = FOLDER.split("/network-watcher-logs/", 1)[1] + "/"


def pcap_of(dport: int, packets: int) -> bytes:
    cap = Capture()
    for i in range(packets):
        flags = SYN if i == 0 else ACK
        cap.add(i * 0.01, ether(ipv4("10.0.0.4", "10.0.0.9", 6,
                                     tcp(40000, dport, i, 0, flags))))
    return cap.pcap()


class Blobs:
    """One container: blob name -> bytes; the SDK's download_blob streams with read(n)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def list_blobs(self, name_starts_with: str) -> list[Any]:
        return [SimpleNamespace(name=n) for n in self.files if n.startswith(name_starts_with)]

    def blob(self, url: str) -> Any:
        name = url.split("/network-watcher-logs/", 1)[1]

        def download_blob(max_concurrency: int = 1) -> Any:
            data = self.files[name]
            stream = io.BytesIO(data)
            return SimpleNamespace(size=len(data), read=stream.read)
        return SimpleNamespace(blob_name=name, download_blob=download_blob)


def storage(blobs: Blobs) -> Any:
    return SimpleNamespace(
        blob=blobs.blob, container_of=lambda url: blobs, settings=Settings(),
        read_link=lambda url, hours: (url + "?sig=x", "2026-11-25T00:00:00Z"))


def test_each_captured_instance_gets_its_own_summary_and_all_of_them_one_together() -> None:
    files = {
        f"{PREFIX}virtualmachines/0/2026/11/24/packetcapture_01.cap": pcap_of(443, 5),
        f"{PREFIX}virtualmachines/2/2026/11/24/packetcapture_01.cap": pcap_of(5432, 7),
        f"{PREFIX}virtualmachines/2/2026/11/24/notes.json": json.dumps({}).encode(),
        "elsewhere/virtualmachines/1/packetcapture_01.cap": pcap_of(22, 3),
    }
    out = summarise_scale_set_capture(storage(Blobs(files)), SummariseInput(FOLDER))
    assert [(i.instance_id, (i.summary or {})["packets"]) for i in out.instances] == [
        ("0", 5), ("2", 7)]
    assert all(i.link and i.link.endswith("?sig=x") for i in out.instances)
    assert out.summary is not None and out.summary["packets"] == 12
    ports = {p["port"] for p in out.summary["top_dst_ports"]}
    assert {443, 5432} <= ports and 22 not in ports
    assert out.size_bytes == sum(len(files[k]) for k in list(files)[:2])


def test_no_file_for_any_instance_is_a_warning_not_a_failure() -> None:
    out = summarise_scale_set_capture(storage(Blobs({})), SummariseInput(FOLDER))
    assert out.instances == () and out.summary is None
    assert out.warnings == ("Network Watcher wrote no capture file for any instance",)


def test_a_file_of_another_link_type_is_summarised_alone_and_left_out_of_together() -> None:
    other = Capture(linktype=SLL)
    other.add(0.0, sll(ipv4("10.0.0.5", "10.0.0.9", 6, tcp(40001, 80, 0, 0, SYN))))
    files = {f"{PREFIX}virtualmachines/0/packetcapture_01.cap": pcap_of(443, 4),
             f"{PREFIX}virtualmachines/1/packetcapture_01.cap": other.pcap()}
    out = summarise_scale_set_capture(storage(Blobs(files)), SummariseInput(FOLDER))
    assert [(i.instance_id, (i.summary or {})["packets"]) for i in out.instances] == [
        ("0", 4), ("1", 1)]
    assert out.summary is not None and out.summary["packets"] == 4
    assert any("left out of the together-summary" in w and "link type differs" in w
               for w in out.warnings)


def test_the_email_of_a_scale_set_capture_names_each_captured_instance() -> None:
    from alertcap.domain.email import render
    from alertcap.domain.run import CaptureSummary, InstanceSummary, RunResult

    summary = CaptureSummary(blob_url=FOLDER, summary={"packets": 12}, instances=(
        InstanceSummary("0", FOLDER + "/virtualmachines/0/a.cap", link="https://l/0?sig=x",
                        summary={"packets": 5}),
        InstanceSummary("2", FOLDER + "/virtualmachines/2/a.cap", summary={"packets": 7})))
    email = render(RunResult(instance_id="alertcap-web-0123456789ab", vm=SSREF,
                             outcome="captured", reason="TimeExceeded", summary=summary))
    assert "Instance 0" in email.text and "5 packets, https://l/0?sig=x" in email.text
    assert "Instance 2" in email.text and "7 packets, " + FOLDER in email.text
    assert "Instance 1" not in email.text
    assert "Instance 0" in email.html
