"""Virtual machine ids in, deterministic names out.

`VmRef.parse` is the one gate every VM id passes (alerts, manual starts), at the edge:
it accepts only a well-formed ARM virtual machine id, in any casing, and refuses anything
else (path traversal, query strings, other resource types) with InvalidResourceId. The
parsed value is what travels on (it crosses Durable boundaries as its id string).

Instance ids and capture names are pure functions of the VM id (and, for captures, the
run's start time), so a retried webhook finds the running instance, and a re-run
activity finds the capture it made before a crash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from alertcap.domain import limits
from alertcap.errors import InvalidResourceId

_VM_ID = re.compile(limits.VM_ID_PATTERN, re.IGNORECASE | re.ASCII)
_VMSS_ID = re.compile(limits.VMSS_ID_PATTERN, re.IGNORECASE | re.ASCII)
_TYPES = {"vm": "virtualMachines", "vmss": "virtualMachineScaleSets"}
_INSTANCE_ID = re.compile(limits.INSTANCE_ID_PATTERN, re.ASCII)


@dataclass(frozen=True)
class VmRef:
    subscription_id: str
    resource_group: str
    name: str
    # "vmss": a scale set, captured with targetType AzureVMSS (alertcap.domain.targets);
    # only targets.parse_target makes one, VmRef.parse stays the gate for VMs.
    kind: str = "vm"

    @classmethod
    def parse(cls, text: object) -> VmRef:
        if not isinstance(text, str) or not text:
            raise InvalidResourceId("a virtual machine resource id (string) is required")
        if len(text) > limits.MAX_RESOURCE_ID_LENGTH:
            raise InvalidResourceId("resource id is too long to be an ARM id")
        match = _VM_ID.fullmatch(text.strip())
        if not match or ".." in text:
            raise InvalidResourceId(
                "not a virtual machine resource id: expected /subscriptions/<guid>/"
                "resourceGroups/<group>/providers/Microsoft.Compute/virtualMachines/<name>",
                detail={"resourceId": text[:200]})
        return cls(match["sub"].lower(), match["rg"], match["name"])

    @classmethod
    def parse_scale_set(cls, text: object) -> VmRef:
        if not isinstance(text, str) or len(text) > limits.MAX_RESOURCE_ID_LENGTH:
            raise InvalidResourceId("a scale set resource id (string) is required")
        match = _VMSS_ID.fullmatch(text.strip())
        if not match or ".." in text:
            raise InvalidResourceId("not a virtual machine scale set resource id",
                                    detail={"resourceId": text[:200]})
        return cls(match["sub"].lower(), match["rg"], match["name"], "vmss")

    # On the wire (activity inputs, orchestration input and output) a VM is its id; so is
    # a scale set (its id says which it is).
    @classmethod
    def from_wire(cls, text: object) -> VmRef:
        if isinstance(text, str) and "/virtualmachinescalesets/" in text.lower():
            return cls.parse_scale_set(text)
        return cls.parse(text)

    @property
    def is_scale_set(self) -> bool:
        return self.kind == "vmss"

    def to_wire(self) -> str:
        return self.id

    def __str__(self) -> str:
        return self.id

    @property
    def id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Compute/{_TYPES[self.kind]}/{self.name}")

    @property
    def key(self) -> str:
        """ARM ids are case-insensitive: this is the form to compare and hash."""
        return self.id.lower()

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()


def is_vm_id(text: object) -> bool:
    try:
        VmRef.parse(text)
    except InvalidResourceId:
        return False
    return True


def is_instance_id(text: object) -> bool:
    """Could this be one of our instance ids? (Anything else names no run of ours.)"""
    return isinstance(text, str) and _INSTANCE_ID.fullmatch(text) is not None


def _slug(text: str, length: int) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:length] or "vm"


def instance_id_for(vm: VmRef) -> str:
    """One orchestration per VM: readable prefix, hash of the full id for uniqueness."""
    return f"alertcap-{_slug(vm.name, 40)}-{vm.digest[:12]}"


def capture_prefix_for(prefix: str, vm: VmRef) -> str:
    """Every capture we ever make for this VM starts with this; nobody else's does."""
    return f"{prefix}-{_slug(vm.name, 30)}-{vm.digest[:8]}-"


def capture_name_for(prefix: str, vm: VmRef, run_started: datetime) -> str:
    # Network Watcher names: 1-80 of letters, digits, _ . -; milliseconds keep two runs
    # of one VM apart even when the second starts in the second the first ended.
    return f"{capture_prefix_for(prefix, vm)}{run_started:%Y%m%d%H%M%S}{run_started:%f}"[:-3]
