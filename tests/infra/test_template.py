"""The deployment template: valid ARM JSON, published api-versions, Bicep and JSON equivalent,
app settings in line with alertcap/settings.py, and no secret in a default or an output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from alertcap.settings import ENV
from tests.infra import templates

API_VERSIONS = json.loads((Path(__file__).parent / "api_versions.json").read_text())["versions"]

# ENV settings the deployment deliberately leaves unset, and why. Every other ENV name must
# be set by the template.
NOT_DEPLOYED = {
    "ALERTCAP_ARM_SCOPE": "derived from ALERTCAP_ARM_ENDPOINT (<endpoint>/.default)",
    "ALERTCAP_CA_BUNDLE": "trusts the local stack's private certificate; Azure's is public",
    "ALERTCAP_BLOB_CONNECTION_STRING": "holds an account key; in Azure the identity reads blobs",
    "ALERTCAP_EMAIL_CONNECTION_STRING": "holds an access key; in Azure the identity sends email",
}
# Settings the Functions host reads (not alertcap): allowed besides ENV.
HOST_SETTINGS = {"AzureWebJobsStorage__accountName", "AzureWebJobsStorage__credential",
                 "AzureWebJobsStorage__clientId", "APPLICATIONINSIGHTS_CONNECTION_STRING",
                 "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
                 "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
                 "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
                 "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"}
# Settings the deployment sets for app code the lead is adding (issue #18 point 4: the
# app's side of the secure webhook). Once alertcap/settings.py reads one, it must leave
# this set (the test below fails until it does).
AWAITED_BY_APP: dict[str, str] = {}
# Settings whose value is the app's own default: the template must agree with ENV.
SECRETISH = re.compile(r"key|secret|password|connection|token|sas|credential|code", re.I)


def test_arm_json_is_a_deployment_template() -> None:
    t = templates.arm()
    assert t["$schema"].endswith("/deploymentTemplate.json#")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", t["contentVersion"])
    assert isinstance(t["parameters"], dict) and t["parameters"]
    assert isinstance(t["resources"], list) and t["resources"]
    for r in templates.arm_resources(t):
        assert {"type", "apiVersion", "name"} <= r.keys(), r
    for inner in templates.arm_nested_templates(t):
        assert {"$schema", "contentVersion", "resources"} <= inner.keys()


def _pairs_json() -> set[tuple[str, str]]:
    return {(r["type"], r["apiVersion"]) for r in templates.arm_resources(templates.arm())}


def _pairs_bicep() -> set[tuple[str, str]]:
    pairs = set()
    for b in templates.bicep_all():
        pairs |= {(t, v) for _, t, v in b.resources}
        if b.modules:
            pairs.add(templates.DEPLOYMENTS)
    return pairs


def test_every_api_version_is_a_published_one() -> None:
    published = {(v["type"], v["apiVersion"]) for v in API_VERSIONS}
    assert all(v["source"] for v in API_VERSIONS)
    used = _pairs_json() | _pairs_bicep()
    assert used <= published, f"not in tests/infra/api_versions.json: {used - published}"
    assert published <= used, f"stale entries in api_versions.json: {published - used}"


def test_deployments_api_version_is_known_to_the_installed_sdk() -> None:
    # azure-mgmt-resource ships the Deployments model; its api-version is at least ours
    # (ARM keeps old stable versions, so older than the SDK's default is fine).
    from azure.mgmt.resource.resources import _configuration

    sdk_default = re.search(r'api_version", "(\d{4}-\d{2}-\d{2})"',
                            Path(_configuration.__file__).read_text())
    assert sdk_default
    assert templates.DEPLOYMENTS[1] <= sdk_default.group(1)


def test_bicep_and_json_declare_the_same_parameters_and_outputs() -> None:
    arm = templates.arm()
    main = templates.bicep()
    assert set(main.params) == set(arm["parameters"])
    types = {"string": "string", "securestring": "securestring", "int": "int", "bool": "bool", "array": "array", "object": "object"}
    for name, p in main.params.items():
        assert types[p["type"]] == arm["parameters"][name]["type"], name
        assert (p["default"] is None) == ("defaultValue" not in arm["parameters"][name]), name
    assert set(main.outputs) == set(arm["outputs"])
    # modules: each module's params match its nested template's
    nested = templates.arm_nested_templates(arm)
    nested_params = [set(t["parameters"]) for t in nested]
    for module in templates.bicep_all()[1:]:
        assert set(module.params) in nested_params, module.path.name
    assert len(nested) == len(main.modules)


def test_bicep_and_json_have_the_same_resources() -> None:
    assert _pairs_bicep() == _pairs_json()
    arm = templates.arm()
    top = [r["type"] for r in arm["resources"] if r["type"] != templates.DEPLOYMENTS[0]]
    assert sorted(top) == sorted(t for _, t, _ in templates.bicep().resources)
    # each module declaration is one nested deployment with that module's resources
    by_path = {b.path.relative_to(templates.INFRA).as_posix(): b
               for b in templates.bicep_all()[1:]}
    nested = [sorted(r["type"] for r in t["resources"])
              for t in templates.arm_nested_templates(arm)]
    declared = [sorted(t for _, t, _ in by_path[rel].resources)
                for rel in templates.bicep().modules.values()]
    assert sorted(nested) == sorted(declared)


def test_parameters_and_outputs_are_documented() -> None:
    arm = templates.arm()
    for name, p in arm["parameters"].items():
        assert p.get("metadata", {}).get("description"), name
    for name, o in arm["outputs"].items():
        assert o.get("metadata", {}).get("description"), name
    for b in templates.bicep_all():
        for name, p in b.params.items():
            assert p["described"], f"{b.path.name}: param {name} has no @description"


def test_outputs_are_the_ones_promised() -> None:
    assert set(templates.arm()["outputs"]) == {
        "functionAppName", "functionAppHost", "identityClientId", "roleDefinitionIds",
        "actionGroupId", "durableTaskDashboardUrl"}


def test_app_settings_match_the_settings_the_app_reads() -> None:
    arm_settings = templates.arm_app_settings(templates.arm())
    bicep_settings = templates.bicep_app_setting_names(templates.MAIN_BICEP.read_text())
    assert sorted(arm_settings) == sorted(bicep_settings)
    assert len(bicep_settings) == len(set(bicep_settings)), "a setting appears twice"
    assert NOT_DEPLOYED.keys() <= ENV.keys(), "NOT_DEPLOYED names a setting the app dropped"
    wanted = ENV.keys() - NOT_DEPLOYED.keys()
    missing = wanted - arm_settings.keys()
    assert not missing, f"the app reads these but the template does not set them: {missing}"
    unknown = arm_settings.keys() - ENV.keys() - HOST_SETTINGS - AWAITED_BY_APP.keys()
    assert not unknown, f"the template sets settings nobody reads: {unknown}"
    assert not AWAITED_BY_APP.keys() & ENV.keys(), "the app reads it now: drop it from AWAITED_BY_APP"
    assert not arm_settings.keys() & NOT_DEPLOYED.keys()


def test_literal_app_settings_equal_the_app_defaults() -> None:
    # Tuning knobs are written out at the app's defaults; drift from settings.py fails here.
    for name, value in templates.arm_app_settings(templates.arm()).items():
        if name in ENV and not str(value).startswith("[") and ENV[name] is not None:
            assert value == ENV[name], name


def test_parameter_defaults_match_the_app_defaults() -> None:
    params = templates.arm()["parameters"]
    settings = templates.arm_app_settings(templates.arm())
    for name, value in settings.items():
        m = re.fullmatch(r"\[(?:string\()?parameters\('(\w+)'\)\)?\]", str(value))
        if m and name in ENV and ENV[name] is not None:
            default = params[m.group(1)].get("defaultValue")
            assert str(default).lower() == ENV[name].lower(), (name, default)


def test_flex_consumption_python_311() -> None:
    arm = templates.arm()
    plan = next(r for r in arm["resources"] if r["type"] == "Microsoft.Web/serverfarms")
    site = next(r for r in arm["resources"] if r["type"] == "Microsoft.Web/sites")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert site["properties"]["functionAppConfig"]["runtime"] == {"name": "python",
                                                                  "version": "3.11"}
    assert site["identity"]["type"] == "UserAssigned"
    # Flex takes the runtime from functionAppConfig; these settings are not used there.
    names = templates.arm_app_settings(arm)
    assert "FUNCTIONS_WORKER_RUNTIME" not in names and "AzureWebJobsStorage" not in names


def test_storage_accounts_are_locked_down() -> None:
    accounts = [r for r in templates.arm()["resources"]
                if r["type"] == "Microsoft.Storage/storageAccounts"]
    assert len(accounts) == 2
    for a in accounts:
        assert a["sku"]["name"].startswith("Standard_")
        assert a["properties"]["minimumTlsVersion"] == "TLS1_2"
        assert a["properties"]["allowBlobPublicAccess"] is False
    # Network Watcher writes captures with a SAS signed by the account key.
    capture = next(a for a in accounts if "captureStorageName" in a["name"])
    assert capture["properties"]["allowSharedKeyAccess"] is True


def test_alerting_posts_the_common_schema_to_the_webhook() -> None:
    arm = templates.arm()
    group = next(r for r in arm["resources"] if r["type"] == "Microsoft.Insights/actionGroups")
    receivers = group["properties"]["webhookReceivers"]
    # entra (default): secure webhook, no key in the URL; functionKey: the host key (fallback)
    entra, key = receivers.split("createArray(createObject(")[1:]
    assert "'useAadAuth', true()" in entra and "listKeys" not in entra and "?code=" not in entra
    assert "'identifierUri', parameters('webhookAppIdUri')" in entra
    assert "'useAadAuth', false()" in key and "listKeys(" in key and "/api/alerts?code=" in key
    assert receivers.count("'useCommonAlertSchema', true()") == 2
    assert arm["parameters"]["webhookAuth"]["defaultValue"] == "entra"
    rule = next(r for r in arm["resources"] if r["type"] == "Microsoft.Insights/metricAlerts")
    criterion = rule["properties"]["criteria"]["allOf"][0]
    assert criterion["criterionType"] == "DynamicThresholdCriterion"
    assert rule["properties"]["scopes"] == "[parameters('vmResourceIds')]"
    assert rule["properties"]["targetResourceRegion"] == "[parameters('vmLocation')]"
    assert rule["properties"]["actions"][0]["actionGroupId"].endswith(
        "variables('actionGroupName'))]")
    assert set(arm["parameters"]["alertMetric"]["allowedValues"]) == {"Network Out Total",
                                                                      "Outbound Flows"}


def test_easy_auth_accepts_only_the_action_groups_token_for_our_audience() -> None:
    arm = templates.arm()
    auth = next(r for r in arm["resources"] if r["type"] == "Microsoft.Web/sites/config")
    assert auth["condition"] == "[equals(parameters('webhookAuth'), 'entra')]"
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    # Operators' routes keep their function keys: no token is not a refusal at this layer.
    assert props["globalValidation"]["unauthenticatedClientAction"] == "AllowAnonymous"
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["validation"]["allowedAudiences"] == ["[parameters('webhookAppIdUri')]"]
    assert aad["validation"]["defaultAuthorizationPolicy"]["allowedApplications"] == [
        "[variables('actionGroupsAppId')]"]
    assert arm["variables"]["actionGroupsAppId"] == "461e8683-5575-4561-ac7f-899cc907d62a"
    assert props["login"]["tokenStore"]["enabled"] is False


def test_two_step_deployment_is_the_default() -> None:
    arm = templates.arm()
    assert arm["parameters"]["deployAlerting"]["defaultValue"] is False
    assert "Step 3" in arm["parameters"]["deployAlerting"]["metadata"]["description"]
    assert templates.bicep().params["deployAlerting"]["default"] == "false"
    head = templates.MAIN_BICEP.read_text()[:1500]
    assert head.index("1. infrastructure") < head.index("2. code") < head.index("3. alerting")


def test_scopes_are_required_and_regions_separate() -> None:
    params = templates.arm()["parameters"]
    for name in ("watcherResourceGroupIds", "vmResourceGroupIds", "vmLocation"):
        assert "defaultValue" not in params[name], name
    assert params["watcherResourceGroupIds"]["minLength"] == 1
    assert params["vmResourceGroupIds"]["minLength"] == 1
    assert "captureResourceGroupIds" not in params
    resources = templates.arm()["resources"]
    capture = next(r for r in resources if r["type"] == "Microsoft.Storage/storageAccounts"
                   and "captureStorageName" in r["name"])
    assert capture["location"] == "[parameters('vmLocation')]"
    site = next(r for r in resources if r["type"] == "Microsoft.Web/sites")
    assert site["location"] == "[parameters('location')]"


def test_smaller_hardening() -> None:
    arm = templates.arm()
    resources = arm["resources"]
    assert 512 in arm["parameters"]["instanceMemoryMB"]["allowedValues"]
    policies = {r["name"]: r["properties"] for r in resources
                if r["type"] == "Microsoft.Web/sites/basicPublishingCredentialsPolicies"}
    assert sorted(policies) == ["[format('{0}/{1}', variables('appName'), 'ftp')]",
                                "[format('{0}/{1}', variables('appName'), 'scm')]"]
    assert all(p == {"allow": False} for p in policies.values())
    insights = next(r for r in resources if r["type"] == "Microsoft.Insights/components")
    assert insights["properties"]["DisableLocalAuth"] is True
    settings = templates.arm_app_settings(arm)
    assert "Authorization=AAD" in settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    lifecycle = next(r for r in resources
                     if r["type"] == "Microsoft.Storage/storageAccounts/managementPolicies")
    rule = lifecycle["properties"]["policy"]["rules"][0]
    assert rule["definition"]["actions"]["baseBlob"]["delete"][
        "daysAfterModificationGreaterThan"] == "[parameters('captureRetentionDays')]"
    assert lifecycle["name"].startswith("[format('{0}/{1}', variables('captureStorageName')")


def test_durable_task_scheduler_is_an_option_with_its_role_and_setting() -> None:
    arm = templates.arm()
    assert arm["parameters"]["durableBackend"]["defaultValue"] == "azureStorage"
    conditional = {r["type"]: r.get("condition") for r in arm["resources"]
                   if r["type"].startswith("Microsoft.DurableTask/")}
    assert conditional == {"Microsoft.DurableTask/schedulers": "[variables('useScheduler')]",
                           "Microsoft.DurableTask/schedulers/taskHubs": "[variables('useScheduler')]"}
    settings = templates.arm_app_settings(arm)
    assert "Authentication=ManagedIdentity" in settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    assert "azureManaged" in settings[
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type"]
    # the task hub keeps host.json's name
    host = json.loads((templates.INFRA.parent / "host.json").read_text())
    assert arm["variables"]["taskHubName"] == host["extensions"]["durableTask"]["hubName"]


def _walk_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _walk_strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _walk_strings(v)]
    return []


def test_no_secret_in_a_default_or_an_output() -> None:
    arm = templates.arm()
    for name, p in arm["parameters"].items():
        if SECRETISH.search(name):
            # An optional secret (a channel that is off unless given) may default to empty
            # when it is a securestring; any other default would be a secret in the template.
            optional = p["type"] == "securestring" and p.get("defaultValue") == ""
            assert optional or "defaultValue" not in p, \
                f"parameter {name} looks secret and has a default"
    for name, o in arm["outputs"].items():
        assert not SECRETISH.search(name), name
        text = " ".join(_walk_strings(o["value"]))
        assert not re.search(r"listKeys|listSecrets|ConnectionString|keys\(", text, re.I), name
    for name, value in templates.bicep().outputs.items():
        assert not re.search(r"listKeys|ConnectionString|secret", value, re.I), name
    # no literal credential anywhere in either file
    for path in (templates.ARM_JSON, templates.MAIN_BICEP):
        text = path.read_text()
        assert not re.search(r"AccountKey=|SharedAccessSignature=|accesskey=", text, re.I)


def test_the_only_key_read_is_the_function_key_for_the_fallback_webhook() -> None:
    uses = [s for s in _walk_strings(templates.arm()) if "listKeys(" in s]
    assert len(uses) == 1 and "/host/default" in uses[0]
    assert uses[0].startswith("[if(equals(parameters('webhookAuth'), 'entra')")
    assert templates.MAIN_BICEP.read_text().count("listKeys(") == 1
