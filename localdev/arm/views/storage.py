"""Microsoft.Storage view: a storage account's properties as Storage answers a GET
(``allowSharedKeyAccess``, ``minimumTlsVersion``, ``primaryEndpoints``, ``sku``, ``kind``,
``location``), so a doctor can tell why Network Watcher could not write a capture. A test
door (views.doors) changes them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..errors import not_found

if TYPE_CHECKING:
    from ..server import ArmServer

STORAGE_TYPE = "Microsoft.Storage/storageAccounts"
SKU_TIERS = {"Standard": "Standard", "Premium": "Premium"}


def _blob_endpoint(connection_string: str) -> str:
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return parts.get("BlobEndpoint", "").rstrip("/") + "/"


def account_json(srv: ArmServer, account_id: str, acct: dict[str, Any]) -> dict[str, Any]:
    props = {**acct, **srv.storage_overrides.get(account_id.lower(), {})}
    name = account_id.rstrip("/").rsplit("/", 1)[1]
    sku = str(props.get("sku", "Standard_LRS"))
    blob = _blob_endpoint(str(props.get("connectionString", "")))
    return {
        "id": account_id, "name": name, "type": STORAGE_TYPE,
        "location": props.get("location", "eastus"),
        "kind": props.get("kind", "StorageV2"),
        "sku": {"name": sku, "tier": SKU_TIERS.get(sku.split("_", 1)[0], "Standard")},
        "tags": {},
        "properties": {
            "provisioningState": "Succeeded",
            "allowSharedKeyAccess": bool(props.get("allowSharedKeyAccess", True)),
            "minimumTlsVersion": props.get("minimumTlsVersion", "TLS1_2"),
            "allowBlobPublicAccess": bool(props.get("allowBlobPublicAccess", False)),
            "supportsHttpsTrafficOnly": True,
            "publicNetworkAccess": props.get("publicNetworkAccess", "Enabled"),
            "networkAcls": {"bypass": "AzureServices", "virtualNetworkRules": [],
                            "ipRules": [], "defaultAction": props.get("defaultAction", "Allow")},
            "primaryEndpoints": {"blob": blob},
            "primaryLocation": props.get("location", "eastus"),
            "statusOfPrimary": "available",
            "accessTier": "Hot",
        },
    }


async def get_account(srv: ArmServer, _r: web.Request, p: dict[str, str]) -> web.Response:
    wanted = (f"/subscriptions/{srv.config.subscription}/resourceGroups/{p['rg']}/providers/"
              f"{STORAGE_TYPE}/{p['account']}")
    for account_id, acct in srv.config.storage_accounts.items():
        if account_id.lower() == wanted.lower():
            return web.json_response(account_json(srv, account_id, acct))
    raise not_found(STORAGE_TYPE, p["account"], p["rg"])
