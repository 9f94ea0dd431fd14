"""Network Watcher and VM calls: the capture activities, each declared beside its adapter.

Each adapter takes the `Clients` and one input dataclass and returns one output
dataclass. Azure SDK exceptions leave as the alertcap error tree (`sdk.errors.from_azure`),
so the activity runner can tell transient faults (retried) from permanent ones (reported).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from activities.spec import activity
from alertcap.domain.run import CaptureOptions, CaptureRef, CaptureStatus, Watcher
from alertcap.domain.targets import Scope
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key
from alertcap.errors import (
    AgentMissing,
    CaptureLimitReached,
    ResourceNotFound,
    WatcherNotFound,
)
from alertcap.sdk.clients import COMPUTE_API_VERSION, Clients
from alertcap.sdk.errors import call_azure, from_azure

AGENT_PUBLISHER = "Microsoft.Azure.NetworkWatcher"
AGENT_TYPES = {"linux": "NetworkWatcherAgentLinux", "windows": "NetworkWatcherAgentWindows"}
AGENT_EXTENSION_NAME = "AzureNetworkWatcherExtension"
AGENT_VERSION = "1.4"
DEFAULT_WATCHER_GROUP = "NetworkWatcherRG"

def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def _region(location: str) -> str:
    return location.replace(" ", "").lower()


def _watcher_from(model: Any) -> Watcher:
    parts = str(model.id).split("/")
    return Watcher(id=model.id, name=model.name, resource_group=parts[4],
                   subscription_id=parts[2].lower(), location=_region(model.location))


def read_vm(clients: Clients, vm: VmRef) -> Any:
    return call_azure(f"read VM {vm.name}", lambda: clients.resources(vm.subscription_id)
                  .resources.get_by_id(vm.id, api_version=COMPUTE_API_VERSION))


# --- resolve_watcher ------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveWatcherInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    location: str | None = None


@dataclass(frozen=True)
class ResolvedWatcher(Model):
    watcher: Watcher
    vm_location: str
    found_by: str  # "default-name" or "list_all"


@activity("resolve_watcher")
def resolve_watcher(clients: Clients, inp: ResolveWatcherInput) -> ResolvedWatcher:
    vm = inp.vm
    location = inp.location or read_vm(clients, vm).location
    region = _region(location)
    network = clients.network(vm.subscription_id)
    name = f"NetworkWatcher_{region}"
    try:
        # The name the portal and Azure give by default: one cheap GET instead of a list.
        found = network.network_watchers.get(DEFAULT_WATCHER_GROUP, name)
        return ResolvedWatcher(_watcher_from(found), region, "default-name")
    except Exception as exc:
        error = from_azure(exc, f"read Network Watcher {name}")
        if not isinstance(error, ResourceNotFound):
            raise error from exc
    watchers = call_azure("list Network Watchers",
                          lambda: list(network.network_watchers.list_all()))
    for w in watchers:
        if _region(w.location) == region:
            return ResolvedWatcher(_watcher_from(w), region, "list_all")
    raise WatcherNotFound(
        f"no Network Watcher in region {region} of subscription {vm.subscription_id}; "
        f"enable it with: az network watcher configure -l {region} --enabled true")


# --- ensure_agent ---------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureAgentInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    install: bool = False


@dataclass(frozen=True)
class AgentStatus(Model):
    extension_name: str
    type: str
    version: str | None
    installed_now: bool = False
    os_type: str = "linux"
    # A scale set: instances still on an older model (the agent may not be on them yet).
    not_upgraded: tuple[str, ...] = ()


def _agent_extension(model: Any) -> dict[str, Any] | None:
    """The Network Watcher extension among the VM's extensions, as Compute lists them."""
    for ext in model.get("resources") or []:
        props = ext.get("properties") or {}
        if (str(props.get("publisher", "")).lower() == AGENT_PUBLISHER.lower()
                and str(props.get("type", "")).lower() in
                {t.lower() for t in AGENT_TYPES.values()}):
            return dict(ext)
    return None


