"""The doctor's reads from Azure Resource Manager, through the app's `Clients` (the same
credential, endpoint and CA bundle a capture run uses): VMs, a resource group's VMs, the
region's watcher, its capture sessions, the capture storage account, and the caller's
effective permissions on a scope.

Boundary: read-only ARM calls returning plain dicts; errors leave as the alertcap error
tree (`from_azure`). No decisions here: `checks` decides.

Calls and the actions they need (all already in the custom roles, so the doctor asks for
nothing the runs do not): VM and VM list `virtualMachines/read` (+ `extensions/read` for
the extension list) at the VMs' groups; watcher get/list `networkWatchers/read`; capture
list `packetCaptures/read`; storage account GET `storageAccounts/read`. The permissions
API ("Gets all permissions the caller has") answers about the caller itself and needs no
role. The VM list and the permissions API go through the management client's
`send_request` (azure-mgmt-compute and azure-mgmt-authorization are not dependencies: two
GETs do not justify two packages in the deployed app).
"""

from __future__ import annotations

from typing import Any

from alertcap.errors import ResourceNotFound
from alertcap.sdk.clients import COMPUTE_API_VERSION, Clients
from alertcap.sdk.errors import call_azure, from_azure

AUTHORIZATION_API_VERSION = "2022-04-01"
STORAGE_API_VERSION = "2023-05-01"
DEFAULT_WATCHER_GROUP = "NetworkWatcherRG"
MAX_PAGES = 50  # a bound on nextLink chains: 50 pages of VMs or grants is plenty

def region_of(location: str) -> str:
    return location.replace(" ", "").lower()


def _plain(model: Any) -> dict[str, Any]:
    if isinstance(model, dict):
        return dict(model)
    as_dict = getattr(model, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(model)


class Arm:
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    def _subscription(self, resource_id: str) -> str:
        return resource_id.strip("/").split("/")[1]

    def _get_paged(self, subscription: str, url: str, what: str) -> list[dict[str, Any]]:
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest

        clients = self.clients
        client = clients.resources(subscription)
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if not next_url:
                break
            request = HttpRequest("GET", next_url)

            def send(req: Any = request) -> Any:
                response = client.send_request(req)
                if response.status_code >= 400:
                    raise HttpResponseError(response=response)
                return response.json()

            body = call_azure(what, send)
            items.extend(v for v in body.get("value") or [] if isinstance(v, dict))
            next_url = body.get("nextLink")
        return items

    def vm(self, vm_id: str) -> dict[str, Any]:
        name = vm_id.rstrip("/").rsplit("/", 1)[-1]
        clients = self.clients
        model = call_azure(f"read VM {name}", lambda: clients.resources(
            self._subscription(vm_id)).resources.get_by_id(vm_id, api_version=COMPUTE_API_VERSION))
        return _plain(model)

    def vms_in_group(self, group_id: str) -> list[dict[str, Any]]:
        url = (f"{group_id.rstrip('/')}/providers/Microsoft.Compute/virtualMachines"
               f"?api-version={COMPUTE_API_VERSION}")
        name = group_id.rstrip("/").rsplit("/", 1)[-1]
        return self._get_paged(self._subscription(group_id), url,
                               f"list the VMs of resource group {name}")

    def watcher(self, subscription: str, region: str) -> dict[str, Any] | None:
        """The region's watcher as a run finds it: the default name, then list_all."""
        clients = self.clients
        network = clients.network(subscription)
        name = f"NetworkWatcher_{region}"
        try:
            return _plain(network.network_watchers.get(DEFAULT_WATCHER_GROUP, name))
        except Exception as exc:
            error = from_azure(exc, f"read Network Watcher {name}")
            if not isinstance(error, ResourceNotFound):
                raise error from exc
        watchers = call_azure("list Network Watchers",
                          lambda: list(network.network_watchers.list_all()))
        for w in watchers:
            if region_of(str(w.location)) == region:
                return _plain(w)
        return None

    def capture_count(self, watcher_id: str) -> int:
        parts = watcher_id.strip("/").split("/")
        clients = self.clients
        ops = clients.network(parts[1]).packet_captures
        return len(call_azure("list packet captures", lambda: list(ops.list(parts[3], parts[7]))))

    def storage_account(self, account_id: str) -> dict[str, Any]:
        name = account_id.rstrip("/").rsplit("/", 1)[-1]
        clients = self.clients
        model = call_azure(f"read storage account {name}", lambda: clients.resources(
            self._subscription(account_id)).resources.get_by_id(
                account_id, api_version=STORAGE_API_VERSION))
        return _plain(model)

    def permissions(self, scope: str) -> list[dict[str, Any]]:
        url = (f"{scope.rstrip('/')}/providers/Microsoft.Authorization/permissions"
               f"?api-version={AUTHORIZATION_API_VERSION}")
        return self._get_paged(self._subscription(scope), url,
                               "read the identity's permissions")
