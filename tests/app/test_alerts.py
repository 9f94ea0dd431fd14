"""Every webhook shape an action group can post, against Microsoft's documented samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alertcap.domain.alerts import parse_alert
from alertcap.domain.vm import VmRef, capture_name_for, capture_prefix_for, instance_id_for
from alertcap.errors import InvalidResourceId, NoVmTarget, UnknownAlertSchema

FIXTURES = Path(__file__).parent.parent / "fixtures" / "alerts"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_as_documented(name: str) -> None:
    expected = EXPECTED[name]
    payload = json.loads((FIXTURES / name).read_text())
    if not expected["accept"]:
        with pytest.raises(NoVmTarget) as info:
            parse_alert(payload)
        assert info.value.status == 422
        return
    parsed = parse_alert(payload)
    assert parsed.info.schema == expected["schema"]
    assert parsed.info.condition == expected["condition"]
    assert parsed.active == (expected["condition"] == "Fired")
    assert sorted(vm.key for vm in parsed.targets) == sorted(expected["vm_ids"])
    assert parsed.info.alert_rule == expected["alert_rule"]
    assert parsed.info.alert_id == expected["alert_id"]
    assert parsed.info.fired_at == expected["fired_at"]
    assert parsed.info.severity == expected["severity"]
    assert parsed.location == expected["location"]


def test_mixed_case_ids_are_one_vm() -> None:
    a = json.loads((FIXTURES / "common-metric-mixed-case.json").read_text())
    a["data"]["essentials"]["alertTargetIDs"].append(
        a["data"]["essentials"]["alertTargetIDs"][0].lower())
    assert len(parse_alert(a).targets) == 1


@pytest.mark.parametrize("payload", [
    [], "text", 42, None, {}, {"schemaId": "somethingElse", "data": {}},
    {"schemaId": "azureMonitorCommonAlertSchema"},
    {"schemaId": "azureMonitorCommonAlertSchema", "data": {"essentials": "x"}},
])
def test_unknown_shapes_are_422(payload: object) -> None:
    with pytest.raises(UnknownAlertSchema) as info:
        parse_alert(payload)
    assert info.value.status == 422


def test_odd_condition_is_refused_not_guessed() -> None:
    payload = json.loads((FIXTURES / "common-metric-fired.json").read_text())
    payload["data"]["essentials"]["monitorCondition"] = "Exploded"
    with pytest.raises(UnknownAlertSchema):
        parse_alert(payload)


@pytest.mark.parametrize("bad", [
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/../../x",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa",
    "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1?x=1",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/extensions/e",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/r%2Fg/providers/Microsoft.Compute/virtualMachines/vm1",
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm\u00e91",
    "", 7, None,
])
def test_vm_ids_are_strict(bad: object) -> None:
    with pytest.raises(InvalidResourceId):
        VmRef.parse(bad)


def test_names_are_deterministic_and_case_insensitive() -> None:
    a = VmRef.parse("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/Demo-RG/providers/Microsoft.Compute/virtualMachines/Web-01")
    b = VmRef.parse("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/demo-rg/providers/microsoft.compute/virtualmachines/web-01")
    c = VmRef.parse("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/web-01")
    assert instance_id_for(a) == instance_id_for(b) != instance_id_for(c)
    assert instance_id_for(a).startswith("alertcap-web-01-")
    assert capture_prefix_for("alertcap", a) != capture_prefix_for("alertcap", c)
    from datetime import datetime
    name = capture_name_for("alertcap", a, datetime(2026, 1, 2, 3, 4, 5, 678900))
    assert name.startswith(capture_prefix_for("alertcap", a)) and name.endswith("20260102030405678")
    assert len(name) <= 80
    # A VM's next run may start within the second its last one ended: still a new name.
    assert capture_name_for("alertcap", a, datetime(2026, 1, 2, 3, 4, 5, 912000)) != name


@pytest.mark.parametrize(("name", "metric", "value", "threshold"), [
    ("common-metric-fired.json", "Network Out Total", 734003200.5, 500000000.0),
    ("metric-noncommon-activated.json", "Network Out Total", 911222333.0, 500000000.0),
    ("classic-metric-activated.json", "Network Out", 612000000.0, 500000000.0),
])
def test_the_metric_that_fired_is_kept_for_the_findings(name: str, metric: str, value: float,
                                                        threshold: float) -> None:
    signal = parse_alert(json.loads((FIXTURES / name).read_text())).info.signal()
    assert signal is not None
    assert (signal["metric"], signal["value"], signal["threshold"]) == (metric, value, threshold)
    assert signal["operator"] == "GreaterThan" and signal["fired_at"]


def test_a_dynamic_threshold_is_the_value_azure_computed_for_that_evaluation() -> None:
    # Azure sends it as a string ("1843.27") beside a numeric metricValue.
    info = parse_alert(json.loads((FIXTURES / "common-metric-dynamic-fired.json").read_text())).info
    assert (info.metric_name, info.metric_value, info.threshold) == ("Outbound Flows", 5120.4,
                                                                     1843.27)
