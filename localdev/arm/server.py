"""The local ARM endpoint: HTTP routes for Network Watcher, packet captures, VMs.

Boundary: turns HTTPS requests from azure-mgmt-network / azure-mgmt-resource into
calls on the in-memory world (config.Config), capture sessions (captures.Capture) and
long-running operations (operations.Operations), answering with ARM's shapes, status
codes and LRO headers. Paths are matched case-insensitively, as ARM does.
Test-only routes live under ``/_localdev/`` and need the bearer token too.

Routes (all need ``Authorization: Bearer <token from /msi/token>``; ARM ones need
``api-version``):

* ``GET /subscriptions/{s}/providers/Microsoft.Network/networkWatchers`` (list_all)
* ``GET .../resourceGroups/{rg}/providers/Microsoft.Network/networkWatchers[/{nw}]``
* ``.../networkWatchers/{nw}/packetCaptures``: GET (list); ``/{name}``: PUT (201 +
  Azure-AsyncOperation + Retry-After), GET, DELETE (202 + Location, 204 if absent);
  ``/{name}/stop`` and ``/{name}/queryStatus``: POST (202 + Location)
* ``GET /subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}`` (async
  status) and ``.../operationResults/{id}`` (202 until done, then the final result)
* ``GET .../providers/Microsoft.Compute/virtualMachines/{vm}``;
  ``.../virtualMachines/{vm}/extensions/{name}``: GET, PUT (install agent), DELETE
* ``/_localdev/faults``: GET, POST (a rule, see faults.py), DELETE (clear all);
  ``/_localdev/requests``: GET (recent method/path/status/timestamp), DELETE
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from pathlib import Path

from aiohttp import web

from . import bpf
from .captures import STOP_MANUAL, Capture, blob_name, blob_url, vm_local_path
from .config import AGENT_PUBLISHER, AGENT_TYPES, AGENT_VERSION, Config, Vm, Watcher
from .errors import ArmError, bad_request, error_response
from .faults import DEFAULT_CODES, Faults
from .identity import TokenIssuer
from .operations import Operation, Operations

log = logging.getLogger("localdev.arm")

MAX_TIME_LIMIT = 18000
DEFAULT_TOTAL_BYTES = 1073741824
MAX_UINT32 = 4294967295
# Agent missing: Network Watcher's exact code was not found in public material; this
# one names the cause so that callers (and people) can act on it.
AGENT_MISSING_CODE = "AzureNetworkWatcherExtensionNotInstalled"


def _not_found(kind: str, name: str, rg: str) -> ArmError:
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


class ArmServer:
    def __init__(self, config: Config, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.tokens = TokenIssuer(config.identity_header)
        self.faults = Faults()
        self.ops = Operations()
        self.captures: dict[tuple[str, str, str], Capture] = {}

    # ---- application -------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log_mw, self._auth_mw, self._fault_mw])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, _app: web.Application) -> None:
        await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(c.shutdown() for c in self.captures.values()))

    @web.middleware
    async def _log_mw(self, request: web.Request, handler):
        try:
            response = await handler(request)
        except ArmError as err:
            response = err.response()
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason.replace(" ", ""), exc.reason)
        if not request.path.startswith("/_localdev/"):
            self.faults.record(request.method, request.path, response.status)
        # Never the query string or headers: they may carry secrets elsewhere.
        log.info("%s %s -> %s", request.method, request.path, response.status)
        return response

    @web.middleware
    async def _auth_mw(self, request: web.Request, handler):
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth:
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )
        if scheme.lower() != "bearer" or not self.tokens.valid(token.strip()):
            raise ArmError(
                401, "InvalidAuthenticationToken", "The access token is invalid or has expired."
            )
        return await handler(request)

    @web.middleware
    async def _fault_mw(self, request: web.Request, handler):
        if not request.path.startswith("/_localdev/"):
            rule = self.faults.match_http(request.method, request.path)
            if rule is not None:
                status = int(rule["status"])
                headers = {}
                if "retryAfter" in rule:
                    headers["Retry-After"] = str(rule["retryAfter"])
                code = rule.get("code") or DEFAULT_CODES.get(status, "InjectedFault")
                raise ArmError(status, code, f"Injected fault ({status}).", headers)
        return await handler(request)

    # ---- routing -------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        low = [s.lower() for s in segs]
        if low[:1] == ["_localdev"]:
            return await self._localdev(request, segs[1:])
        if "api-version" not in request.query:
            raise bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if len(segs) < 2 or low[0] != "subscriptions":
            raise ArmError(404, "InvalidResourceType", f"No route for '{request.path}'.")
        if segs[1].lower() != self.config.subscription.lower():
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{segs[1]}' could not be found."
            )
        rest, lrest = segs[2:], low[2:]
        m = request.method
        # /subscriptions/{s}/providers/{ns}/locations/{loc}/operations|operationResults/{id}
        if lrest[:1] == ["providers"] and len(rest) == 6 and lrest[2] == "locations":
            if lrest[4] == "operations" and m == "GET":
                return self._async_op_status(rest[5])
            if lrest[4] == "operationresults" and m == "GET":
                return self._location_result(request, rest[5])
        if lrest == ["providers", "microsoft.network", "networkwatchers"] and m == "GET":
            return web.json_response(
                {"value": [self._watcher_json(w) for w in self.config.watchers]}
            )
        if len(rest) >= 2 and lrest[0] == "resourcegroups":
            rg = rest[1]
            if rg.lower() not in self.config.resource_groups():
                raise ArmError(
                    404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
                )
            return await self._in_group(request, rg, rest[2:], lrest[2:])
        raise ArmError(404, "InvalidResourceType", f"No route for '{request.path}'.")

    async def _in_group(self, request: web.Request, rg: str, rest: list[str], low: list[str]):
        m = request.method
        if low[:2] == ["providers", "microsoft.network"] and low[2:3] == ["networkwatchers"]:
            if len(rest) == 3 and m == "GET":
                return web.json_response(
                    {
                        "value": [
                            self._watcher_json(w)
                            for w in self.config.watchers
                            if w.resource_group.lower() == rg.lower()
                        ]
                    }
                )
            if len(rest) < 4:
                raise ArmError(405, "MethodNotAllowed", "Unsupported method.")
            watcher = self._watcher(rg, rest[3])
            if len(rest) == 4 and m == "GET":
                return web.json_response(self._watcher_json(watcher))
            if len(rest) >= 5 and low[4] == "packetcaptures":
                return await self._captures(request, watcher, rest[5:], low[5:])
        if low[:3] == ["providers", "microsoft.compute", "virtualmachines"] and len(rest) >= 4:
            vm = self.config.vm_by_id(
                f"/subscriptions/{self.config.subscription}/resourceGroups/{rg}"
                f"/providers/Microsoft.Compute/virtualMachines/{rest[3]}"
            )
            if vm is None:
                raise _not_found("Microsoft.Compute/virtualMachines", rest[3], rg)
            if len(rest) == 4 and m == "GET":
                return web.json_response(self._vm_json(vm))
            if len(rest) == 6 and low[4] == "extensions":
                return await self._extension(request, vm, rest[5])
        raise ArmError(404, "InvalidResourceType", f"No route for '{request.path}'.")

    # ---- network watchers ------------------------------------------------------------
    def _watcher(self, rg: str, name: str) -> Watcher:
        for w in self.config.watchers:
            if w.resource_group.lower() == rg.lower() and w.name.lower() == name.lower():
                return w
        raise _not_found("Microsoft.Network/networkWatchers", name, rg)

    @staticmethod
    def _watcher_json(w: Watcher) -> dict:
        return {
            "id": w.id,
            "name": w.name,
            "type": "Microsoft.Network/networkWatchers",
            "location": w.location,
            "etag": f'W/"{uuid.uuid5(uuid.NAMESPACE_URL, w.id)}"',
            "properties": {"provisioningState": "Succeeded"},
        }

    # ---- LRO plumbing ---------------------------------------------------------------
    def _lro_headers(self, request: web.Request, op: Operation, location: str, header: str):
        base = f"https://{request.host}/subscriptions/{self.config.subscription}/providers"
        kind = "operations" if header == "Azure-AsyncOperation" else "operationResults"
        url = f"{base}/{location}/{kind}/{op.id}?api-version={request.query['api-version']}"
        # Always sent, as ARM does; azure-core prefers it over polling_interval unless 0.
        return {header: url, "Retry-After": str(self.config.lro_retry_after)}

    def _async_op_status(self, op_id: str) -> web.Response:
        op = self.ops.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation '{op_id}' was not found.")
        body: dict = {"name": op.id, "status": op.status}
        if op.error:
            body["error"] = op.error
        return web.json_response(body)

    def _location_result(self, request: web.Request, op_id: str) -> web.Response:
        op = self.ops.get(op_id)
        if op is None:
            raise ArmError(404, "OperationNotFound", f"Operation '{op_id}' was not found.")
        if not op.done.is_set():
            headers = {
                "Location": str(request.url),
                "Retry-After": str(self.config.lro_retry_after),
            }
            return web.Response(status=202, headers=headers)
        if op.error:
            return error_response(
                500 if op.error["code"] == "InternalServerError" else 400,
                op.error["code"],
                op.error["message"],
            )
        if op.final_body is None:
            return web.Response(status=op.final_status)
        return web.json_response(op.final_body, status=op.final_status)

    # ---- packet captures ---------------------------------------------------------------
    def _key(self, w: Watcher, name: str) -> tuple[str, str, str]:
        return (w.resource_group.lower(), w.name.lower(), name.lower())

    def _capture(self, w: Watcher, name: str) -> Capture:
        cap = self.captures.get(self._key(w, name))
        if cap is None:
            raise _not_found(
                "Microsoft.Network/networkWatchers/packetCaptures",
                f"{w.name}/{name}",
                w.resource_group,
            )
        return cap

    @staticmethod
    def _capture_json(c: Capture) -> dict:
        props = {**c.properties, "provisioningState": c.provisioning_state}
        return {
            "name": c.name,
            "id": c.id,
            "etag": f'W/"{uuid.uuid5(uuid.NAMESPACE_URL, c.id + c.provisioning_state)}"',
            "properties": props,
        }

    async def _captures(self, request: web.Request, w: Watcher, rest: list[str], low: list[str]):
        m = request.method
        if not rest and m == "GET":
            caps = [c for k, c in self.captures.items() if k[:2] == self._key(w, "")[:2]]
            return web.json_response({"value": [self._capture_json(c) for c in caps]})
        if len(rest) == 1 and m == "PUT":
            return await self._create_capture(request, w, rest[0])
        if len(rest) == 1 and m == "GET":
            return web.json_response(self._capture_json(self._capture(w, rest[0])))
        if len(rest) == 1 and m == "DELETE":
            return self._delete_capture(request, w, rest[0])
        if len(rest) == 2 and m == "POST" and low[1] == "stop":
            cap = self._capture(w, rest[0])

            async def stop() -> tuple[int, object]:
                await cap.stop(STOP_MANUAL)
                return 200, None

            op = self.ops.start(stop())
            return web.Response(
                status=202,
                headers=self._lro_headers(
                    request, op, f"Microsoft.Network/locations/{w.location}", "Location"
                ),
            )
        if len(rest) == 2 and m == "POST" and low[1] == "querystatus":
            cap = self._capture(w, rest[0])

            async def status() -> tuple[int, object]:
                return 200, cap.query_status()

            op = self.ops.start(status())
            return web.Response(
                status=202,
                headers=self._lro_headers(
                    request, op, f"Microsoft.Network/locations/{w.location}", "Location"
                ),
            )
        raise ArmError(405, "MethodNotAllowed", f"{m} is not supported here.")

    def _delete_capture(self, request: web.Request, w: Watcher, name: str) -> web.Response:
        key = self._key(w, name)
        cap = self.captures.get(key)
        if cap is None:
            return web.Response(status=204)  # ARM: deleting what is not there succeeds
        cap.provisioning_state = "Deleting"

        async def delete() -> tuple[int, object]:
            # Stops tcpdump if it still runs; the delivered blob is never deleted.
            await cap.stop(STOP_MANUAL)
            self.captures.pop(key, None)
            return 204, None

        op = self.ops.start(delete())
        return web.Response(
            status=202,
            headers=self._lro_headers(
                request, op, f"Microsoft.Network/locations/{w.location}", "Location"
            ),
        )

    async def _read_json(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise bad_request(
                "InvalidRequestContent", "The request content is not valid JSON."
            ) from None
        if not isinstance(body, dict):
            raise bad_request("InvalidRequestContent", "The request content must be an object.")
        return body

    @staticmethod
    def _int_prop(props: dict, key: str, default: int, maximum: int) -> int:
        value = props.get(key, default)
        if value is None:
            value = default
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise bad_request(
                "InvalidRequestFormat",
                f"Value of '{key}' must be an integer between 0 and {maximum}.",
            )
        return value

    async def _create_capture(self, request: web.Request, w: Watcher, name: str) -> web.Response:
        body = await self._read_json(request)
        props = body.get("properties")
        if not isinstance(props, dict):
            raise bad_request("InvalidRequestFormat", "Property 'properties' is required.")
        key = self._key(w, name)
        if key in self.captures:
            raise ArmError(
                409,
                "PacketCaptureAlreadyExists",
                f"Packet capture '{name}' already exists on '{w.name}'; delete it first.",
            )
        target = props.get("target")
        if not isinstance(target, str) or not target:
            raise bad_request("InvalidRequestFormat", "Property 'target' is required.")
        target_type = props.get("targetType") or "AzureVM"
        if target_type != "AzureVM":
            raise bad_request(
                "InvalidTargetType", f"Target type '{target_type}' is not supported locally."
            )
        vm = self.config.vm_by_id(target)
        if vm is None:
            raise bad_request("InvalidTarget", f"Target '{target}' is not a known virtual machine.")
        if vm.location.lower() != w.location.lower():
            raise bad_request(
                "InvalidTarget",
                f"Target VM is in '{vm.location}', network watcher '{w.name}' in '{w.location}'.",
            )
        if not vm.agent_installed:
            raise bad_request(
                AGENT_MISSING_CODE,
                f"The Network Watcher agent extension (AzureNetworkWatcherExtension, publisher "
                f"{AGENT_PUBLISHER}, type {vm.agent_type}) is not installed on VM '{vm.name}'.",
            )
        time_limit = self._int_prop(props, "timeLimitInSeconds", MAX_TIME_LIMIT, MAX_TIME_LIMIT)
        per_packet = self._int_prop(props, "bytesToCapturePerPacket", 0, MAX_UINT32)
        total = self._int_prop(props, "totalBytesPerSession", DEFAULT_TOTAL_BYTES, MAX_UINT32)
        try:
            filters = bpf.normalize(props.get("filters"))
        except bpf.FilterError as exc:
            raise bad_request("InvalidPacketCaptureFilter", str(exc)) from None
        storage = props.get("storageLocation")
        if not isinstance(storage, dict) or not (
            storage.get("storageId") or storage.get("filePath")
        ):
            raise bad_request(
                "InvalidRequestFormat", "storageLocation needs a storageId and/or a filePath."
            )
        now = dt.datetime.now(dt.UTC)
        storage_out: dict = {}
        conn = blob = None
        if storage.get("storageId"):
            acct = self.config.storage_by_id(storage["storageId"])
            if acct is None:
                raise bad_request(
                    "InvalidStorageId", f"Storage account '{storage['storageId']}' not found."
                )
            conn = acct["connectionString"]
            blob = blob_name(self.config.subscription, vm, now)
            storage_out["storageId"] = storage["storageId"]
            storage_out["storagePath"] = blob_url(conn, blob)
        local_file = None
        if storage.get("filePath"):
            fp = storage["filePath"]
            if not isinstance(fp, str) or not fp.lower().endswith(".cap"):
                raise bad_request("InvalidFilePath", "filePath must name a .cap file.")
            try:
                local_file = vm_local_path(self.state_dir, vm, fp)
            except ValueError as exc:
                raise bad_request("InvalidFilePath", str(exc)) from None
            storage_out["filePath"] = fp
        properties = {
            "target": vm.id,
            "targetType": "AzureVM",
            "bytesToCapturePerPacket": per_packet,
            "totalBytesPerSession": total,
            "timeLimitInSeconds": time_limit,
            "storageLocation": storage_out,
            "filters": filters,
        }
        cap = Capture(
            resource_id=f"{w.id}/packetCaptures/{name}",
            name=name,
            subscription=self.config.subscription,
            vm=vm,
            properties=properties,
            bpf=bpf.expression(filters),
            work_dir=self.state_dir / "captures",
            connection_string=conn,
            blob=blob,
            local_file=local_file,
            fault=self.faults.take("captureError", name),
        )
        self.captures[key] = cap
        await cap.start()

        async def provisioned() -> tuple[int, object]:
            await cap.started.wait()
            return 200, None

        op = self.ops.start(provisioned())
        headers = self._lro_headers(
            request, op, f"Microsoft.Network/locations/{w.location}", "Azure-AsyncOperation"
        )
        return web.json_response(self._capture_json(cap), status=201, headers=headers)

    # ---- virtual machines and the agent extension ------------------------------------------
    def _extension_json(self, vm: Vm, state: str = "Succeeded") -> dict:
        return {
            "id": f"{vm.id}/extensions/{vm.agent_name}",
            "name": vm.agent_name,
            "type": "Microsoft.Compute/virtualMachines/extensions",
            "location": vm.location,
            "properties": {
                "publisher": AGENT_PUBLISHER,
                "type": vm.agent_type,
                "typeHandlerVersion": AGENT_VERSION,
                "autoUpgradeMinorVersion": True,
                "provisioningState": state,
            },
        }

    def _vm_json(self, vm: Vm) -> dict:
        os_profile: dict = {"computerName": vm.name, "adminUsername": "azureuser"}
        if vm.os_type.lower() == "windows":
            os_profile["windowsConfiguration"] = {"provisionVMAgent": True}
        else:
            os_profile["linuxConfiguration"] = {
                "disablePasswordAuthentication": True,
                "provisionVMAgent": True,
            }
        return {
            "id": vm.id,
            "name": vm.name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": vm.location,
            "properties": {
                "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm.id)),
                "hardwareProfile": {"vmSize": "Standard_B2s"},
                "storageProfile": {
                    "osDisk": {
                        "osType": vm.os_type,
                        "name": f"{vm.name}_OsDisk",
                        "createOption": "FromImage",
                    }
                },
                "osProfile": os_profile,
                "networkProfile": {
                    "networkInterfaces": [
                        {
                            "id": f"/subscriptions/{self.config.subscription}/resourceGroups/"
                            f"{vm.resource_group}/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic"
                        }
                    ]
                },
                "provisioningState": "Succeeded",
            },
            "resources": [self._extension_json(vm)] if vm.agent_installed else [],
        }

    async def _extension(self, request: web.Request, vm: Vm, name: str) -> web.Response:
        m = request.method
        is_agent = name.lower() == vm.agent_name.lower()
        if m == "GET":
            if not (is_agent and vm.agent_installed):
                raise _not_found(
                    "Microsoft.Compute/virtualMachines/extensions",
                    f"{vm.name}/{name}",
                    vm.resource_group,
                )
            return web.json_response(self._extension_json(vm))
        if m == "PUT":
            return await self._install_agent(request, vm, name)
        if m == "DELETE":
            if not (is_agent and vm.agent_installed):
                return web.Response(status=204)
            vm.agent_installed = False
            op = self.ops.start(_done(200, None))
            return web.Response(
                status=202,
                headers=self._lro_headers(
                    request, op, f"Microsoft.Compute/locations/{vm.location}", "Location"
                ),
            )
        raise ArmError(405, "MethodNotAllowed", f"{m} is not supported here.")

    async def _install_agent(self, request: web.Request, vm: Vm, name: str) -> web.Response:
        body = await self._read_json(request)
        props = body.get("properties") or {}
        if (
            props.get("publisher") != AGENT_PUBLISHER
            or props.get("type") not in AGENT_TYPES.values()
        ):
            raise bad_request(
                "InvalidParameter",
                f"Only the {AGENT_PUBLISHER} agent extension can be installed locally.",
            )
        wanted = props["type"]
        vm.agent_name = name

        async def install() -> tuple[int, object]:
            await asyncio.sleep(0.2)  # the guest agent takes a moment, even locally
            if wanted != vm.agent_type:
                # What Azure reports when e.g. the Windows agent is put on a Linux VM.
                raise ArmError(
                    400,
                    "VMExtensionHandlerNonTransientError",
                    f"The handler for VM extension type '{AGENT_PUBLISHER}.{wanted}' has "
                    f"reported terminal failure for VM extension '{name}'.",
                )
            vm.agent_installed = True
            return 200, None

        op = self.ops.start(install())
        headers = self._lro_headers(
            request, op, f"Microsoft.Compute/locations/{vm.location}", "Azure-AsyncOperation"
        )
        created = self._extension_json(vm, "Creating")
        created["properties"]["type"] = wanted
        return web.json_response(created, status=201, headers=headers)

    # ---- /_localdev ------------------------------------------------------------------
    async def _localdev(self, request: web.Request, rest: list[str]) -> web.Response:
        m, route = request.method, "/".join(rest)
        if route == "faults" and m == "GET":
            return web.json_response({"rules": self.faults.describe()})
        if route == "faults" and m == "POST":
            spec = await self._read_json(request)
            try:
                rule = self.faults.add(spec)
            except ValueError as exc:
                raise bad_request("InvalidFaultRule", str(exc)) from None
            if rule.spec["kind"] == "agentMissing":
                vm = self._find_vm(str(rule.spec["vm"]))
                vm.agent_installed = False
            return web.json_response(rule.spec, status=201)
        if route == "faults" and m == "DELETE":
            self.faults.clear()
            for vm in self.config.vms:
                vm.agent_installed = vm.configured_agent
            return web.Response(status=204)
        if route == "requests" and m == "GET":
            return web.json_response({"requests": list(self.faults.log)})
        if route == "requests" and m == "DELETE":
            self.faults.log.clear()
            return web.Response(status=204)
        raise ArmError(404, "NotFound", f"No local route '{request.path}'.")

    def _find_vm(self, ref: str) -> Vm:
        for vm in self.config.vms:
            if ref.lower() in (vm.name.lower(), vm.id.lower()):
                return vm
        raise bad_request("InvalidFaultRule", f"Unknown VM '{ref}'.")


async def _done(status: int, body: object) -> tuple[int, object]:
    return status, body
