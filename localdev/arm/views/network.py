"""Microsoft.Network views: network watchers and packet captures (VM and scale-set
targets), answering as Network Watcher does (NETWORK-WATCHER.md)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .. import bpf, lro
from ..captures import STOP_MANUAL, Capture, ScaleSetCapture, blob_name, blob_url, vm_local_path
from ..config import AGENT_PUBLISHER, Vm, Watcher
from ..errors import ArmError, bad_request, not_found
from ._common import read_json

if TYPE_CHECKING:
    from ..server import ArmServer, Session

MAX_TIME_LIMIT = 18000
DEFAULT_TOTAL_BYTES = 1073741824
MAX_UINT32 = 4294967295
# Agent missing at create time. Network Watcher's own code for this was not found in
# public material (REST specs carry no error examples; docs, azure-cli/-powershell and
# issues only say the extension is required), so this code is ours and callers should
# decide from the VM's extensions instead (views.compute serves them as Compute does).
AGENT_MISSING_CODE = "AzureNetworkWatcherExtensionNotInstalled"
NETWORK = "Microsoft.Network"
# continuousCapture / captureSettings first appear in the 2024-05-01 REST spec.
CONTINUOUS_API = "2024-05-01"
CAPTURE_SETTINGS = {  # field: (default, maximum), NETWORK-WATCHER.md
    "fileCount": (10, 10000),
    "fileSizeInBytes": (104857600, MAX_UINT32),
    "sessionTimeLimitInSeconds": (86400, 604800),
}


# ---- network watchers ----------------------------------------------------------------
def watcher_json(w: Watcher) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "type": "Microsoft.Network/networkWatchers",
        "location": w.location,
        "etag": f'W/"{uuid.uuid5(uuid.NAMESPACE_URL, w.id)}"',
        "properties": {"provisioningState": "Succeeded"},
    }


def _visible(srv: ArmServer) -> list[Watcher]:
    return [w for w in srv.config.watchers if not w.hidden]


def find_watcher(srv: ArmServer, rg: str, name: str) -> Watcher:
    for w in _visible(srv):
        if w.resource_group.lower() == rg.lower() and w.name.lower() == name.lower():
            return w
    raise not_found("Microsoft.Network/networkWatchers", name, rg)


async def list_all_watchers(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    return web.json_response({"value": [watcher_json(w) for w in _visible(srv)]})


async def list_watchers(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response({"value": [watcher_json(w) for w in _visible(srv)
                                        if w.resource_group.lower() == p["rg"].lower()]})


async def get_watcher(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response(watcher_json(find_watcher(srv, p["rg"], p["nw"])))


# ---- packet captures -----------------------------------------------------------------
def _key(w: Watcher, name: str) -> tuple[str, str, str]:
    return (w.resource_group.lower(), w.name.lower(), name.lower())


def _capture(srv: ArmServer, p: dict[str, str]) -> tuple[Watcher, Session]:
    w = find_watcher(srv, p["rg"], p["nw"])
    cap = srv.captures.get(_key(w, p["name"]))
    if cap is None:
        raise not_found("Microsoft.Network/networkWatchers/packetCaptures",
                        f"{w.name}/{p['name']}", w.resource_group)
    return w, cap


def capture_json(c: Session) -> dict[str, Any]:
    state = c.provisioning_state
    return {
        "name": c.name,
        "id": c.id,
        "etag": f'W/"{uuid.uuid5(uuid.NAMESPACE_URL, c.id + state)}"',
        "properties": {**c.properties, "provisioningState": state},
    }


async def list_captures(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    w = find_watcher(srv, p["rg"], p["nw"])
    prefix = _key(w, "")[:2]
    return web.json_response(
        {"value": [capture_json(c) for k, c in srv.captures.items() if k[:2] == prefix]})


async def get_capture(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    return web.json_response(capture_json(_capture(srv, p)[1]))


async def stop_capture(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    w, cap = _capture(srv, p)

    async def stop() -> tuple[int, object]:
        await cap.stop(STOP_MANUAL)
        return 200, None

    return lro.accepted(srv, request, stop(), namespace=NETWORK, location=w.location)


async def query_status(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    w, cap = _capture(srv, p)

    async def status() -> tuple[int, object]:
        return 200, cap.query_status()

    return lro.accepted(srv, request, status(), namespace=NETWORK, location=w.location)


async def delete_capture(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    w = find_watcher(srv, p["rg"], p["nw"])
    key = _key(w, p["name"])
    cap = srv.captures.get(key)
    if cap is None:
        return web.Response(status=204)  # ARM: deleting what is not there succeeds
    cap.provisioning_state = "Deleting"

    async def delete() -> tuple[int, object]:
        # Stops tcpdump if it still runs; the delivered blob is never deleted.
        await cap.stop(STOP_MANUAL)
        srv.captures.pop(key, None)
        return 204, None

    return lro.accepted(srv, request, delete(), namespace=NETWORK, location=w.location)


def _int_prop(props: dict, key: str, default: int, maximum: int) -> int:
    value = props.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise bad_request("InvalidRequestFormat",
                          f"Value of '{key}' must be an integer between 0 and {maximum}.")
    return value


def _continuous(request: web.Request, props: dict) -> dict | None:
    """The validated captureSettings of a continuous capture, or None."""
    fields = [f for f in ("continuousCapture", "captureSettings") if props.get(f) is not None]
    if fields and request.query.get("api-version", "") < CONTINUOUS_API:
        raise bad_request(
            "InvalidRequestFormat",
            f"Property '{fields[0]}' is not supported in api-version "
            f"'{request.query.get('api-version')}' (first in {CONTINUOUS_API}).")
    flag = props.get("continuousCapture")
    if flag is not None and not isinstance(flag, bool):
        raise bad_request("InvalidRequestFormat", "continuousCapture must be a boolean.")
    if not flag:
        return None
    raw = props.get("captureSettings") or {}
    if not isinstance(raw, dict):
        raise bad_request("InvalidRequestFormat", "captureSettings must be an object.")
    settings = {k: _int_prop(raw, k, default, maximum)
                for k, (default, maximum) in CAPTURE_SETTINGS.items()}
    storage = props.get("storageLocation") or {}
    if isinstance(storage, dict) and storage.get("filePath"):
        raise bad_request("InvalidRequestFormat",
                          "storageLocation.filePath is invalid if continuous capture is provided.")
    if not (isinstance(storage, dict) and storage.get("storageId")):
        raise bad_request("InvalidRequestFormat",
                          "A continuous capture needs storageLocation.storageId locally.")
    return settings


def _agent_ok(machine: Vm, label: str) -> None:
    if not machine.agent_installed:
        raise bad_request(
            AGENT_MISSING_CODE,
            f"The Network Watcher agent extension (AzureNetworkWatcherExtension, publisher "
            f"{AGENT_PUBLISHER}, type {machine.agent_type}) is not installed on {label} "
            f"'{machine.name}'.")
    if machine.agent_state.lower() == "failed":
        raise bad_request(
            AGENT_MISSING_CODE,
            f"The Network Watcher agent extension on {label} '{machine.name}' is in "
            "provisioning state Failed.")


def _targets(srv: ArmServer, props: dict, w: Watcher) -> tuple[str, str, list[Vm], dict | None]:
    """(target id, target type, machines to capture on, scope) of a create request."""
    target = props.get("target")
    if not isinstance(target, str) or not target:
        raise bad_request("InvalidRequestFormat", "Property 'target' is required.")
    target_type = props.get("targetType") or "AzureVM"
    scope = props.get("scope")
    if target_type == "AzureVM":
        vm = srv.config.vm_by_id(target)
        if vm is None:
            raise bad_request("InvalidTarget",
                              f"Target '{target}' is not a known virtual machine.")
        if isinstance(scope, dict) and (scope.get("include") or scope.get("exclude")):
            raise bad_request("InvalidPacketCaptureScope",
                              "A scope can only be given for targetType AzureVMSS.")
        if vm.location.lower() != w.location.lower():
            raise bad_request("InvalidTarget", f"Target VM is in '{vm.location}', network "
                                               f"watcher '{w.name}' in '{w.location}'.")
        _agent_ok(vm, "VM")
        return vm.id, "AzureVM", [vm], None
    if target_type != "AzureVMSS":
        raise bad_request("InvalidTargetType",
                          f"Target type '{target_type}' is not one of AzureVM, AzureVMSS.")
    vmss = srv.config.scale_set_by_id(target)
    if vmss is None:
        raise bad_request("InvalidTarget",
                          f"Target '{target}' is not a known virtual machine scale set.")
    location = vmss.location
    if location.lower() != w.location.lower():
        raise bad_request("InvalidTarget", f"Target is in '{location}', network watcher "
                                           f"'{w.name}' in '{w.location}'.")
    _agent_ok(vmss.agent, "virtual machine scale set")
    scope = scope or {}
    if not isinstance(scope, dict):
        raise bad_request("InvalidPacketCaptureScope", "scope must be an object.")
    lists = {}
    for key in ("include", "exclude"):
        items = scope.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise bad_request("InvalidPacketCaptureScope", f"scope.{key} must list instance ids.")
        unknown = [i for i in items if vmss.instance(i) is None]
        if unknown:
            raise bad_request(
                "InvalidPacketCaptureScope",
                f"Instance(s) {', '.join(unknown)} of scale set '{vmss.name}' do not exist.")
        lists[key] = items
    chosen = [vm for vm in vmss.instances
              if (not lists["include"] or vm.instance_id in lists["include"])
              and vm.instance_id not in lists["exclude"]]
    if not chosen:
        raise bad_request("InvalidPacketCaptureScope",
                          "The scope selects no instance of the scale set.")
    return vmss.id, "AzureVMSS", chosen, lists


async def create_capture(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    w = find_watcher(srv, p["rg"], p["nw"])
    name = p["name"]
    body = await read_json(request)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise bad_request("InvalidRequestFormat", "Property 'properties' is required.")
    key = _key(w, name)
    if key in srv.captures:
        raise ArmError(409, "PacketCaptureAlreadyExists",
                       f"Packet capture '{name}' already exists on '{w.name}'; delete it first.")
    target, target_type, machines, scope = _targets(srv, props, w)
    continuous = _continuous(request, props)
    time_limit = _int_prop(props, "timeLimitInSeconds", MAX_TIME_LIMIT, MAX_TIME_LIMIT)
    per_packet = _int_prop(props, "bytesToCapturePerPacket", 0, MAX_UINT32)
    total = _int_prop(props, "totalBytesPerSession", DEFAULT_TOTAL_BYTES, MAX_UINT32)
    try:
        filters = bpf.normalize(props.get("filters"))
    except bpf.FilterError as exc:
        raise bad_request("InvalidPacketCaptureFilter", str(exc)) from None
    storage = props.get("storageLocation")
    if not isinstance(storage, dict) or not (storage.get("storageId") or storage.get("filePath")):
        raise bad_request("InvalidRequestFormat",
                          "storageLocation needs a storageId and/or a filePath.")
    now = dt.datetime.now(dt.UTC)
    storage_out: dict[str, Any] = {}
    conn = None
    fault = srv.faults.take("captureError", name)
    if storage.get("storageId"):
        acct = srv.config.storage_by_id(storage["storageId"])
        if acct is None:
            raise bad_request("InvalidStorageId",
                              f"Storage account '{storage['storageId']}' not found.")
        conn = acct["connectionString"]
        overrides = srv.storage_overrides.get(str(storage["storageId"]).rstrip("/").lower(), {})
        if overrides.get("allowSharedKeyAccess") is False and fault is None:
            # Network Watcher writes captures with SAS: without shared keys the session
            # starts, then fails to deliver (NETWORK-WATCHER.md, prerequisites).
            fault = {"error": "StorageFailed", "afterSeconds": 0.5}
        storage_out["storageId"] = storage["storageId"]
        # A VM: the blob's URL. A scale set: the folder its instances' blobs go under.
        # One file: its blob's URL. Several (scale set, ring of files): their folder.
        storage_out["storagePath"] = (blob_url(conn, blob_name(target, now))
                                      if target_type == "AzureVM" and continuous is None
                                      else blob_url(conn, target.strip("/").lower()))
    fp = storage.get("filePath")
    if fp:
        if not isinstance(fp, str) or not fp.lower().endswith(".cap"):
            raise bad_request("InvalidFilePath", "filePath must name a .cap file.")
        storage_out["filePath"] = fp
    properties: dict[str, Any] = {
        "target": target,
        "targetType": target_type,
        "bytesToCapturePerPacket": per_packet,
        "totalBytesPerSession": total,
        "timeLimitInSeconds": time_limit,
        "storageLocation": storage_out,
        "filters": filters,
    }
    if scope is not None:
        properties["scope"] = scope
    if continuous is not None:
        properties["continuousCapture"] = True
        properties["captureSettings"] = continuous
    resource_id = f"{w.id}/packetCaptures/{name}"
    sessions = []
    for machine in machines:
        local_file = None
        if fp:
            try:
                local_file = vm_local_path(srv.state_dir, machine, fp)
            except ValueError as exc:
                raise bad_request("InvalidFilePath", str(exc)) from None
        sessions.append(Capture(
            resource_id=resource_id, name=name, subscription=srv.config.subscription,
            vm=machine, properties=properties, bpf=bpf.expression(filters),
            work_dir=srv.state_dir / "captures", connection_string=conn,
            blob=blob_name(machine.id, now) if conn else None, local_file=local_file,
            fault=fault, continuous=continuous))
    cap: Session = sessions[0] if target_type == "AzureVM" else ScaleSetCapture(
        resource_id=resource_id, name=name, properties=properties, sessions=sessions)
    srv.captures[key] = cap
    await cap.start()

    async def provisioned() -> tuple[int, object]:
        await cap.started.wait()
        return 200, None

    return lro.accepted(srv, request, provisioned(), namespace=NETWORK, location=w.location,
                        header=lro.ASYNC_OPERATION, status=201, body=capture_json(cap))
