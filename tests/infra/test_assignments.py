"""What the deployment would assign, for many parameter combinations (issue #18 points 1, 2, 8).

tests/infra/arm_eval.py expands infra/azuredeploy.json (conditions, copy loops, nested
deployments at their own scopes) into the role assignments and role definitions ARM would
create. For every combination hypothesis draws (derandomized, so every run checks the same
ones): no two assignments of one role to one principal on one scope (ARM answers the second
with RoleAssignmentExists), none on a subscription, extension write only with installAgent,
and each custom role assigned only inside its assignable scopes.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.infra import arm_eval, templates

SUB, OTHER_SUB = "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
APP_RG = "alertcap-rg"
EXTENSION_WRITE = "Microsoft.Compute/virtualMachines/extensions/write"


def _rg(sub: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{name}"


# Resource groups a deployer may list, the app's own among them, in the casings people type.
GROUPS = [_rg(SUB, APP_RG), _rg(SUB, "ALERTCAP-RG"), _rg(SUB, "NetworkWatcherRG"),
          _rg(SUB, "networkwatcherrg"), _rg(SUB, "vms-rg"), _rg(OTHER_SUB, "vms-rg"),
          _rg(OTHER_SUB, "NetworkWatcherRG")]
group_lists = st.lists(st.sampled_from(GROUPS), min_size=1, max_size=6)
parameters = st.fixed_dictionaries({
    "vmLocation": st.sampled_from(["westeurope", "northeurope"]),
    "emailRecipients": st.just("oncall@example.com"),
    "watcherResourceGroupIds": group_lists,
    "vmResourceGroupIds": group_lists,
    "installAgent": st.booleans(),
    "deployAlerting": st.booleans(),
    "webhookAuth": st.sampled_from(["entra", "functionKey"]),
    "durableBackend": st.sampled_from(["azureStorage", "durableTaskScheduler"]),
    "operatorPrincipalIds": st.lists(st.sampled_from(["op-1", "op-2"]), max_size=3),
    "vmResourceIds": st.lists(st.just(f"{_rg(SUB, 'vms-rg')}/providers/Microsoft.Compute/"
                                      "virtualMachines/web1"), max_size=1),
})


def _problems(expansion: arm_eval.Expansion, params: dict[str, Any]) -> list[str]:
    problems = []
    seen: dict[tuple[str, str, str], str] = {}
    for a in expansion.assignments:
        key = (a.scope.lower(), a.principal_id, a.role_definition_id.lower())
        if key in seen:
            problems.append(f"two assignments of {key} ({seen[key]}, {a.name})")
        seen[key] = a.name
        if re.fullmatch(r"/subscriptions/[^/]+", a.scope):
            problems.append(f"assignment at subscription scope: {a}")
    names = [(a.scope.lower(), a.name) for a in expansion.assignments]
    if len(names) != len(set(names)):
        problems.append("one assignment name deployed twice on one scope")
    for rid, role in expansion.role_definitions.items():
        actions = role["permissions"][0]["actions"]
        may_install = params["installAgent"] and role["roleName"].startswith("alertcap virtual")
        if (EXTENSION_WRITE in actions) != may_install:
            problems.append(f"{role['roleName']}: extensions/write vs installAgent")
        scopes = [s.lower() for s in role["assignableScopes"]]
        if any(re.fullmatch(r"/subscriptions/[^/]+", s) for s in scopes):
            problems.append(f"{role['roleName']} assignable on a subscription")
        for a in expansion.assignments:
            if a.role_definition_id.lower() == rid.lower() and not any(
                    a.scope.lower() == s or a.scope.lower().startswith(s + "/") for s in scopes):
                problems.append(f"{role['roleName']} assigned outside its scopes: {a.scope}")
    return problems


def _expand(template: dict[str, Any], params: dict[str, Any]) -> arm_eval.Expansion:
    return arm_eval.expand(template, params, SUB, APP_RG)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(parameters)
def test_no_duplicate_or_subscription_assignment_for_any_combination(params: dict[str, Any]) -> None:
    expansion = _expand(templates.arm(), params)
    assert not _problems(expansion, params)
    # every listed group gets its role, once per group however it was spelled
    for var, listed in (("watchers", params["watcherResourceGroupIds"]),
                        ("vms", params["vmResourceGroupIds"])):
        role = next(rid for rid, r in expansion.role_definitions.items()
                    if var[:-1] in r["roleName"].replace("network watcher", "watcher")
                    .replace("virtual machines", "vm"))
        scopes = sorted(a.scope.lower() for a in expansion.assignments
                        if a.role_definition_id == role)
        assert scopes == sorted({g.lower() for g in listed})


def test_the_issue_case_app_group_in_both_lists_and_listed_twice() -> None:
    here = _rg(SUB, APP_RG)
    params = {"vmLocation": "westeurope", "emailRecipients": "x@example.com",
              "watcherResourceGroupIds": [here, here.upper().replace("SUBSCRIPTIONS", "subscriptions")],
              "vmResourceGroupIds": [here, _rg(SUB, "NetworkWatcherRG")], "installAgent": False}
    expansion = _expand(templates.arm(), params)
    assert not _problems(expansion, params)
    # the storage role is on the capture account only, not on the app's group
    storage = [a for a in expansion.assignments if "Microsoft.Storage/storageAccounts/" in a.scope
               and any(r["roleName"].startswith("alertcap capture storage")
                       for rid, r in expansion.role_definitions.items()
                       if rid == a.role_definition_id)]
    assert len(storage) == 1 and "alertcapc" in storage[0].scope


def test_the_checks_catch_a_template_without_the_deduplication() -> None:
    # Mutation check: the same template minus the normalisation of the listed groups must
    # fail the duplicate check, or the property test above could not fail.
    broken = copy.deepcopy(templates.arm())
    broken["variables"]["vmGroups"] = "[parameters('vmResourceGroupIds')]"
    params = {"vmLocation": "westeurope", "emailRecipients": "x@example.com",
              "watcherResourceGroupIds": [GROUPS[2]],
              "vmResourceGroupIds": [GROUPS[4], GROUPS[4]], "installAgent": False}
    assert any("two assignments" in p for p in _problems(_expand(broken, params), params))
    broken["variables"]["agentRoleActions"] = []
    params["vmResourceGroupIds"] = [GROUPS[4]]
    params["installAgent"] = True
    assert any("installAgent" in p for p in _problems(_expand(broken, params), params))


def test_scopes_are_required() -> None:
    params = {"vmLocation": "westeurope", "emailRecipients": "x@example.com"}
    for missing in ("watcherResourceGroupIds", "vmResourceGroupIds"):
        given_params = {**params, "watcherResourceGroupIds": [GROUPS[2]],
                        "vmResourceGroupIds": [GROUPS[4]]}
        del given_params[missing]
        try:
            _expand(templates.arm(), given_params)
        except KeyError as e:
            assert missing in str(e)
        else:
            raise AssertionError(f"{missing} has a default")


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.text(alphabet="abcXYZ019-_. é", min_size=3, max_size=11))
def test_name_prefix_yields_valid_storage_names_or_a_refusal(prefix: str) -> None:
    ctx = arm_eval.variables(templates.arm(), {"namePrefix": prefix}, SUB, APP_RG)
    valid = bool(re.fullmatch(r"[a-z][a-z0-9]*", prefix.lower()))
    for var in ("hostStorageName", "captureStorageName"):
        name = ctx.variable(var)
        if valid:
            assert re.fullmatch(r"[a-z0-9]{3,24}", name), (prefix, name)
        else:
            # the storage provider rejects this name and quotes it: the reason is in the error
            assert name == "namePrefix-must-be-lowercase-letters-and-digits"
            assert not re.fullmatch(r"[a-z0-9]{3,24}", name)


def test_bicep_normalises_the_groups_the_same_way() -> None:
    text = templates.MAIN_BICEP.read_text()
    assert "var watcherGroups = union(map(watcherResourceGroupIds, id => toLower(id)), [])" in text
    assert "var vmGroups = union(map(vmResourceGroupIds, id => toLower(id)), [])" in text
    assert "in watcherGroups:" in text and "in vmGroups:" in text
    assert "subscription-role-assignment" not in json.dumps(templates.arm()) + text
    module = (templates.INFRA / "modules" / "rg-role-assignment.bicep").read_text()
    assert "name: guid(toLower(resourceGroup().id), principalId, roleDefinitionId)" in module
