"""``/_localdev/`` test doors of the local ARM (bearer token required like every call):

* ``faults``: GET, POST (a rule, see localdev.arm.faults), DELETE (clear all and restore
  every VM's agent and every hidden watcher);
* ``requests``: GET (recent method/path/status/timestamp), DELETE;
* ``latency``: GET, PUT ``{"milliseconds": 150}`` (added to every ARM call);
* ``permissions``: GET (current grants per scope), POST ``{"scope", "removeActions": [],
  "removeDataActions": []}`` (or ``"grant": {actions, notActions, dataActions,
  notDataActions}`` to replace the scope's grant), DELETE (back to the seed);
* ``storageAccounts/{name}``: PATCH ``{"allowSharedKeyAccess": false, "minimumTlsVersion":
  "TLS1_0", "sku": "Premium_LRS", "location": "westus", ...}``; ``storageAccounts``:
  DELETE (back to the config).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from ..errors import bad_request
from ._common import find_vm, read_json
from .authz import FIELDS

if TYPE_CHECKING:
    from ..server import ArmServer

STORAGE_FIELDS = {"allowSharedKeyAccess": bool, "minimumTlsVersion": str, "sku": str,
                  "location": str, "kind": str, "allowBlobPublicAccess": bool,
                  "publicNetworkAccess": str, "defaultAction": str}


async def list_faults(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    return web.json_response({"rules": srv.faults.describe()})


async def add_fault(srv: ArmServer, request: web.Request, _p: dict[str, str]) -> web.Response:
    spec = await read_json(request)
    try:
        rule = srv.faults.add(spec)
    except ValueError as exc:
        raise bad_request("InvalidFaultRule", str(exc)) from None
    kind = rule.spec["kind"]
    if kind == "agentMissing":
        find_vm(srv, str(rule.spec["vm"])).agent_installed = False
    elif kind == "agentState":
        vm = find_vm(srv, str(rule.spec["vm"]))
        vm.agent_state = str(rule.spec.get("provisioningState") or vm.agent_state)
        vm.agent_version = str(rule.spec.get("typeHandlerVersion") or vm.agent_version)
    elif kind == "watcherAbsent":
        hidden = [w for w in srv.config.watchers
                  if w.location.lower() == str(rule.spec["location"]).lower()]
        for w in hidden:
            w.hidden = True
    return web.json_response(rule.spec, status=201)


async def clear_faults(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    srv.faults.clear()
    for vm in srv.config.vms:
        vm.reset_agent()
    for vmss in srv.config.scale_sets:
        vmss.agent.reset_agent()
    for w in srv.config.watchers:
        w.hidden = False
    return web.Response(status=204)


async def list_requests(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    return web.json_response({"requests": list(srv.faults.log)})


async def clear_requests(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    srv.faults.log.clear()
    return web.Response(status=204)


async def get_latency(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    return web.json_response({"milliseconds": srv.latency_ms})


async def set_latency(srv: ArmServer, request: web.Request, _p: dict[str, str]) -> web.Response:
    ms = (await read_json(request)).get("milliseconds")
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= 60000:
        raise bad_request("InvalidLatency", "milliseconds must be a number from 0 to 60000.")
    srv.latency_ms = float(ms)
    return web.json_response({"milliseconds": srv.latency_ms})


async def list_permission_seeds(srv: ArmServer, _r: web.Request, _p: dict[str, str]
                                ) -> web.Response:
    return web.json_response({"grants": srv.permissions})


def _names(body: dict, key: str) -> list[str]:
    items = body.get(key) or []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise bad_request("InvalidPermissionChange", f"{key} must be a list of strings.")
    return items


async def change_permissions(srv: ArmServer, request: web.Request, _p: dict[str, str]
                             ) -> web.Response:
    body = await read_json(request)
    scope = body.get("scope")
    if not isinstance(scope, str) or not scope.lower().startswith("/subscriptions/"):
        raise bad_request("InvalidPermissionChange", "scope must be a resource scope.")
    grant = body.get("grant")
    if grant is not None:
        if not isinstance(grant, dict):
            raise bad_request("InvalidPermissionChange", "grant must be an object.")
        srv.permissions[scope] = {f: _names(grant, f) for f in FIELDS}
    else:
        remove = {"actions": _names(body, "removeActions"),
                  "dataActions": _names(body, "removeDataActions")}
        matched = False
        for grant_scope, current in srv.permissions.items():
            # Removing at a scope removes from every grant that applies there.
            if scope.lower().rstrip("/").startswith(grant_scope.lower().rstrip("/")):
                matched = True
                for field, names in remove.items():
                    lowered = {n.lower() for n in names}
                    current[field] = [a for a in current.get(field, [])
                                      if a.lower() not in lowered]
        if not matched:
            raise bad_request("InvalidPermissionChange", f"No grant applies at '{scope}'.")
    return web.json_response({"grants": srv.permissions})


async def reset_permissions(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    srv.permissions = copy.deepcopy(srv.config.permissions)
    return web.Response(status=204)


async def change_storage(srv: ArmServer, request: web.Request, p: dict[str, str]) -> web.Response:
    body = await read_json(request)
    account_id = next((a for a in srv.config.storage_accounts
                       if a.rstrip("/").rsplit("/", 1)[1].lower() == p["account"].lower()), None)
    if account_id is None:
        raise bad_request("InvalidStorageChange", f"Unknown storage account '{p['account']}'.")
    for key, value in body.items():
        kind = STORAGE_FIELDS.get(key)
        if kind is None or not isinstance(value, kind):
            raise bad_request("InvalidStorageChange",
                              f"'{key}' is not one of {sorted(STORAGE_FIELDS)} with its type.")
    srv.storage_overrides.setdefault(account_id.lower(), {}).update(body)
    return web.json_response(srv.storage_overrides[account_id.lower()])


async def reset_storage(srv: ArmServer, _r: web.Request, _p: dict[str, str]) -> web.Response:
    srv.storage_overrides.clear()
    return web.Response(status=204)
