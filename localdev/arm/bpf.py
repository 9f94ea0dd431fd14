"""Packet capture filters -> tcpdump BPF expression, validated like Network Watcher.

Boundary: pure functions. A filter is ``{protocol, localIPAddress, remoteIPAddress,
localPort, remotePort}``; values are single ("80"), ranges ("80-85") or lists ("80;443").
"Local" is the VM's side, so each filter matches both directions. Filters are OR'd;
the fields inside one filter are AND'd (Network Watcher semantics).
"""

from __future__ import annotations

import ipaddress

PROTOCOLS = {"tcp": "tcp", "udp": "udp", "any": None}


class FilterError(ValueError):
    """A filter value Network Watcher would reject (400)."""


def _items(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(";")]
    if not parts or any(not p for p in parts):
        raise FilterError(f"Invalid filter value '{value}'.")
    return parts


def _port_terms(value: str, side: str) -> list[str]:
    terms = []
    for item in _items(value):
        lo, _, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise FilterError(f"Invalid port value '{item}'.") from None
        if not (0 <= a <= b <= 65535):
            raise FilterError(f"Invalid port value '{item}'.")
        terms.append(f"{side} port {a}" if a == b else f"{side} portrange {a}-{b}")
    return terms


def _ip_terms(value: str, side: str) -> list[str]:
    terms = []
    for item in _items(value):
        lo, _, hi = item.partition("-")
        try:
            a = ipaddress.IPv4Address(lo.strip())
            b = ipaddress.IPv4Address(hi.strip()) if hi else a
        except ValueError:
            raise FilterError(f"Invalid IP address value '{item}'.") from None
        if b < a:
            raise FilterError(f"Invalid IP address range '{item}'.")
        # BPF has no address ranges: cover the range with the minimal set of CIDRs.
        for net in ipaddress.summarize_address_range(a, b):
            terms.append(
                f"{side} host {net.network_address}" if net.prefixlen == 32 else f"{side} net {net}"
            )
    return terms


def _any_of(terms: list[str]) -> str:
    return terms[0] if len(terms) == 1 else "(" + " or ".join(terms) + ")"


def _direction(f: dict, local: str, remote: str) -> list[str]:
    parts = []
    if f.get("localIPAddress"):
        parts.append(_any_of(_ip_terms(f["localIPAddress"], local)))
    if f.get("remoteIPAddress"):
        parts.append(_any_of(_ip_terms(f["remoteIPAddress"], remote)))
    if f.get("localPort"):
        parts.append(_any_of(_port_terms(f["localPort"], local)))
    if f.get("remotePort"):
        parts.append(_any_of(_port_terms(f["remotePort"], remote)))
    return parts


def normalize(filters: object) -> list[dict]:
    """Validate filters as sent by a client; return them in Network Watcher's shape."""
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise FilterError("filters must be an array.")
    out = []
    for f in filters:
        if not isinstance(f, dict):
            raise FilterError("Each filter must be an object.")
        proto = str(f.get("protocol") or "Any")
        if proto.lower() not in PROTOCOLS:
            raise FilterError(f"Invalid protocol '{proto}': expected TCP, UDP or Any.")
        g = {"protocol": {"tcp": "TCP", "udp": "UDP", "any": "Any"}[proto.lower()]}
        for key in ("localIPAddress", "remoteIPAddress", "localPort", "remotePort"):
            if f.get(key) not in (None, ""):
                if not isinstance(f[key], str):
                    raise FilterError(f"{key} must be a string.")
                g[key] = f[key]
        _direction(g, "src", "dst")  # raises on bad values
        out.append(g)
    return out


def expression(filters: list[dict]) -> str:
    """The BPF expression for normalized filters ('' = capture everything)."""
    alternatives = []
    for f in filters:
        proto = PROTOCOLS[f["protocol"].lower()]
        outbound = _direction(f, "src", "dst")
        inbound = _direction(f, "dst", "src")
        clauses = [proto] if proto else []
        if outbound:
            clauses.append(f"(({' and '.join(outbound)}) or ({' and '.join(inbound)}))")
        if not clauses:
            return ""  # one filter matches everything, so the OR does too
        alternatives.append(" and ".join(clauses))
    if not alternatives:
        return ""
    return (
        alternatives[0] if len(alternatives) == 1 else " or ".join(f"({a})" for a in alternatives)
    )
