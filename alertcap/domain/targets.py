"""What an alert asks us to capture: VMs, and scale sets with a scope of instances.

Boundary: pure (no I/O). In: the resource ids an alert names and its custom properties.
Out: `Target`s, each one run: a VM, or a scale set (`VmRef` of kind "vmss") with a `Scope`
(Network Watcher's `scope.include` / `scope.exclude`, instance ids; both empty = every
instance). Also the names that derive from a target: instance id and capture names, so one
live run per target (the scale set *plus its scope* is the key) and a retried webhook
attaches to the run it started.

Rules (README "Alerts"):
- a VM id is a VM target;
- a scale-set id is the whole scale set;
- an instance id `.../virtualMachineScaleSets/{name}/virtualMachines/{n}` (activity-log and
  resource-health alerts) is the scale set scoped to instance n; several instances of one
  scale set in one alert become ONE target scoped to all of them; the scale set's own id
  beside its instances widens it to the whole scale set;
- the alert rule's custom properties narrow every scale-set target:
  `alertcap.include` (instance ids, comma separated: intersected with what the alert
  named) and `alertcap.exclude` (removed); nothing left is EmptyScope (422);
- an alert naming VMs *and* scale sets is refused (MixedTargets, 422): one rule, one kind,
  so a digest and a capture limit mean one thing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertcap.domain import limits
from alertcap.domain.vm import VmRef, capture_name_for, capture_prefix_for, instance_id_for
from alertcap.domain.wire import Model
from alertcap.errors import EmptyScope, InvalidResourceId, MixedTargets

_INSTANCE = re.compile(limits.VMSS_INSTANCE_ID_PATTERN, re.IGNORECASE | re.ASCII)
_IID = re.compile(limits.VMSS_INSTANCE_PATTERN, re.ASCII)
INCLUDE_PROPERTY = "alertcap.include"
EXCLUDE_PROPERTY = "alertcap.exclude"


def _canonical(ids: Any) -> tuple[str, ...]:
    # Instance ids are decimal strings: "01" and "1" are the same instance.
    return tuple(sorted({str(int(i)) for i in ids}, key=int))


@dataclass(frozen=True)
class Scope(Model):
    """Network Watcher's PacketCaptureMachineScope; empty include = every instance."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, include: Any = (), exclude: Any = ()) -> Scope:
        inc, exc = _canonical(include), _canonical(exclude)
        if inc:
            # With a list to include, the exclusions are already applied: one form per set.
            left = tuple(i for i in inc if i not in exc)
            if not left:
                raise EmptyScope(
                    "no scale-set instance left to capture: every instance the alert named "
                    f"is excluded ({EXCLUDE_PROPERTY})",
                    detail={"include": list(inc), "exclude": list(exc)})
            return cls(left, ())
        return cls((), exc)

    @property
    def text(self) -> str:
        if self.include:
            return "instances " + ", ".join(self.include)
        if self.exclude:
            return "every instance except " + ", ".join(self.exclude)
        return "every instance"


@dataclass(frozen=True)
class Target:
    vm: VmRef
    scope: Scope | None = None  # set exactly when vm is a scale set

    @property
    def key(self) -> str:
        if self.scope is None:
            return self.vm.key
        return (f"{self.vm.key}|include={','.join(self.scope.include)}"
                f"|exclude={','.join(self.scope.exclude)}")

    @property
    def id(self) -> str:
        return self.vm.id

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:length] or "vmss"


def instance_id_for_target(vm: VmRef, scope: Scope | None) -> str:
    """A VM's instance id is unchanged; a scale set's hashes its scope in too."""
    if scope is None:
        return instance_id_for(vm)
    return f"alertcap-{_slug(vm.name, 40)}-{Target(vm, scope).digest[:12]}"


