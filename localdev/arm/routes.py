"""The local ARM's routing table: which view answers which method and path.

Paths match segment by segment, literals case-insensitively (ARM does); ``{name}``
captures one segment, a leading ``{scope*}`` captures any resource scope (permissions).
Captured ``sub`` and ``rg`` are checked here once for every route (SubscriptionNotFound,
ResourceGroupNotFound), ARM routes need ``api-version``, and a path that matches with
another method answers 405.

Boundary: dispatch only; the views answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import ArmError, bad_request
from .views import authz, compute, doors, network, operations, resources, storage

if TYPE_CHECKING:
    from .server import ArmServer

View = Callable[["ArmServer", web.Request, dict[str, str]], Awaitable[web.StreamResponse]]

SUB = "/subscriptions/{sub}"
RG = SUB + "/resourceGroups/{rg}"
NW = RG + "/providers/Microsoft.Network/networkWatchers/{nw}"
PC = NW + "/packetCaptures/{name}"
VM = RG + "/providers/Microsoft.Compute/virtualMachines/{vm}"
VMSS = RG + "/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}"

TABLE: list[tuple[str, str, View]] = [
    ("GET", SUB + "/providers/{ns}/locations/{loc}/operations/{op}", operations.status),
    ("GET", SUB + "/providers/{ns}/locations/{loc}/operationResults/{op}", operations.result),
    ("GET", SUB + "/providers/Microsoft.Network/networkWatchers", network.list_all_watchers),
    ("GET", RG + "/providers/Microsoft.Network/networkWatchers", network.list_watchers),
    ("GET", NW, network.get_watcher),
    ("GET", NW + "/packetCaptures", network.list_captures),
    ("PUT", PC, network.create_capture),
    ("GET", PC, network.get_capture),
    ("DELETE", PC, network.delete_capture),
    ("POST", PC + "/stop", network.stop_capture),
    ("POST", PC + "/queryStatus", network.query_status),
    ("GET", RG + "/resources", resources.list_by_resource_group),
    ("GET", RG + "/providers/Microsoft.Compute/virtualMachines", compute.list_vms),
    ("GET", VM, compute.get_vm),
    ("GET", VM + "/instanceView", compute.get_vm_instance_view),
    ("GET", VM + "/extensions", compute.list_extensions),
    ("GET", VM + "/extensions/{ext}", compute.get_extension),
    ("PUT", VM + "/extensions/{ext}", compute.put_extension),
    ("DELETE", VM + "/extensions/{ext}", compute.delete_extension),
    ("GET", VMSS, compute.get_scale_set),
    ("GET", VMSS + "/virtualMachines", compute.list_instances),
    ("GET", VMSS + "/virtualMachines/{iid}", compute.get_instance),
    ("GET", VMSS + "/extensions", compute.list_scale_set_extensions),
    ("GET", RG + "/providers/Microsoft.Storage/storageAccounts/{account}", storage.get_account),
    ("GET", "{scope*}/providers/Microsoft.Authorization/permissions", authz.list_permissions),
]

DOORS: list[tuple[str, str, View]] = [
    ("GET", "/_localdev/faults", doors.list_faults),
    ("POST", "/_localdev/faults", doors.add_fault),
    ("DELETE", "/_localdev/faults", doors.clear_faults),
    ("GET", "/_localdev/requests", doors.list_requests),
    ("DELETE", "/_localdev/requests", doors.clear_requests),
    ("GET", "/_localdev/latency", doors.get_latency),
    ("PUT", "/_localdev/latency", doors.set_latency),
    ("GET", "/_localdev/permissions", doors.list_permission_seeds),
    ("POST", "/_localdev/permissions", doors.change_permissions),
    ("DELETE", "/_localdev/permissions", doors.reset_permissions),
    ("PATCH", "/_localdev/storageAccounts/{account}", doors.change_storage),
    ("DELETE", "/_localdev/storageAccounts", doors.reset_storage),
]


@dataclass(frozen=True)
class Route:
    method: str
    scoped: bool  # leading {scope*}
    parts: tuple[str, ...]
    view: View

    @classmethod
    def parse(cls, method: str, pattern: str, view: View) -> Route:
        parts = [p for p in pattern.split("/") if p]
        scoped = parts[:1] == ["{scope*}"]
        return cls(method, scoped, tuple(parts[1:] if scoped else parts), view)

    def match(self, segs: list[str]) -> dict[str, str] | None:
        if self.scoped:
            if len(segs) < len(self.parts) + 2:  # a scope is at least /subscriptions/{s}
                return None
            head, segs = segs[: len(segs) - len(self.parts)], segs[len(segs) - len(self.parts):]
        elif len(segs) != len(self.parts):
            return None
        params: dict[str, str] = {}
        for pat, seg in zip(self.parts, segs, strict=True):
            if pat.startswith("{"):
                params[pat[1:-1]] = seg
            elif pat.lower() != seg.lower():
                return None
        if self.scoped:
            params["scope"] = "/" + "/".join(head)
        return params


class Router:
    def __init__(self, srv: ArmServer) -> None:
        self.srv = srv
        self.arm = [Route.parse(*r) for r in TABLE]
        self.doors = [Route.parse(*r) for r in DOORS]

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        segs = [s for s in request.path.split("/") if s]
        is_door = segs[:1] == ["_localdev"]
        if not is_door and "api-version" not in request.query:
            raise bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        allowed = False
        for route in self.doors if is_door else self.arm:
            params = route.match(segs)
            if params is None:
                continue
            if route.method != request.method:
                allowed = True
                continue
            if not is_door:
                self._check_scope(params)
            return await route.view(self.srv, request, params)
        if allowed:
            raise ArmError(405, "MethodNotAllowed", f"{request.method} is not supported here.")
        if is_door:
            raise ArmError(404, "NotFound", f"No local route '{request.path}'.")
        if len(segs) >= 2 and segs[0].lower() == "subscriptions":
            self._check_scope({"sub": segs[1]})
        raise ArmError(404, "InvalidResourceType", f"No route for '{request.path}'.")

    def _check_scope(self, params: dict[str, str]) -> None:
        config = self.srv.config
        if "scope" in params:
            parts = params["scope"].strip("/").split("/")
            if parts[0].lower() != "subscriptions":
                raise ArmError(400, "InvalidScope", f"Invalid scope '{params['scope']}'.")
            params.setdefault("sub", parts[1])
            if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
                params.setdefault("rg", parts[3])
        sub = params.get("sub")
        if sub is not None and sub.lower() != config.subscription.lower():
            raise ArmError(404, "SubscriptionNotFound",
                           f"The subscription '{sub}' could not be found.")
        rg = params.get("rg")
        if rg is not None and rg.lower() not in config.resource_groups():
            raise ArmError(404, "ResourceGroupNotFound",
                           f"Resource group '{rg}' could not be found.")
