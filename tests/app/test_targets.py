"""Scale-set targets from alerts: grouping, scope, custom properties, and refusals."""

from __future__ import annotations

import pytest

from alertcap.domain.alerts import parse_alert
from alertcap.domain.targets import Scope, group_targets, instance_id_for_target
from alertcap.domain.vm import VmRef, instance_id_for
from alertcap.errors import EmptyScope, MixedTargets

SUB = "00000000-0000-0000-0000-000000000000"
SS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
VM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"


def _alert(ids: list[str], props: dict | None = None) -> dict:
    return {"schemaId": "azureMonitorCommonAlertSchema", "data": {
        "essentials": {"alertRule": "r", "monitorCondition": "Fired", "alertTargetIDs": ids},
        "alertContext": {}, "customProperties": props}}


def test_instances_of_one_scale_set_become_one_scoped_capture() -> None:
    parsed = parse_alert(_alert([f"{SS.lower()}/virtualmachines/2", f"{SS}/virtualMachines/0"]))
    (run,) = parsed.runs
    assert run.vm.is_scale_set and run.vm.id == SS.replace("/rg/", "/rg/")
    assert run.scope == Scope(("0", "2"))


def test_scale_set_id_means_every_instance_and_widens_named_ones() -> None:
    (run,) = parse_alert(_alert([f"{SS}/virtualMachines/1", SS])).runs
    assert run.scope == Scope()


def test_custom_properties_narrow_and_exclude() -> None:
    (run,) = parse_alert(_alert([SS], {"alertcap.include": "0,1,2", "alertcap.exclude": "1"})).runs
    assert run.scope == Scope(("0", "2"))
    (run,) = parse_alert(_alert([SS], {"alertcap.exclude": "3"})).runs
    assert run.scope == Scope((), ("3",))


def test_empty_scope_after_exclusion_is_refused() -> None:
    with pytest.raises(EmptyScope):
        parse_alert(_alert([f"{SS}/virtualMachines/1"], {"alertcap.exclude": "1"}))
    with pytest.raises(EmptyScope):
        parse_alert(_alert([f"{SS}/virtualMachines/1"], {"alertcap.include": "4"}))


def test_mixed_vms_and_scale_sets_are_refused() -> None:
    with pytest.raises(MixedTargets) as err:
        group_targets([VM, SS])
    assert err.value.status == 422


def test_instance_ids_key_on_scale_set_plus_scope() -> None:
    ss = VmRef.parse_scale_set(SS)
    a, b = instance_id_for_target(ss, Scope(("0",))), instance_id_for_target(ss, Scope(("1",)))
    assert a != b and a == instance_id_for_target(VmRef.from_wire(SS.upper().replace(
        "SUBSCRIPTIONS", "subscriptions")), Scope(("0",)))
    vm = VmRef.parse(VM)
    assert instance_id_for_target(vm, None) == instance_id_for(vm)  # VMs keep their ids


def test_scale_set_travels_on_the_wire_as_its_id() -> None:
    ss = VmRef.parse_scale_set(SS)
    assert VmRef.from_wire(ss.to_wire()) == ss and ss.kind == "vmss"
