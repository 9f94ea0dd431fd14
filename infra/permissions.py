"""Which Azure RBAC permissions each Azure SDK call of the app needs, and where Azure checks them.

Boundary: deployment metadata, not app code. It lives in infra/ so it never ships in the
function app package (`make package` builds from an allow-list that excludes infra/), and
only tests/infra imports it. Pure Python, no Azure imports. It names every SDK operation
the app calls (as `<operation group>.<method>`, the way the code calls it:
`packet_captures.begin_create`, `blob.download_blob`, ...), the control-plane actions and
data actions Azure checks for it, and the *scope* where the check happens. It grants
nothing: infra/main.bicep and infra/azuredeploy.json do, and tests/infra checks that each
custom role holds exactly the actions derived here for its scope, that every SDK call found
under activities/ and alertcap/ is listed, and that nothing listed is unused.

Scopes (issue #18: split the role by what each scope needs, never the subscription):
- WATCHERS: the resource groups holding the Network Watchers (usually NetworkWatcherRG).
- VMS: the resource groups holding the VMs.
- AGENT: also the VMs' resource groups, but only when the deployment sets installAgent
  (virtualMachines/extensions/write lets its holder run code on every VM there).
- CAPTURE_STORAGE: the one capture storage account the deployment creates.
- a built-in role's name: that role, assigned on the one resource the call touches.

Sources: Network Watcher's "Azure RBAC permissions required to use Network Watcher"
(articles/network-watcher/required-rbac-permissions.md, sections "Packet capture" and
"Additional actions"), the built-in role definitions and the provider operations list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

WATCHERS = "watchers"
VMS = "vms"
AGENT = "agent"
CAPTURE_STORAGE = "capture-storage"
CUSTOM_SCOPES = (WATCHERS, VMS, AGENT, CAPTURE_STORAGE)

# Built-in roles by name -> role definition GUID (the same in every tenant and cloud).
BUILTIN_ROLES: dict[str, str] = {
    # actions: blobServices/containers/read, blobServices/generateUserDelegationKey/action;
    # data action: blobServices/containers/blobs/read. Covers both the summary (read the
    # .cap blob) and the read link (user delegation key), on the capture account only.
    "Storage Blob Data Reader": "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
    # data actions: blobServices/containers/blobs/read, write, delete. Only with standby
    # (issue #14): a harvest copies ring files out of rotation's reach in the capture account.
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    # The narrowest built-in role that lets an Entra identity send through an ACS resource
    # (narrower than Contributor). Equivalent custom actions: CommunicationServices/Read,
    # CommunicationServices/Write, EmailServices/Write.
    "Communication and Email Service Owner": "09976791-48a7-449e-bb21-39d1a415f350",
    # The host storage account's role (HOST_ROLES): the scheduled doctor keeps its state
    # (problems already notified) in a blob there.
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
}

# Roles the platform (not our code) needs: the Functions host on its own storage account
# with an identity-based AzureWebJobsStorage (deployment package and leases in blobs, the
# Durable task hub's queues and tables), and Application Insights with local auth off.
HOST_ROLES: dict[str, str] = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}

# Durable Task Scheduler (the optional backend): the app's identity runs the task hub; the
# operators named by the deployment read it in the scheduler's dashboard.
DURABLE_TASK_ROLES: dict[str, str] = {
    "Durable Task Data Contributor": "0ad04412-c4d5-4796-b79c-f76d14c8d402",
    "Durable Task Data Reader": "d6a5505f-6ebb-45a4-896e-ac8274cfc0ac",
}

_NW = "Microsoft.Network/networkWatchers"
_PC = f"{_NW}/packetCaptures"
_VM = "Microsoft.Compute/virtualMachines"
_SA = "Microsoft.Storage/storageAccounts"


@dataclass(frozen=True)
class Permission:
    operation: str
    # scope -> actions checked there (custom roles); empty for built-in-role operations
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    data_actions: tuple[str, ...] = ()
    granted_by: str = ""  # a built-in role's name, or "" for the custom roles
    why: str = ""


PERMISSIONS: dict[str, Permission] = {p.operation: p for p in (
    # --- Network Watcher (azure-mgmt-network) ------------------------------------------
    Permission("network_watchers.get", {WATCHERS: (f"{_NW}/read",)},
               why="resolve_watcher: the default-named watcher of the VM's region"),
    Permission("network_watchers.list_all", {WATCHERS: (f"{_NW}/read",)},
               why="resolve_watcher fallback and the orphan sweep; ARM filters the "
                   "subscription-wide list to the watchers the identity may read, i.e. "
                   "those in WATCHERS groups"),
    Permission("packet_captures.get", {WATCHERS: (f"{_PC}/read",)},
               why="create_capture adopts an existing capture; final status reads the file"),
    Permission("packet_captures.list", {WATCHERS: (f"{_PC}/read",)},
               why="clear_stale_capture, check_limit and the orphan sweep"),
    Permission("packet_captures.begin_create", {
        WATCHERS: (f"{_PC}/write",),
        # Network Watcher's "Additional actions": read the target VM and "log in to the
        # VM, do a packet capture and upload it" (virtualMachines/Write, as documented).
        VMS: (f"{_VM}/read", f"{_VM}/write"),
        # ... and fetch SAS for the storage account it writes the capture to.
        CAPTURE_STORAGE: (f"{_SA}/read", f"{_SA}/listKeys/action",
                          f"{_SA}/listServiceSas/action", f"{_SA}/listAccountSas/action"),
    }, why="create_capture"),
    Permission("packet_captures.begin_delete", {WATCHERS: (f"{_PC}/delete",)},
               why="clear_stale_capture; cleaning up a failed create; the orphan sweep"),
    Permission("packet_captures.begin_stop", {WATCHERS: (f"{_PC}/stop/action",)},
               why="stop_capture at the deadline; the orphan sweep stops a gone run's capture"),
    Permission("packet_captures.begin_get_status", {
        # The SDK POSTs .../queryStatus (the action); the docs' packet capture table also
        # lists queryStatus/read ("View the status"): read-only, so granted as documented.
        WATCHERS: (f"{_PC}/queryStatus/action", f"{_PC}/queryStatus/read"),
    }, why="get_capture_status (queryStatus) on every poll; the orphan sweep"),
    # --- VMs through the generic resources API (azure-mgmt-resource) -------------------
    Permission("resources.get_by_id", {VMS: (f"{_VM}/read", f"{_VM}/extensions/read")},
               why="read the VM: region, OS type, installed extensions"),
    Permission("resources.list_by_resource_group", {
        # The generic resource list of a group (GET .../resourceGroups/{g}/resources);
        # ARM shows only the VMs the caller may read.
        VMS: ("Microsoft.Resources/subscriptions/resourceGroups/resources/read",
              f"{_VM}/read"),
    }, why="find_standby_vms: the VMs tagged for standby in a listed resource group"),
    Permission("resources.begin_create_or_update_by_id", {
        # the long-running PUT ends with a GET of the extension
        AGENT: (f"{_VM}/extensions/write", f"{_VM}/extensions/read"),
    }, why="ensure_agent installs AzureNetworkWatcherExtension (installAgent only)"),
    # --- Blob storage (azure-storage-blob), capture account only -----------------------
    Permission("blob.download_blob", data_actions=(
        f"{_SA}/blobServices/containers/blobs/read",),
        granted_by="Storage Blob Data Reader", why="summarise_capture streams the .cap blob"),
    Permission("blob_service.get_user_delegation_key", data_actions=(),
               granted_by="Storage Blob Data Reader",
               why="read_link signs an expiring read-only user delegation SAS "
                   "(blobServices/generateUserDelegationKey/action)"),
    # --- standby rings (activities/standby.py), capture account only ---------------------
    Permission("capture_container.list_blobs", data_actions=(
        f"{_SA}/blobServices/containers/blobs/read",),
        granted_by="Storage Blob Data Reader",
        why="harvest_standby_ring lists the ring's files (closed-at times in their names)"),
    Permission("blob.get_blob_properties", data_actions=(
        f"{_SA}/blobServices/containers/blobs/read",),
        granted_by="Storage Blob Data Reader", why="harvest waits for each copy to finish"),
    Permission("blob.start_copy_from_url", data_actions=(
        f"{_SA}/blobServices/containers/blobs/write",),
        granted_by="Storage Blob Data Contributor",
        why="harvest copies ring files beside the run, out of rotation's reach (the source "
            "is read through a user delegation SAS)"),
    # --- the scheduled doctor's state (alertcap/doctor/schedule.py), host account only ---
    Permission("blob.upload_blob", data_actions=(
        f"{_SA}/blobServices/containers/blobs/write",),
        granted_by="Storage Blob Data Owner",
        why="the doctor's timer writes the problems it notified (ALERTCAP_DOCTOR_STATE_BLOB)"),
    Permission("blob_service.create_container", granted_by="Storage Blob Data Owner",
               why="the doctor's state container, made on first write "
                   "(blobServices/containers/write)"),
    # --- run records (activities/records.py), host account only -------------------------
    Permission("container.create_container", granted_by="Storage Blob Data Owner",
               why="save_run makes the run-record container on first write "
                   "(blobServices/containers/write)"),
    Permission("container.upload_blob", data_actions=(
        f"{_SA}/blobServices/containers/blobs/write",),
        granted_by="Storage Blob Data Owner",
        why="save_run keeps every finished run's result (ALERTCAP_RUNS_CONTAINER_URL)"),
    Permission("container.list_blobs", data_actions=(
        f"{_SA}/blobServices/containers/blobs/read",),
        granted_by="Storage Blob Data Owner", why="the run list reads the records"),
    Permission("container.download_blob", data_actions=(
        f"{_SA}/blobServices/containers/blobs/read",),
        granted_by="Storage Blob Data Owner", why="a run's record, for the run page"),
    # --- Email (azure-communication-email) ----------------------------------------------
    Permission("email.begin_send", granted_by="Communication and Email Service Owner",
               why="notify sends the email with the managed identity"),
)}

# Actions Network Watcher's page lists for packet capture that the roles deliberately leave
# out, and why (issue #18 asks: include them or say why not).
NOT_GRANTED: dict[str, str] = {
    "Microsoft.Authorization/*/read":
        "'Fetch Azure role assignments and policy definitions' is for the portal's checks; "
        "no API alertcap calls needs it, and it would let the identity read every role "
        "assignment and policy in the scopes.",
    "Microsoft.Resources/subscriptions/resourceGroups/read":
        "'Enumerate all the resource groups' is for the portal's pickers; alertcap never "
        "lists or reads resource groups (it addresses the watcher and VM by id).",
    "Microsoft.Compute/virtualMachineScaleSets/*":
        "scale-set captures are not deployed; add them with the code that calls them.",
    "Microsoft.Insights/alertRules/*": "classic alert rules; the template's deployer "
        "creates the metric alert, the app never does.",
    "Microsoft.Support/*": "support tickets from the portal; not an app concern.",
}


def custom_role_actions(scope: str, operations: Iterable[str] | None = None) -> list[str]:
    """The actions of the custom role for `scope`: the union over the operations, sorted.

    `operations` defaults to every listed operation; unknown names raise KeyError so a
    caller cannot silently ask for less than the code needs.
    """
    if scope not in CUSTOM_SCOPES:
        raise KeyError(scope)
    names = PERMISSIONS if operations is None else operations
    actions: set[str] = set()
    for name in names:
        actions.update(PERMISSIONS[name].actions.get(scope, ()))
    return sorted(actions)


def builtin_roles(operations: Iterable[str] | None = None) -> dict[str, str]:
    """Built-in roles (name -> GUID) the listed operations need besides the custom roles."""
    names = PERMISSIONS if operations is None else operations
    return {PERMISSIONS[n].granted_by: BUILTIN_ROLES[PERMISSIONS[n].granted_by]
            for n in names if PERMISSIONS[n].granted_by}
