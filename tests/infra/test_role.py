"""Each custom role holds exactly the actions the code needs at its scope.

The AST scan (tests/infra/sdk_calls.py) finds every Azure SDK operation called anywhere
under activities/ and alertcap/; infra/permissions.py maps each to RBAC actions per scope;
both templates must grant exactly that, role by role. Adding an SDK call without updating
the table and the roles fails here.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

from tests.infra import sdk_calls, templates


def _load_permissions() -> ModuleType:
    # infra/ is not a package and never ships: load the file by path.
    spec = importlib.util.spec_from_file_location("alertcap_infra_permissions",
                                                  templates.INFRA / "permissions.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


permissions = _load_permissions()
ROLE_VARS = {  # scope in permissions.py -> the template variable holding that role's actions
    permissions.WATCHERS: "watcherRoleActions",
    permissions.VMS: "vmRoleActions",
    permissions.AGENT: "agentRoleActions",
    permissions.CAPTURE_STORAGE: "storageRoleActions",
}


def _operations() -> set[str]:
    found, unresolved = sdk_calls.scan()
    assert not unresolved, f"SDK calls whose receiver the scan cannot resolve: {unresolved}"
    return {c.operation for c in found}


def test_permissions_module_is_not_in_the_app_package() -> None:
    root = templates.INFRA.parent
    assert not (root / "alertcap" / "permissions.py").exists()
    assert not any("permissions" in p.read_text() for p in sdk_calls.SCANNED
                   if "import" in p.read_text() and "infra" in p.read_text()), \
        "app code imports the deployment metadata"


def test_scan_covers_every_app_module_recursively() -> None:
    root = templates.INFRA.parent
    scanned = {p.relative_to(root).as_posix() for p in sdk_calls.SCANNED}
    assert "activities/network.py" in scanned
    assert any(s.startswith("alertcap/") and s.endswith("clients.py") for s in scanned)
    # nested packages too (alertcap/pcap/..., a future alertcap/sdk/clients.py)
    assert any(s.count("/") >= 2 for s in scanned)


def test_scan_finds_the_calls_we_know_of() -> None:
    # A floor, so a scan broken into finding nothing cannot pass the tests below.
    ops = _operations()
    assert {"packet_captures.begin_create", "network_watchers.get", "resources.get_by_id",
            "blob.download_blob", "blob_service.get_user_delegation_key",
            "email.begin_send"} <= ops


def test_every_sdk_call_has_a_permission_entry() -> None:
    missing = _operations() - permissions.PERMISSIONS.keys()
    assert not missing, f"add these to infra/permissions.py: {sorted(missing)}"


def test_no_permission_entry_without_a_call() -> None:
    stale = permissions.PERMISSIONS.keys() - _operations()
    assert not stale, f"infra/permissions.py grants for calls the code no longer makes: {stale}"


def test_arm_role_actions_equal_the_derived_sets() -> None:
    arm = templates.arm()
    for scope, var in ROLE_VARS.items():
        assert arm["variables"][var] == permissions.custom_role_actions(scope, _operations()), var
    role_defs = [r for r in templates.arm_resources(arm)
                 if r["type"] == "Microsoft.Authorization/roleDefinitions"]
    assert len(role_defs) == 3  # the role-definition module, deployed once per role
    for role in role_defs:
        perms = role["properties"]["permissions"][0]
        assert perms["actions"] == "[parameters('actions')]"
        assert perms["notActions"] == [] and "dataActions" not in perms


def test_bicep_role_actions_equal_the_derived_sets() -> None:
    text = templates.MAIN_BICEP.read_text()
    for scope, var in ROLE_VARS.items():
        assert templates.bicep_string_array(text, var) == \
            permissions.custom_role_actions(scope, _operations()), var
    assert "actions: installAgent ? union(vmRoleActions, agentRoleActions) : vmRoleActions" in text
    assert "actions: watcherRoleActions" in text and "actions: storageRoleActions" in text


def test_extension_write_is_only_in_the_agent_role() -> None:
    write = "Microsoft.Compute/virtualMachines/extensions/write"
    for scope in permissions.CUSTOM_SCOPES:
        assert (write in permissions.custom_role_actions(scope)) == (scope == permissions.AGENT)
    # storage actions only where the capture account is, Network Watcher actions only on watchers
    assert all(a.startswith("Microsoft.Storage/")
               for a in permissions.custom_role_actions(permissions.CAPTURE_STORAGE))
    assert all(a.startswith("Microsoft.Network/")
               for a in permissions.custom_role_actions(permissions.WATCHERS))


def test_documented_packet_capture_actions_are_granted_or_explained() -> None:
    # Network Watcher's RBAC page, "Packet capture" and the "Additional actions" it needs.
    documented = {
        "Microsoft.Network/networkWatchers/read",
        "Microsoft.Network/networkWatchers/packetCaptures/queryStatus/action",
        "Microsoft.Network/networkWatchers/packetCaptures/stop/action",
        "Microsoft.Network/networkWatchers/packetCaptures/read",
        "Microsoft.Network/networkWatchers/packetCaptures/write",
        "Microsoft.Network/networkWatchers/packetCaptures/delete",
        "Microsoft.Network/networkWatchers/packetCaptures/queryStatus/read",
        "Microsoft.Authorization/*/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Storage/storageAccounts/read",
        "Microsoft.Storage/storageAccounts/listServiceSas/action",
        "Microsoft.Storage/storageAccounts/listAccountSas/action",
        "Microsoft.Storage/storageAccounts/listKeys/action",
        "Microsoft.Compute/virtualMachines/read",
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Compute/virtualMachines/extensions/read",
        "Microsoft.Compute/virtualMachines/extensions/write",
    }
    granted = {a for s in permissions.CUSTOM_SCOPES for a in permissions.custom_role_actions(s)}
    unexplained = documented - granted - permissions.NOT_GRANTED.keys()
    assert not unexplained, unexplained
    assert all(len(why) > 40 for why in permissions.NOT_GRANTED.values())
    assert not granted & permissions.NOT_GRANTED.keys()


def test_builtin_roles_assigned_are_exactly_the_ones_needed() -> None:
    wanted = (set(permissions.builtin_roles(_operations()).values())
              | set(permissions.HOST_ROLES.values())
              | set(permissions.DURABLE_TASK_ROLES.values()))
    arm = templates.arm()
    variables = arm["variables"]
    guids = {v for k, v in variables.items() if isinstance(v, str) and len(v) == 36
             and k != "actionGroupsAppId"}
    guids |= set(variables["hostStorageRoles"])
    assert guids == wanted
    text = templates.MAIN_BICEP.read_text()
    for guid in wanted:
        assert f"'{guid}'" in text


def test_scan_flags_a_new_call_it_cannot_place(tmp_path: Path) -> None:
    src = tmp_path / "new_activity.py"
    src.write_text(textwrap.dedent("""
        def f(clients, w, thing):
            thing.begin_create_or_update(w.rg, w.name, {})
            clients.network(w.sub).packet_captures.begin_stop(w.rg, w.name, "x")
    """))
    found, unresolved = sdk_calls.scan([src])
    assert {c.operation for c in found} == {"packet_captures.begin_stop"}
    assert {c.operation for c in unresolved} == {"?.begin_create_or_update"}


def test_scan_follows_helpers_and_parameters(tmp_path: Path) -> None:
    src = tmp_path / "flow.py"
    src.write_text(textwrap.dedent("""
        def _ops(clients, w):
            return clients.network(w.sub).packet_captures

        def _kill(ops, name):
            ops.begin_delete("rg", "nw", name)

        def run(clients, w):
            ops = _ops(clients, w)
            _kill(ops, "n")
    """))
    found, _ = sdk_calls.scan([src])
    assert {c.operation for c in found} == {"packet_captures.begin_delete"}
