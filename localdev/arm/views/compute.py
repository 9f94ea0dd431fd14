"""Microsoft.Compute views: VMs (with ``$expand=instanceView``), their extensions (list,
get, install, delete), scale sets with their instances and extension profile. Shapes
follow Compute's REST API: an extension carries ``publisher``, ``type``,
``typeHandlerVersion``, ``provisioningState``; the instance view lists each extension
with ``ProvisioningState/<state>`` statuses, so a caller can decide from the agent's
presence and state rather than from an error text."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import lro
from ..config import AGENT_PUBLISHER, AGENT_TYPES, AGENT_VERSION, ScaleSet, Vm
from ..errors import ArmError, bad_request, not_found
from ._common import read_json

if TYPE_CHECKING:
    from ..server import ArmServer

COMPUTE = "Microsoft.Compute"
VM_TYPE = "Microsoft.Compute/virtualMachines"
VMSS_TYPE = "Microsoft.Compute/virtualMachineScaleSets"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")


def _expand_instance_view(request: web.Request) -> bool:
    return "instanceview" in request.query.get("$expand", "").lower()


def _status(state: str) -> dict[str, Any]:
    failed = state.lower() == "failed"
    return {"code": f"ProvisioningState/{state.lower()}", "level": "Error" if failed else "Info",
            "displayStatus": f"Provisioning {state.lower()}", "time": _now()}


def extension_json(vm: Vm, state: str | None = None, parent_type: str = VM_TYPE,
                   instance_view: bool = False) -> dict[str, Any]:
    state = state or vm.agent_state
    props: dict[str, Any] = {
        "publisher": AGENT_PUBLISHER,
        "type": vm.agent_type,
        "typeHandlerVersion": vm.agent_version,
        "autoUpgradeMinorVersion": True,
        "provisioningState": state,
    }
    if instance_view:
        props["instanceView"] = extension_instance_view(vm)
    return {
        "id": f"{vm.id}/extensions/{vm.agent_name}",
        "name": vm.agent_name,
        "type": f"{parent_type}/extensions",
        "location": vm.location,
        "properties": props,
    }


def extension_instance_view(vm: Vm) -> dict[str, Any]:
    return {"name": vm.agent_name, "type": f"{AGENT_PUBLISHER}.{vm.agent_type}",
            "typeHandlerVersion": vm.agent_version, "statuses": [_status(vm.agent_state)]}


def _os_profile(name: str, os_type: str) -> dict[str, Any]:
    profile: dict[str, Any] = {"computerName": name, "adminUsername": "azureuser"}
    if os_type.lower() == "windows":
        profile["windowsConfiguration"] = {"provisionVMAgent": True}
    else:
        profile["linuxConfiguration"] = {"disablePasswordAuthentication": True,
                                         "provisionVMAgent": True}
    return profile


def vm_instance_view(vm: Vm) -> dict[str, Any]:
    view: dict[str, Any] = {
        "computerName": vm.name,
        "osName": "Windows Server 2022" if vm.os_type.lower() == "windows" else "ubuntu",
        "vmAgent": {"vmAgentVersion": "2.10.0.8", "statuses": [{
            "code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready",
            "message": "Guest Agent is running", "time": _now()}], "extensionHandlers": []},
        "statuses": [_status("Succeeded"), {"code": "PowerState/running", "level": "Info",
                                            "displayStatus": "VM running"}],
    }
    if vm.agent_installed:
        view["vmAgent"]["extensionHandlers"].append({
            "type": f"{AGENT_PUBLISHER}.{vm.agent_type}", "typeHandlerVersion": vm.agent_version,
            "status": {"code": "ProvisioningState/succeeded", "level": "Info",
                       "displayStatus": "Ready"}})
        view["extensions"] = [extension_instance_view(vm)]
    return view


def vm_json(srv: ArmServer, vm: Vm, instance_view: bool = False,
            parent: ScaleSet | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm.id)),
        "hardwareProfile": {"vmSize": "Standard_B2s"},
        "storageProfile": {"osDisk": {"osType": vm.os_type, "name": f"{vm.name}_OsDisk",
                                      "createOption": "FromImage"}},
        "osProfile": _os_profile(vm.name, vm.os_type),
        "networkProfile": {"networkInterfaces": [{
            "id": f"/subscriptions/{srv.config.subscription}/resourceGroups/"
                  f"{vm.resource_group}/providers/Microsoft.Network/networkInterfaces/"
                  f"{vm.name}-nic"}]},
        "provisioningState": "Succeeded",
    }
    if instance_view:
        props["instanceView"] = vm_instance_view(vm)
    body: dict[str, Any] = {"id": vm.id, "name": vm.name, "type": VM_TYPE,
                            "location": vm.location, "properties": props}
    if vm.tags:  # Compute leaves "tags" out of a VM that has none
        body["tags"] = dict(vm.tags)
    if parent is not None:
        body.update({"type": f"{VMSS_TYPE}/virtualMachines", "instanceId": vm.instance_id,
                     "sku": {"name": "Standard_B2s", "tier": "Standard"}})
        props["latestModelApplied"] = True
    body["resources"] = [extension_json(vm, parent_type=body["type"])] \
        if vm.agent_installed else []
    return body


def _vm(srv: ArmServer, p: dict[str, str]) -> Vm:
    vm = srv.config.vm_by_id(f"/subscriptions/{srv.config.subscription}/resourceGroups/"
                             f"{p['rg']}/providers/{VM_TYPE}/{p['vm']}")
    if vm is None:
        raise not_found(VM_TYPE, p["vm"], p["rg"])
    return vm


async def get_vm(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response(vm_json(srv, _vm(srv, p), _expand_instance_view(request)))


async def list_vms(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    """``GET .../resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines``: the
    group's VMs (scale-set instances are not listed here, as in Compute)."""
    rg = p["rg"].lower()
    return web.json_response({"value": [
        vm_json(srv, vm, _expand_instance_view(request)) for vm in srv.config.vms
        if vm.resource_group.lower() == rg]})