def _scale_set_instances(clients: Clients, vm: VmRef) -> list[dict[str, Any]]:
    """The scale set's instances, every page (Compute's list: GET .../virtualMachines)."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    client = clients.resources(vm.subscription_id)
    items: list[dict[str, Any]] = []
    url: str | None = f"{vm.id}/virtualMachines?api-version={COMPUTE_API_VERSION}"
    for _ in range(100):  # 100 pages of Compute's page size: far past any scale set
        if not url:
            break
        request = HttpRequest("GET", url)

        def send(req: Any = request) -> Any:
            response = client.send_request(req)
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            return response.json()

        body = call_azure(f"list the instances of scale set {vm.name}", send)
        items.extend(v for v in body.get("value") or [] if isinstance(v, dict))
        url = body.get("nextLink")
    return items


def _ensure_scale_set_agent(clients: Clients, inp: EnsureAgentInput) -> AgentStatus:
    """The agent of a scale set lives in its model's extension profile; instances still on
    an older model (latestModelApplied false, Manual upgrade policy) may not have it."""
    vm = inp.vm
    model = read_vm(clients, vm)
    profile = (model.properties or {}).get("virtualMachineProfile") or {}
    os_type = str(((profile.get("storageProfile") or {}).get("osDisk") or {}).get("osType")
                  or "Linux").lower()
    wanted = AGENT_TYPES.get(os_type, AGENT_TYPES["linux"])
    ext = _agent_extension({"resources": (profile.get("extensionProfile") or {})
                            .get("extensions") or []})
    behind = tuple(str(i.get("instanceId")) for i in _scale_set_instances(clients, vm)
                   if (i.get("properties") or {}).get("latestModelApplied") is False)
    if ext is not None:
        ext_props = ext.get("properties") or {}
        if str(ext_props.get("provisioningState") or "Succeeded").lower() == "failed":
            raise AgentMissing(f"the Network Watcher agent in scale set {vm.name}'s model is "
                               f"in state Failed; reinstall the {AGENT_EXTENSION_NAME} extension")
        return AgentStatus(str(ext.get("name") or AGENT_EXTENSION_NAME),
                           str(ext_props.get("type")), ext_props.get("typeHandlerVersion"),
                           os_type=os_type, not_upgraded=behind)
    if not inp.install:
        raise AgentMissing(
            f"the Network Watcher agent ({wanted}) is not in scale set {vm.name}'s extension "
            f"profile; add it (az vmss extension set --publisher {AGENT_PUBLISHER} --name "
            f"{wanted} --vmss-name {vm.name} -g {vm.resource_group}), then upgrade the "
            "instances (az vmss update-instances), or set ALERTCAP_INSTALL_AGENT=true")
    body = {"properties": {"publisher": AGENT_PUBLISHER, "type": wanted,
                           "typeHandlerVersion": AGENT_VERSION, "autoUpgradeMinorVersion": True}}
    resources = clients.resources(vm.subscription_id).resources
    call_azure(f"add the Network Watcher agent to scale set {vm.name}", lambda: resources
           .begin_create_or_update_by_id(f"{vm.id}/extensions/{AGENT_EXTENSION_NAME}",
                                         body, api_version=COMPUTE_API_VERSION).result())
    # A Manual upgrade policy leaves every instance on the old model until upgraded.
    everyone = tuple(str(i.get("instanceId")) for i in _scale_set_instances(clients, vm)
                     if (i.get("properties") or {}).get("latestModelApplied") is not True)
    return AgentStatus(AGENT_EXTENSION_NAME, wanted, AGENT_VERSION, installed_now=True,
                       os_type=os_type, not_upgraded=everyone)


@activity("ensure_agent")
def ensure_agent(clients: Clients, inp: EnsureAgentInput) -> AgentStatus:
    """Decide from the VM's extension list (presence and provisioning state), as Compute
    reports it, never from the wording of an error. A scale set: from its model's
    extension profile."""
    if inp.vm.is_scale_set:
        return _ensure_scale_set_agent(clients, inp)
    return agent_on(clients, inp.vm, read_vm(clients, inp.vm), inp.install)


def agent_on(clients: Clients, vm: VmRef, model: Any, install: bool) -> AgentStatus:
    """The agent check over a VM model already read (the preflight reads it once, for both
    the VM's region and its extensions)."""
    props = model.properties or {}
    os_type = str(((props.get("storageProfile") or {}).get("osDisk") or {}).get("osType")
                  or "Linux").lower()
    wanted = AGENT_TYPES.get(os_type, AGENT_TYPES["linux"])
    ext = _agent_extension(model)
    if ext is not None:
        ext_props = ext.get("properties") or {}
        state = str(ext_props.get("provisioningState") or "Succeeded")
        if state.lower() == "failed":
            raise AgentMissing(f"the Network Watcher agent on {vm.name} is in state Failed; "
                               f"reinstall the {AGENT_EXTENSION_NAME} extension")
        return AgentStatus(str(ext.get("name") or str(ext.get("id", "")).rsplit("/", 1)[-1]),
                           str(ext_props.get("type")), ext_props.get("typeHandlerVersion"),
                           os_type=os_type)
    if not install:
        raise AgentMissing(
            f"the Network Watcher agent ({wanted}) is not installed on {vm.name}; install the "
            f"{AGENT_EXTENSION_NAME} extension or set ALERTCAP_INSTALL_AGENT=true")
    body = {"location": model.location, "properties": {
        "publisher": AGENT_PUBLISHER, "type": wanted, "typeHandlerVersion": AGENT_VERSION,
        "autoUpgradeMinorVersion": True}}
    resources = clients.resources(vm.subscription_id).resources
    call_azure(f"install the Network Watcher agent on {vm.name}", lambda: resources
           .begin_create_or_update_by_id(f"{vm.id}/extensions/{AGENT_EXTENSION_NAME}",
                                         body, api_version=COMPUTE_API_VERSION).result())
    return AgentStatus(AGENT_EXTENSION_NAME, wanted, AGENT_VERSION, installed_now=True,
                       os_type=os_type)


# --- clear_stale_capture and check_limit ----------------------------------------------


def _captures(clients: Clients, w: Watcher) -> Any:
    return clients.network(w.subscription_id).packet_captures


@dataclass(frozen=True)
class ClearStaleInput(Model):
    watcher: Watcher
    name_prefix: str
    keep_name: str


@dataclass(frozen=True)
class ClearStaleResult(Model):
    deleted: tuple[str, ...] = ()


@activity("clear_stale_capture")
def clear_stale_capture(clients: Clients, inp: ClearStaleInput) -> ClearStaleResult:
    """Delete our earlier captures of this VM (by our name prefix); never anyone else's."""
    w = inp.watcher
    ops = _captures(clients, w)
    names = [c.name for c in call_azure("list packet captures",
                                    lambda: list(ops.list(w.resource_group, w.name)))]
    deleted = []
    for name in names:
        if name.startswith(inp.name_prefix) and name != inp.keep_name:
            _delete(ops, w, name)
            deleted.append(name)
    return ClearStaleResult(tuple(deleted))


def _delete(ops: Any, w: Watcher, name: str) -> None:
    call_azure(f"delete stale capture {name}",
           lambda: ops.begin_delete(w.resource_group, w.name, name).result())


@dataclass(frozen=True)
class CheckLimitInput(Model):
    watcher: Watcher
    limit: int
    ignore_name: str | None = None


@dataclass(frozen=True)
class LimitStatus(Model):
    count: int
    limit: int


@activity("check_limit")
def check_limit(clients: Clients, inp: CheckLimitInput) -> LimitStatus:
    w = inp.watcher
    ops = _captures(clients, w)
    sessions = call_azure("list packet captures", lambda: list(ops.list(w.resource_group, w.name)))
    count = sum(1 for c in sessions if c.name != inp.ignore_name)
    if count >= inp.limit:
        raise CaptureLimitReached(
            f"Network Watcher {w.name} already holds {count} capture sessions "
            f"(limit {inp.limit}); delete finished ones or raise ALERTCAP_CAPTURE_LIMIT")
    return LimitStatus(count, inp.limit)


# --- create_capture -------------------------------------------------------------------


@dataclass(frozen=True)
class CreateCaptureInput(Model):
    watcher: Watcher
    vm: VmRef = field(metadata=json_key("vm_id"))
    name: str
    options: CaptureOptions
    storage_account_id: str | None = None
    scope: Scope | None = None  # a scale set's instances (targetType AzureVMSS)
    # Version 3 runs: PUT at once and adopt only when Network Watcher answers 409 (the name
    # exists: an earlier attempt of this activity landed). The preflight's listing has just
    # shown the name absent, so the GET that used to come first is a round trip for nothing.
    put_first: bool = False


def _ref(w: Watcher, result: Any, adopted: bool) -> CaptureRef:
    location = (result.properties.storage_location if result.properties else None)
    return CaptureRef(watcher=w, name=result.name, id=result.id, adopted=adopted,
                      storage_path=getattr(location, "storage_path", None),
                      local_path=getattr(location, "file_path", None))


def _existing(ops: Any, w: Watcher, name: str) -> CaptureRef | None:
    try:
        return _ref(w, ops.get(w.resource_group, w.name, name), adopted=True)
    except Exception as exc:
        error = from_azure(exc, f"read capture {name}")
        if not isinstance(error, ResourceNotFound):
            raise error from exc
    return None


@activity("create_capture")
def create_capture(clients: Clients, inp: CreateCaptureInput) -> CaptureRef:
    """Create the capture; if one of this name exists (this run, before a crash) adopt it."""
    from azure.mgmt.network import models

    w = inp.watcher
    ops = _captures(clients, w)
    if not inp.put_first:
        adopted = _existing(ops, w, inp.name)
        if adopted is not None:
            return adopted
    o = inp.options
    storage = models.PacketCaptureStorageLocation(
        storage_id=inp.storage_account_id if o.to_storage else None,
        file_path=o.local_file_path)
    params = models.PacketCapture(properties=models.PacketCaptureParameters(
        target=inp.vm.id,
        target_type="AzureVMSS" if inp.vm.is_scale_set else "AzureVM",
        scope=models.PacketCaptureMachineScope(
            include=list(inp.scope.include) or None, exclude=list(inp.scope.exclude) or None)
        if inp.vm.is_scale_set and inp.scope is not None else None,
        bytes_to_capture_per_packet=o.bytes_per_packet,
        total_bytes_per_session=o.total_bytes,
        time_limit_in_seconds=o.time_limit_seconds,
        storage_location=storage,
        filters=[models.PacketCaptureFilter(
            protocol=f.protocol, local_ip_address=f.local_ip, remote_ip_address=f.remote_ip,
            local_port=f.local_port, remote_port=f.remote_port) for f in o.filters] or None,
    ))
    try:
        result = ops.begin_create(w.resource_group, w.name, inp.name, params).result()
    except Exception as exc:
        if inp.put_first and getattr(exc, "status_code", None) == 409:
            # PacketCaptureAlreadyExists: ours from an earlier attempt whose answer was
            # lost. Any other conflict leaves no capture of that name, and is reported.
            adopted = _existing(ops, w, inp.name)
            if adopted is not None:
                return adopted
            raise from_azure(exc, f"create capture {inp.name}") from exc
        error = from_azure(exc, f"create capture {inp.name}")
        # A failed create can leave a session behind: remove it so nothing half-made stays
        # (best effort; the create error is what the operator needs).
        with contextlib.suppress(Exception):
            ops.begin_delete(w.resource_group, w.name, inp.name).result()
        raise error from exc
    return _ref(w, result, adopted=False)


# --- get_capture_status and stop_capture ----------------------------------------------


@dataclass(frozen=True)
class CaptureStatusInput(Model):
    watcher: Watcher
    name: str


def _status(result: Any) -> CaptureStatus:
    started = result.capture_start_time
    return CaptureStatus(
        status=str(_value(result.packet_capture_status) or "Unknown"),
        stop_reason=result.stop_reason or None,
        errors=tuple(str(_value(e)) for e in (result.packet_capture_error or [])),
        started_at=started.isoformat().replace("+00:00", "Z") if started else None,
    )


@activity("get_capture_status")
def get_capture_status(clients: Clients, inp: CaptureStatusInput) -> CaptureStatus:
    """queryStatus; once the capture has ended, also where its file is."""
    w = inp.watcher
    ops = _captures(clients, w)
    status = _status(call_azure(f"query status of capture {inp.name}", lambda: ops.begin_get_status(
        w.resource_group, w.name, inp.name).result()))
    if status.status not in ("Stopped", "Error"):
        return status
    final = call_azure(f"read capture {inp.name}",
                       lambda: ops.get(w.resource_group, w.name, inp.name))
    return replace(status, storage_path=_ref(w, final, adopted=True).storage_path)


@dataclass(frozen=True)
class Deleted(Model):
    name: str
    existed: bool


@activity("delete_capture")
def delete_capture(clients: Clients, inp: CaptureStatusInput) -> Deleted:
    """Remove a capture of ours by name (stopping it); one that is not there is fine."""
    w = inp.watcher
    ops = _captures(clients, w)
    try:
        call_azure(f"delete capture {inp.name}",
               lambda: ops.begin_delete(w.resource_group, w.name, inp.name).result())
    except ResourceNotFound:
        return Deleted(inp.name, existed=False)
    return Deleted(inp.name, existed=True)


@activity("stop_capture")
def stop_capture(clients: Clients, inp: CaptureStatusInput) -> CaptureStatus:
    """Stop (stopping a stopped capture is fine) and report the final status."""
    w = inp.watcher
    ops = _captures(clients, w)
    call_azure(f"stop capture {inp.name}",
           lambda: ops.begin_stop(w.resource_group, w.name, inp.name).result())
    return get_capture_status(clients, inp)
