"""The custom role holds exactly the actions the code needs.

The AST scan (tests/infra/sdk_calls.py) finds every Azure SDK operation called in
activities/*.py and alertcap/clients.py; alertcap/permissions.py maps each to RBAC actions;
both templates must grant exactly that. Adding an SDK call without updating the table and
the role fails here.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from alertcap import permissions
from tests.infra import sdk_calls, templates


def _operations() -> set[str]:
    found, unresolved = sdk_calls.scan()
    assert not unresolved, f"SDK calls whose receiver the scan cannot resolve: {unresolved}"
    return {c.operation for c in found}


def test_scan_finds_the_calls_we_know_of() -> None:
    # A floor, so a scan broken into finding nothing cannot pass the tests below.
    ops = _operations()
    assert {"packet_captures.begin_create", "network_watchers.get", "resources.get_by_id",
            "blob.download_blob", "blob_service.get_user_delegation_key",
            "email.begin_send"} <= ops


def test_every_sdk_call_has_a_permission_entry() -> None:
    missing = _operations() - permissions.PERMISSIONS.keys()
    assert not missing, f"add these to alertcap/permissions.py: {sorted(missing)}"


def test_no_permission_entry_without_a_call() -> None:
    stale = permissions.PERMISSIONS.keys() - _operations()
    assert not stale, f"alertcap/permissions.py grants for calls the code no longer makes: {stale}"


def test_arm_role_actions_equal_the_derived_set() -> None:
    wanted = permissions.custom_role_actions(_operations())
    role_defs = [r for r in templates.arm_resources(templates.arm())
                 if r["type"] == "Microsoft.Authorization/roleDefinitions"]
    assert len(role_defs) == 1
    # The role gets its actions from the main template's variable through the module parameter.
    assert role_defs[0]["properties"]["permissions"][0]["actions"] == "[parameters('actions')]"
    assert templates.arm()["variables"]["customRoleActions"] == wanted
    assert role_defs[0]["properties"]["permissions"][0]["notActions"] == []
    assert "dataActions" not in role_defs[0]["properties"]["permissions"][0]


def test_bicep_role_actions_equal_the_derived_set() -> None:
    text = templates.MAIN_BICEP.read_text()
    assert templates.bicep_string_array(text, "customRoleActions") == \
        permissions.custom_role_actions(_operations())
    assert "actions: customRoleActions" in text


def test_builtin_roles_assigned_are_exactly_the_ones_needed() -> None:
    wanted = set(permissions.builtin_roles(_operations()).values()) | set(
        permissions.HOST_ROLES.values())
    arm = templates.arm()
    variables = arm["variables"]
    guids = {v for v in variables.values() if isinstance(v, str) and len(v) == 36}
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
