"""Which RBAC actions a capture run needs on each scope, and how Azure matches them.

Boundary: pure data and pure matching, no I/O. The table is the app's own copy of what the
deployment's metadata derives for each custom role (that file never ships in the app
package); `tests/app/test_doctor.py` loads it by path and fails if the two drift.

Matching follows the ARM permissions API (`GET {scope}/providers/Microsoft.Authorization/
permissions`): every entry of its `value` is one role's permission block; an action is
allowed when some block's `actions` match it and the same block's `notActions` do not
(notActions subtract from their own block only, so another role can still grant it).
Patterns compare case-insensitively and `*` matches any run of characters, `/` included
(`Microsoft.Network/*`, `*/read`, `*`), as Azure's role definitions do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

# Scope kinds, as the deployment metadata names them.
WATCHERS = "watchers"
VMS = "vms"
AGENT = "agent"
CAPTURE_STORAGE = "capture-storage"

_NW = "Microsoft.Network/networkWatchers"
_PC = f"{_NW}/packetCaptures"
_VM = "Microsoft.Compute/virtualMachines"
_SA = "Microsoft.Storage/storageAccounts"

# Control-plane actions per scope: the custom roles (custom_role_actions(scope) there).
ACTIONS: dict[str, tuple[str, ...]] = {
    WATCHERS: (
        f"{_NW}/read",
        f"{_PC}/delete",
        f"{_PC}/queryStatus/action",
        f"{_PC}/queryStatus/read",
        f"{_PC}/read",
        f"{_PC}/stop/action",
        f"{_PC}/write",
    ),
    # resources/read: the standby sweep lists tagged VMs in a group (issue #14)
    VMS: (f"{_VM}/extensions/read", f"{_VM}/read", f"{_VM}/write",
          "Microsoft.Resources/subscriptions/resourceGroups/resources/read"),
    # Only when ALERTCAP_INSTALL_AGENT=true: the run installs the agent extension.
    AGENT: (f"{_VM}/extensions/read", f"{_VM}/extensions/write"),
    CAPTURE_STORAGE: (
        f"{_SA}/listAccountSas/action",
        f"{_SA}/listKeys/action",
        f"{_SA}/listServiceSas/action",
        f"{_SA}/read",
    ),
}

# What Storage Blob Data Reader gives on the capture account and the run uses: the data
# action to stream the .cap blob (summary), and the action behind the user delegation key
# that signs the read link. Only checked when the app reads blobs with its identity (no
# ALERTCAP_BLOB_CONNECTION_STRING).
BLOB_READER_ACTIONS: tuple[str, ...] = (f"{_SA}/blobServices/generateUserDelegationKey/action",)
BLOB_READER_DATA_ACTIONS: tuple[str, ...] = (f"{_SA}/blobServices/containers/blobs/read",)

# Which role to grant for a missing action, for the printed fix.
ROLE_HINT = {
    WATCHERS: "the alertcap custom role for Network Watcher (template: captureResourceGroupIds)",
    VMS: "the alertcap custom role for VMs (template: vmResourceIds' resource groups)",
    AGENT: "the alertcap agent role (template: installAgent=true)",
    CAPTURE_STORAGE: "the alertcap custom role for the capture storage account",
}


@lru_cache(maxsize=512)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in text.split("*")), re.IGNORECASE)


def matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).fullmatch(action) is not None


def _names(block: Mapping[str, Any], key: str) -> Sequence[str]:
    value = block.get(key) or []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def allowed(blocks: Iterable[Mapping[str, Any]], action: str, data: bool = False) -> bool:
    """Whether the permission blocks (the API's `value`) allow ACTION (a data action if
    DATA)."""
    grant, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    for block in blocks:
        if any(matches(p, action) for p in _names(block, grant)) and not any(
                matches(p, action) for p in _names(block, deny)):
            return True
    return False


def missing(blocks: Sequence[Mapping[str, Any]], actions: Iterable[str],
            data: bool = False) -> list[str]:
    return sorted({a for a in actions if not allowed(blocks, a, data)})
