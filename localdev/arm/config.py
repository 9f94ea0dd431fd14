"""The local ARM endpoint's world: subscription, watchers, VMs, storage accounts.

Config file (JSON), written by the localdev CLI::

    {
      "subscriptionId": "00000000-0000-0000-0000-000000000000",
      "identityHeader": "<secret>",            # or env LOCALDEV_IDENTITY_HEADER
      "lroRetryAfterSeconds": 1,               # Retry-After on LRO responses (0 = none)
      "latencyMs": 0,                          # added to every ARM call (a door changes it)
      "storageAccounts": {
        "<storage account resource id>": {"connectionString": "<Azurite connection string>",
                                          "location": "eastus", "allowSharedKeyAccess": true,
                                          "minimumTlsVersion": "TLS1_2", "sku": "Standard_LRS"}
      },
      "permissions": {                         # what the caller may do, per scope
        "/subscriptions/<s>": {"actions": [...], "notActions": [], "dataActions": [...]}
      },
      "watchers": [
        {"resourceGroup": "NetworkWatcherRG", "name": "NetworkWatcher_eastus", "location": "eastus"}
      ],
      "vms": [
        {"id": "<VM resource id: /subscriptions/<s>/resourceGroups/<rg>/.../virtualMachines/vm1>",
         "location": "eastus", "osType": "Linux", "interface": "lo"},
        {"id": ".../virtualMachines/vm2", "location": "eastus", "osType": "Linux",
         "netns": "alc-vm2", "interface": "veth0", "ipAddress": "10.213.0.2",
         "agentInstalled": true}
      ],
      "scaleSets": [
        {"id": ".../virtualMachineScaleSets/vmss1", "location": "eastus", "osType": "Linux",
         "agentInstalled": true,
         "instances": [{"instanceId": "0", "netns": "alc-ss0", "interface": "veth0",
                        "ipAddress": "10.213.0.6"}]}
      ]
    }

``interface`` defaults to ``lo``; ``netns`` makes captures run inside that network
namespace; ``tags`` are a VM's resource tags (default none); ``agentInstalled`` (default
true) says whether the VM starts with the AzureNetworkWatcherExtension; a scale set's
instances are Vm objects too (one network namespace or interface each). Boundary: parsing
and lookups only, no I/O but the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

AGENT_EXTENSION = "AzureNetworkWatcherExtension"
AGENT_PUBLISHER = "Microsoft.Azure.NetworkWatcher"
AGENT_TYPES = {"linux": "NetworkWatcherAgentLinux", "windows": "NetworkWatcherAgentWindows"}
AGENT_VERSION = "1.4"


@dataclass
class Watcher:
    subscription: str
    resource_group: str
    name: str
    location: str
    # Set while a watcherAbsent fault hides the region's watcher.
    hidden: bool = False

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Network/networkWatchers/{self.name}"
        )


@dataclass
class Vm:
    id: str
    resource_group: str
    name: str
    location: str
    os_type: str = "Linux"
    interface: str = "lo"
    netns: str | None = None
    ip_address: str = "127.0.0.1"
    agent_installed: bool = True
    agent_type: str = ""
    agent_name: str = AGENT_EXTENSION
    agent_state: str = "Succeeded"
    agent_version: str = AGENT_VERSION
    # Set while a fault rule hides the agent; DELETE /_localdev/faults restores it.
    configured_agent: bool = True
    instance_id: str | None = None  # set on scale-set instances
    extra: dict = field(default_factory=dict)
    # Resource tags (e.g. alertcap-standby=true), shown on GET and in the group's listing.
    tags: dict[str, str] = field(default_factory=dict)

    def reset_agent(self) -> None:
        self.agent_installed = self.configured_agent
        self.agent_state, self.agent_version = "Succeeded", AGENT_VERSION


@dataclass
class ScaleSet:
    id: str
    resource_group: str
    name: str
    location: str
    os_type: str
    instances: list[Vm]
    agent: Vm  # the extension profile's agent, as one Vm-shaped record

    def instance(self, instance_id: str) -> Vm | None:
        for vm in self.instances:
            if vm.instance_id == instance_id:
                return vm
        return None


@dataclass
class Config:
    subscription: str
    identity_header: str
    watchers: list[Watcher]
    vms: list[Vm]
    storage_accounts: dict[str, dict]
    lro_retry_after: int = 1
    scale_sets: list[ScaleSet] = field(default_factory=list)
    permissions: dict[str, dict] = field(default_factory=dict)
    latency_ms: float = 0

    def resource_groups(self) -> set[str]:
        rgs = {w.resource_group.lower() for w in self.watchers}
        rgs |= {v.resource_group.lower() for v in self.vms}
        rgs |= {s.resource_group.lower() for s in self.scale_sets}
        rgs |= {_segment(sid, "resourceGroups").lower() for sid in self.storage_accounts}
        return rgs

    def vm_by_id(self, vm_id: str) -> Vm | None:
        for vm in self.vms:
            if vm.id.lower() == vm_id.rstrip("/").lower():
                return vm
        return None

    def scale_set_by_id(self, vmss_id: str) -> ScaleSet | None:
        for vmss in self.scale_sets:
            if vmss.id.lower() == vmss_id.rstrip("/").lower():
                return vmss
        return None

    def storage_by_id(self, storage_id: str) -> dict | None:
        for sid, acct in self.storage_accounts.items():
            if sid.lower() == storage_id.rstrip("/").lower():
                return acct
        return None


def _segment(resource_id: str, key: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        return parts[lowered.index(key.lower()) + 1]
    except (ValueError, IndexError):
        raise ValueError(f"resource id without {key}: {resource_id}") from None


def parse_vm_id(vm_id: str, kind: str = "virtualmachines") -> tuple[str, str, str]:
    """(subscription, resource group, name) of a VM (or KIND) resource id, or ValueError."""
    parts = vm_id.strip("/").split("/")
    if (
        len(parts) != 8
        or parts[0].lower() != "subscriptions"
        or parts[2].lower() != "resourcegroups"
        or parts[4].lower() != "providers"
        or parts[5].lower() != "microsoft.compute"
        or parts[6].lower() != kind
    ):
        raise ValueError(f"not a {kind} resource id: {vm_id}")
    return parts[1], parts[3], parts[7]


def _scale_set(sub: str, raw: dict) -> ScaleSet:
    ssub, rg, name = parse_vm_id(raw["id"], "virtualmachinescalesets")
    if ssub.lower() != sub.lower():
        raise ValueError(f"scale set {raw['id']} is not in subscription {sub}")
    vmss_id = raw["id"].rstrip("/")
    os_type = raw.get("osType", "Linux")
    installed = bool(raw.get("agentInstalled", True))
    agent_type = AGENT_TYPES.get(os_type.lower(), AGENT_TYPES["linux"])
    instances = []
    for inst in raw.get("instances", []):
        iid = str(inst["instanceId"])
        instances.append(Vm(
            id=f"{vmss_id}/virtualMachines/{iid}", resource_group=rg, name=f"{name}_{iid}",
            location=raw["location"], os_type=os_type, interface=inst.get("interface", "lo"),
            netns=inst.get("netns"), ip_address=inst.get("ipAddress", "127.0.0.1"),
            agent_installed=installed, agent_type=agent_type, configured_agent=installed,
            instance_id=iid))
    agent = Vm(id=vmss_id, resource_group=rg, name=name, location=raw["location"],
               os_type=os_type, agent_installed=installed, agent_type=agent_type,
               configured_agent=installed)
    return ScaleSet(vmss_id, rg, name, raw["location"], os_type, instances, agent)


def load(path: str | os.PathLike[str]) -> Config:
    raw = json.loads(Path(path).read_text())
    sub = raw["subscriptionId"]
    header = raw.get("identityHeader") or os.environ.get("LOCALDEV_IDENTITY_HEADER", "")
    if not header:
        raise ValueError("identityHeader missing (config or env LOCALDEV_IDENTITY_HEADER)")
    watchers = [
        Watcher(sub, w.get("resourceGroup", "NetworkWatcherRG"), w["name"], w["location"])
        for w in raw.get("watchers", [])
    ]
    vms = []
    for v in raw.get("vms", []):
        vsub, rg, name = parse_vm_id(v["id"])
        if vsub.lower() != sub.lower():
            raise ValueError(f"VM {v['id']} is not in subscription {sub}")
        os_type = v.get("osType", "Linux")
        installed = bool(v.get("agentInstalled", True))
        vms.append(
            Vm(
                id=v["id"].rstrip("/"),
                resource_group=rg,
                name=name,
                location=v["location"],
                os_type=os_type,
                interface=v.get("interface", "lo"),
                netns=v.get("netns"),
                ip_address=v.get("ipAddress", "127.0.0.1"),
                agent_installed=installed,
                agent_type=AGENT_TYPES.get(os_type.lower(), AGENT_TYPES["linux"]),
                configured_agent=installed,
                tags={str(k): str(v) for k, v in (v.get("tags") or {}).items()},
            )
        )
    return Config(
        subscription=sub,
        identity_header=header,
        watchers=watchers,
        vms=vms,
        storage_accounts=dict(raw.get("storageAccounts", {})),
        lro_retry_after=int(raw.get("lroRetryAfterSeconds", 1)),
        scale_sets=[_scale_set(sub, s) for s in raw.get("scaleSets", [])],
        permissions=dict(raw.get("permissions", {})),
        latency_ms=float(raw.get("latencyMs", 0)),
    )