def capture_prefix_for_target(prefix: str, vm: VmRef, scope: Scope | None) -> str:
    # Two runs on one scale set with different scopes may run side by side: each clears
    # only its own stale captures.
    if scope is None:
        return capture_prefix_for(prefix, vm)
    return f"{prefix}-{_slug(vm.name, 30)}-{Target(vm, scope).digest[:8]}-"


def capture_name_for_target(prefix: str, vm: VmRef, scope: Scope | None,
                            run_started: datetime) -> str:
    if scope is None:
        return capture_name_for(prefix, vm, run_started)
    stamp = f"{run_started:%Y%m%d%H%M%S}{run_started:%f}"[:-3]
    return f"{capture_prefix_for_target(prefix, vm, scope)}{stamp}"


def parse_target(text: object) -> tuple[VmRef, str | None] | None:
    """One resource id: (VM, None), (scale set, None) or (scale set, instance id);
    None when it is none of these (the alert may name other resources too)."""
    if not isinstance(text, str) or not text or len(text) > limits.MAX_RESOURCE_ID_LENGTH:
        return None
    try:
        return VmRef.parse(text), None
    except InvalidResourceId:
        pass
    match = _INSTANCE.fullmatch(text.strip())
    if match and ".." not in text:
        return VmRef(match["sub"].lower(), match["rg"], match["name"], "vmss"), match["iid"]
    try:
        return VmRef.parse_scale_set(text), None
    except InvalidResourceId:
        return None


def _property_ids(props: dict[str, Any], name: str) -> tuple[str, ...] | None:
    found = next((v for k, v in props.items() if str(k).lower() == name), None)
    if found is None:
        return None
    items = found if isinstance(found, list) else str(found).replace(";", ",").split(",")
    ids = [str(i).strip() for i in items if str(i).strip()]
    bad = [i for i in ids if not _IID.fullmatch(i)]
    if bad or len(ids) > limits.MAX_SCOPE_INSTANCES:
        raise InvalidResourceId(
            f"custom property {name} must list scale-set instance ids (digits), "
            f"at most {limits.MAX_SCOPE_INSTANCES}", detail={"invalid": bad[:10]})
    return _canonical(ids)


def group_targets(ids: list[Any], properties: Any = None
                  ) -> tuple[tuple[Target, ...], tuple[str, ...]]:
    """The alert's ids as targets (one per VM, one per scale set) and the ids ignored."""
    vms: dict[str, VmRef] = {}
    sets: dict[str, tuple[VmRef, set[str] | None]] = {}  # None: the whole scale set
    ignored: list[str] = []
    for raw in ids:
        parsed = parse_target(raw)
        if parsed is None:
            if isinstance(raw, str) and raw:
                ignored.append(raw[:300])
            continue
        ref, iid = parsed
        if not ref.is_scale_set:
            vms.setdefault(ref.key, ref)  # one orchestration per VM, whatever the casing
            continue
        first, named = sets.get(ref.key, (ref, set()))
        if named is not None:
            named = None if iid is None else named | {iid}
        sets[ref.key] = (first, named)
    if vms and sets:
        raise MixedTargets(
            "the alert names virtual machines and scale sets; alertcap runs one kind per "
            "alert: split the alert rule (or its action group) by resource type",
            detail={"vms": len(vms), "scaleSets": len(sets)})
    props = properties if isinstance(properties, dict) else {}
    include = _property_ids(props, INCLUDE_PROPERTY)
    exclude = _property_ids(props, EXCLUDE_PROPERTY) or ()
    targets = [Target(vm) for vm in vms.values()]
    for ref, named in sets.values():
        wanted: Any = named or ()
        if include is not None:
            wanted = include if not wanted else tuple(i for i in _canonical(wanted)
                                                      if i in include)
            if not wanted:
                raise EmptyScope(
                    f"no scale-set instance left to capture: {INCLUDE_PROPERTY} names none "
                    "of the instances the alert fired for",
                    detail={"named": sorted(named or ()), "include": list(include)})
        targets.append(Target(ref, Scope.of(wanted, exclude)))
    return tuple(targets), tuple(ignored)
