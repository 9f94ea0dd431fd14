"""Network namespaces that stand in for VMs: create/delete one with a veth pair.

Boundary: ``ip`` commands only (root). Each namespace gets a /30 from 10.213.0.0/16,
chosen so that it collides with no address or route already on the host; the VM side
is the namespace end of the pair, the host end is its "remote" peer.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import subprocess
from dataclasses import dataclass

POOL = ipaddress.IPv4Network("10.213.0.0/16")


@dataclass(frozen=True)
class VmNet:
    netns: str
    host_if: str
    vm_if: str
    host_ip: str
    vm_ip: str
    prefix: int = 30


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def _used_networks() -> list[ipaddress.IPv4Network]:
    used = []
    out = _ip("-4", "-o", "addr", "show").stdout + _ip("-4", "route", "show", "table", "all").stdout
    for token in out.split():
        try:
            used.append(ipaddress.IPv4Network(token, strict=False))
        except ValueError:
            continue
    return used


def allocate_subnet() -> ipaddress.IPv4Network:
    used = _used_networks()
    subnets = list(POOL.subnets(new_prefix=30))
    for net in random.sample(subnets, 256):
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free /30 left in 10.213.0.0/16")


def create(name: str | None = None) -> VmNet:
    """Create namespace NAME with veth pair (host end up in the root namespace)."""
    tag = secrets.token_hex(3)
    name = name or f"alc-{tag}"
    net = allocate_subnet()
    host_ip, vm_ip = (str(h) for h in net.hosts())
    vn = VmNet(name, f"alch{tag}", f"alcv{tag}", host_ip, vm_ip)
    _ip("netns", "add", name)
    try:
        _ip("link", "add", vn.host_if, "type", "veth", "peer", "name", vn.vm_if, "netns", name)
        _ip("addr", "add", f"{host_ip}/30", "dev", vn.host_if)
        _ip("link", "set", vn.host_if, "up")
        _ip("-n", name, "addr", "add", f"{vm_ip}/30", "dev", vn.vm_if)
        _ip("-n", name, "link", "set", vn.vm_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError:
        delete(vn)
        raise
    return vn


def delete(vn: VmNet) -> None:
    """Remove the namespace (its veth end goes with it, taking the peer too)."""
    _ip("netns", "delete", vn.netns, check=False)
    _ip("link", "delete", vn.host_if, check=False)
