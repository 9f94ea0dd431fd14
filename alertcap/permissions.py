"""Which Azure RBAC permissions each Azure SDK call of the app needs.

Boundary: this module is data plus two small functions, pure Python, no Azure imports. It
names every SDK operation the app calls (as `<operation group>.<method>`, the way the code
calls it: `packet_captures.begin_create`, `blob.download_blob`, ...) and the control-plane
actions and data actions Azure checks for it. It does not grant anything: `infra/` does,
and `tests/infra/` checks that the template's custom role holds exactly
`custom_role_actions()`, that every SDK call found in `activities/` and
`alertcap/clients.py` is listed here, and that nothing listed here is unused.

Sources: Network Watcher's "Azure RBAC permissions required to use Network Watcher
capabilities" (packet capture section and its "additional actions"), the built-in role
definitions (Storage Blob Data Reader, Communication and Email Service Owner) and the
resource provider operations list.

Who grants what:
- CUSTOM_ROLE: the template's custom role, assigned where the VMs and Network Watchers
  live (the resource groups the deployer lists, or the subscription) and on the
  deployment's own resource group (where the capture storage account is).
- a built-in role's name: that role, assigned on the one resource the call touches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CUSTOM_ROLE = "custom"

# Built-in roles by name -> role definition GUID (the same in every tenant and cloud).
BUILTIN_ROLES: dict[str, str] = {
    # actions: blobServices/containers/read, blobServices/generateUserDelegationKey/action;
    # data action: blobServices/containers/blobs/read. Covers both the summary (read the
    # .cap blob) and the read link (user delegation key), on the capture account only.
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    # The narrowest built-in role that lets an Entra identity send through an ACS resource
    # (narrower than Contributor). Equivalent custom actions: CommunicationServices/Read,
    # CommunicationServices/Write, EmailServices/Write.
    "Communication and Email Service Owner": "09976791-48a7-449e-bb21-39d1a415f350",
}

# Roles the Functions host (not our code) needs on its own storage account with an
# identity-based AzureWebJobsStorage: deployment package and leases (blobs), the Durable
# task hub's control and work-item queues, and its history and instance tables.
HOST_ROLES: dict[str, str] = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
}

_NW = "Microsoft.Network/networkWatchers"
_PC = f"{_NW}/packetCaptures"
_VM = "Microsoft.Compute/virtualMachines"
_SA = "Microsoft.Storage/storageAccounts"


@dataclass(frozen=True)
class Permission:
    operation: str
    actions: tuple[str, ...]
    data_actions: tuple[str, ...] = ()
    granted_by: str = CUSTOM_ROLE
    why: str = ""


PERMISSIONS: dict[str, Permission] = {p.operation: p for p in (
    # --- Network Watcher (azure-mgmt-network) ------------------------------------------
    Permission("network_watchers.get", (f"{_NW}/read",),
               why="resolve_watcher: the default-named watcher of the VM's region"),
    Permission("network_watchers.list_all", (f"{_NW}/read",),
               why="resolve_watcher: fallback when the watcher has another name"),
    Permission("packet_captures.get", (f"{_PC}/read",),
               why="create_capture adopts an existing capture; final status reads the file"),
    Permission("packet_captures.list", (f"{_PC}/read",),
               why="clear_stale_capture and check_limit"),
    Permission("packet_captures.begin_create", (
        f"{_PC}/write",
        # Network Watcher checks the caller may reach the target VM and the storage
        # account it writes to (the doc's "additional actions" for packet capture):
        f"{_VM}/read", f"{_VM}/write",
        f"{_SA}/read", f"{_SA}/listKeys/action", f"{_SA}/listServiceSas/action",
        f"{_SA}/listAccountSas/action",
    ), why="create_capture"),
    Permission("packet_captures.begin_delete", (f"{_PC}/delete",),
               why="clear_stale_capture; cleaning up a failed create"),
    Permission("packet_captures.begin_stop", (f"{_PC}/stop/action",),
               why="stop_capture at the deadline"),
    Permission("packet_captures.begin_get_status", (f"{_PC}/queryStatus/action",),
               why="get_capture_status (queryStatus) on every poll"),
    # --- VMs through the generic resources API (azure-mgmt-resource) -------------------
    Permission("resources.get_by_id", (f"{_VM}/read",),
               why="read the VM: region, OS type, installed extensions"),
    Permission("resources.begin_create_or_update_by_id", (
        f"{_VM}/extensions/write",
        # the long-running PUT ends with a GET of the extension
        f"{_VM}/extensions/read",
    ), why="ensure_agent installs AzureNetworkWatcherExtension (ALERTCAP_INSTALL_AGENT)"),
    # --- Blob storage (azure-storage-blob), capture account only -----------------------
    Permission("blob.download_blob", (), (f"{_SA}/blobServices/containers/blobs/read",),
               granted_by="Storage Blob Data Reader",
               why="summarise_capture streams the .cap blob"),
    Permission("blob_service.get_user_delegation_key",
               (f"{_SA}/blobServices/generateUserDelegationKey/action",),
               granted_by="Storage Blob Data Reader",
               why="read_link signs an expiring read-only user delegation SAS"),
    # --- Email (azure-communication-email) ----------------------------------------------
    Permission("email.begin_send", (
        "Microsoft.Communication/CommunicationServices/Read",
        "Microsoft.Communication/CommunicationServices/Write",
        "Microsoft.Communication/EmailServices/Write",
    ), granted_by="Communication and Email Service Owner",
        why="notify sends the email with the managed identity"),
)}


def custom_role_actions(operations: Iterable[str] | None = None) -> list[str]:
    """The custom role's actions: the union over the operations it grants, sorted.

    `operations` defaults to every listed operation; unknown names raise KeyError so a
    caller cannot silently ask for less than the code needs.
    """
    names = PERMISSIONS if operations is None else operations
    actions: set[str] = set()
    for name in names:
        p = PERMISSIONS[name]
        if p.granted_by == CUSTOM_ROLE:
            actions.update(p.actions)
    return sorted(actions)


def builtin_roles(operations: Iterable[str] | None = None) -> dict[str, str]:
    """Built-in roles (name -> GUID) the listed operations need besides the custom role."""
    names = PERMISSIONS if operations is None else operations
    return {PERMISSIONS[n].granted_by: BUILTIN_ROLES[PERMISSIONS[n].granted_by]
            for n in names if PERMISSIONS[n].granted_by != CUSTOM_ROLE}
