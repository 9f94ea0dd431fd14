"""Microsoft.Resources view: a resource group's generic resource list
(``GET .../resourceGroups/{rg}/resources``, azure-mgmt-resource ``resources.
list_by_resource_group``) with the ``$filter`` forms Resources documents and refuses.

Each item is a GenericResourceExpanded (``id``, ``name``, ``type``, ``location``, ``tags``
when the resource has any): the group's VMs (scale-set instances are not resources of the
group), scale sets, watchers and storage accounts. ``$filter`` takes ONE of
``resourceType``/``name``/``location``/``resourceGroup eq '...'``, or ``tagName eq '...'``
optionally ``and tagValue eq '...'``; as Resources documents (ResourcesListByResourceGroup
OptionalParams, "filter"), a tag filter leaves every resource's tags out of the answer, and
a combination Resources does not allow (e.g. a tag with resourceType:
Azure/azure-rest-api-specs issue 21324) or an unknown property is 400
``InvalidFilterInQueryString`` with Resources' message (azure-sdk-for-go issue 2480).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import ArmError, bad_request
from .compute import VM_TYPE, VMSS_TYPE
from .network import watcher_json
from .storage import STORAGE_TYPE

if TYPE_CHECKING:
    from ..server import ArmServer

_CLAUSE = re.compile(r"^\s*(\w+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)
_SINGLE = {"resourcetype": "type", "name": "name", "location": "location",
           "resourcegroup": "resourceGroup"}


def _group_resources(srv: ArmServer, rg: str) -> list[dict[str, Any]]:
    sub = srv.config.subscription
    out: list[dict[str, Any]] = []
    for vm in srv.config.vms:
        if vm.resource_group.lower() == rg:
            out.append({"id": vm.id, "name": vm.name, "type": VM_TYPE,
                        "location": vm.location, "resourceGroup": vm.resource_group,
                        "tags": dict(vm.tags)})
    for ss in srv.config.scale_sets:
        if ss.resource_group.lower() == rg:
            out.append({"id": ss.id, "name": ss.name, "type": VMSS_TYPE,
                        "location": ss.location, "resourceGroup": ss.resource_group, "tags": {}})
    for w in srv.config.watchers:
        if w.resource_group.lower() == rg and not w.hidden:
            out.append({"id": w.id, "name": w.name, "type": watcher_json(w)["type"],
                        "location": w.location, "resourceGroup": w.resource_group, "tags": {}})
    for account_id, acct in srv.config.storage_accounts.items():
        parts = account_id.strip("/").split("/")
        if parts[3].lower() == rg and parts[1].lower() == sub.lower():
            out.append({"id": account_id, "name": parts[-1], "type": STORAGE_TYPE,
                        "location": acct.get("location", "eastus"), "resourceGroup": parts[3],
                        "tags": {}})
    return out


def _invalid(text: str) -> ArmError:
    return bad_request("InvalidFilterInQueryString",
                       f"Invalid $filter '{text}' specified in the query string.")


def _matcher(text: str) -> tuple[Any, bool]:
    """(predicate over a resource, whether tags are shown) for a $filter, or 400."""
    clauses = [_CLAUSE.match(c) for c in re.split(r"\s+and\s+", text, flags=re.IGNORECASE)]
    if not all(clauses):
        raise _invalid(text)
    terms = [(m.group(1).lower(), m.group(2)) for m in clauses if m]
    keys = [k for k, _ in terms]
    if keys in (["tagname"], ["tagname", "tagvalue"]):
        name = terms[0][1].lower()
        value = terms[1][1] if len(terms) == 2 else None

        def tagged(r: dict[str, Any]) -> bool:
            tags = {k.lower(): v for k, v in r["tags"].items()}
            return name in tags and (value is None or tags[name] == value)
        return tagged, False
    if len(terms) == 1 and keys[0] in _SINGLE:
        field, wanted = _SINGLE[keys[0]], terms[0][1].lower()
        return (lambda r: str(r[field]).lower() == wanted), True
    raise _invalid(text)


async def list_by_resource_group(srv: ArmServer, request: web.Request, p: dict[str, str]
                                 ) -> web.Response:
    found = _group_resources(srv, p["rg"].lower())
    text = request.query.get("$filter")
    keep, show_tags = _matcher(text) if text else ((lambda _r: True), True)
    value = []
    for r in found:
        if not keep(r):
            continue
        item = {k: r[k] for k in ("id", "name", "type", "location")}
        if show_tags and r["tags"]:
            item["tags"] = r["tags"]
        value.append(item)
    return web.json_response({"value": value})