async def get_vm_instance_view(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response(vm_instance_view(_vm(srv, p)))


async def list_extensions(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vm = _vm(srv, p)
    value = [extension_json(vm, instance_view=_expand_instance_view(request))] \
        if vm.agent_installed else []
    return web.json_response({"value": value})


def _is_agent(vm: Vm, name: str) -> bool:
    return name.lower() == vm.agent_name.lower()


async def get_extension(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vm = _vm(srv, p)
    if not (_is_agent(vm, p["ext"]) and vm.agent_installed):
        raise not_found(f"{VM_TYPE}/extensions", f"{vm.name}/{p['ext']}", vm.resource_group)
    return web.json_response(extension_json(vm, instance_view=_expand_instance_view(request)))


async def delete_extension(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vm = _vm(srv, p)
    if not (_is_agent(vm, p["ext"]) and vm.agent_installed):
        return web.Response(status=204)
    vm.agent_installed = False
    return lro.accepted(srv, request, lro.done(200), namespace=COMPUTE, location=vm.location)


async def put_extension(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vm = _vm(srv, p)
    name = p["ext"]
    props = (await read_json(request)).get("properties") or {}
    if props.get("publisher") != AGENT_PUBLISHER or props.get("type") not in AGENT_TYPES.values():
        raise bad_request("InvalidParameter",
                          f"Only the {AGENT_PUBLISHER} agent extension can be installed locally.")
    wanted = props["type"]
    vm.agent_name = name

    async def install() -> tuple[int, object]:
        await asyncio.sleep(0.2)  # the guest agent takes a moment, even locally
        if wanted != vm.agent_type:
            # What Azure reports when e.g. the Windows agent is put on a Linux VM.
            raise ArmError(
                400, "VMExtensionHandlerNonTransientError",
                f"The handler for VM extension type '{AGENT_PUBLISHER}.{wanted}' has "
                f"reported terminal failure for VM extension '{name}'.")
        vm.agent_installed = True
        vm.agent_state, vm.agent_version = "Succeeded", AGENT_VERSION
        return 200, None

    created = extension_json(vm, "Creating")
    created["properties"]["type"] = wanted
    created["properties"]["typeHandlerVersion"] = AGENT_VERSION
    return lro.accepted(srv, request, install(), namespace=COMPUTE, location=vm.location,
                        header=lro.ASYNC_OPERATION, status=201, body=created)


# ---- scale sets ------------------------------------------------------------------------
def _vmss(srv: ArmServer, p: dict[str, str]) -> ScaleSet:
    vmss = srv.config.scale_set_by_id(f"/subscriptions/{srv.config.subscription}/resourceGroups/"
                                      f"{p['rg']}/providers/{VMSS_TYPE}/{p['vmss']}")
    if vmss is None:
        raise not_found(VMSS_TYPE, p["vmss"], p["rg"])
    return vmss


def _profile_extensions(vmss: ScaleSet) -> list[dict[str, Any]]:
    agent = vmss.agent
    if not agent.agent_installed:
        return []
    ext = extension_json(agent, parent_type=VMSS_TYPE)
    return [{"name": ext["name"], "id": ext["id"], "type": ext["type"],
             "properties": ext["properties"]}]


def scale_set_json(vmss: ScaleSet) -> dict[str, Any]:
    return {
        "id": vmss.id, "name": vmss.name, "type": VMSS_TYPE, "location": vmss.location,
        "sku": {"name": "Standard_B2s", "tier": "Standard", "capacity": len(vmss.instances)},
        "properties": {
            "uniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, vmss.id)),
            "orchestrationMode": "Uniform", "upgradePolicy": {"mode": "Manual"},
            "provisioningState": "Succeeded", "overprovision": False,
            "virtualMachineProfile": {
                "osProfile": {**_os_profile(vmss.name, vmss.os_type),
                              "computerNamePrefix": vmss.name},
                "storageProfile": {"osDisk": {"osType": vmss.os_type,
                                              "createOption": "FromImage"}},
                "extensionProfile": {"extensions": _profile_extensions(vmss)},
            },
        },
    }


async def get_scale_set(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response(scale_set_json(_vmss(srv, p)))


async def list_scale_set_extensions(srv: ArmServer, _r: web.Request, p: dict[str, str]
                                    ) -> web.Response:
    return web.json_response({"value": _profile_extensions(_vmss(srv, p))})


def _instance_json(srv: ArmServer, vmss: ScaleSet, vm: Vm, request: web.Request) -> dict:
    # An instance carries the scale set's agent state (the extension profile's).
    vm.agent_installed, vm.agent_state = vmss.agent.agent_installed, vmss.agent.agent_state
    vm.agent_version = vmss.agent.agent_version
    return vm_json(srv, vm, _expand_instance_view(request), parent=vmss)


async def list_instances(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vmss = _vmss(srv, p)
    return web.json_response(
        {"value": [_instance_json(srv, vmss, vm, request) for vm in vmss.instances]})


async def get_instance(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    vmss = _vmss(srv, p)
    vm = vmss.instance(p["iid"])
    if vm is None:
        raise not_found(f"{VMSS_TYPE}/virtualMachines", f"{vmss.name}/{p['iid']}",
                        vmss.resource_group)
    return web.json_response(_instance_json(srv, vmss, vm, request))
