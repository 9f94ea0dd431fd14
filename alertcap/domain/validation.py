"""Untrusted JSON in (manual starts, settings), checked values out: the manual-start body
and capture options, validated against Network Watcher's own rules before anything is
created, so a bad value is a 422 at the door instead of a failed run and an email later.

The JSON names are Network Watcher's own (timeLimitInSeconds, bytesToCapturePerPacket,
totalBytesPerSession, filters[].localIPAddress ...), so an operator can paste what they
know from the portal or the REST API. Every limit and pattern comes from `domain.limits`.

Network Watcher's filter values (REST spec, PacketCaptureFilter): one value ("80",
"10.0.0.4"), one range ("80-85", "10.0.0.1-10.0.0.9") or a list of single values
("80;443"); "multiple ranges" and "mixing ranges with multiple entries" are not supported.
Addresses are IPv4 dotted quads; ports ASCII digits 0-65535; ranges ascend.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import Any

from alertcap.domain import limits
from alertcap.domain.run import CaptureFilter, CaptureOptions
from alertcap.domain.vm import VmRef
from alertcap.errors import Unprocessable

_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "any": "Any"}
_PORT = re.compile(limits.PORT_PATTERN, re.ASCII)
_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}", re.ASCII)
_LINUX_PATH = re.compile(limits.LINUX_LOCAL_PATH_PATTERN, re.ASCII)
_WINDOWS_PATH = re.compile(limits.WINDOWS_LOCAL_PATH_PATTERN, re.ASCII)
_LOCATION = re.compile(limits.LOCATION_PATTERN, re.ASCII)

FILTER_FIELDS = {
    "protocol": "protocol",
    "localIPAddress": "local_ip",
    "remoteIPAddress": "remote_ip",
    "localPort": "local_port",
    "remotePort": "remote_port",
}
OPTION_FIELDS = {
    "timeLimitInSeconds": "time_limit_seconds",
    "bytesToCapturePerPacket": "bytes_per_packet",
    "totalBytesPerSession": "total_bytes",
    "localFilePath": "local_file_path",
    "filters": "filters",
    "toStorage": "to_storage",
}
MANUAL_FIELDS = ("vmId", "location", "reason", "capture")


def _items(value: str, field: str) -> tuple[list[str], bool]:
    """Split a filter value into its items; True when it is one range."""
    items = value.split(";")
    if items[-1] == "" and len(items) > 1:  # the spec's own examples end lists with ";"
        items = items[:-1]
    ranges = [i for i in items if "-" in i]
    if ranges and len(items) > 1:
        raise Unprocessable(f"{field}: Network Watcher takes one range or a list of single "
                            f"values, not both; got {value[:60]!r}")
    return items, bool(ranges)


def _ipv4(text: str, field: str) -> ipaddress.IPv4Address:
    if not _IPV4.fullmatch(text):
        raise Unprocessable(f"{field}: not an IPv4 address: {text[:60]!r} "
                            "(Network Watcher filters take IPv4 dotted quads)")
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise Unprocessable(f"{field}: not an IPv4 address: {text[:60]!r}") from None


def _ip_terms(value: str, field: str) -> int:
    items, is_range = _items(value, field)
    if is_range:
        ends = items[0].split("-")
        if len(ends) != 2:
            raise Unprocessable(f"{field}: bad address range {items[0][:60]!r}")
        low, high = (_ipv4(e, field) for e in ends)
        if low > high:
            raise Unprocessable(f"{field}: the range {items[0]!r} runs backwards")
        return sum(1 for _ in ipaddress.summarize_address_range(low, high))
    for item in items:
        _ipv4(item, field)
    return len(items)


def _port(text: str, field: str, value: str) -> int:
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise Unprocessable(f"{field}: ports are 0-65535, as \"80\", \"80-85\" or "
                            f"\"80;443\"; got {value[:60]!r}")
    return int(text)


def _port_terms(value: str, field: str) -> int:
    items, is_range = _items(value, field)
    if is_range:
        ends = items[0].split("-")
        if len(ends) != 2:
            raise Unprocessable(f"{field}: bad port range {items[0][:60]!r}")
        low, high = (_port(e, field, value) for e in ends)
        if low > high:
            raise Unprocessable(f"{field}: the range {items[0]!r} runs backwards")
        return 1
    for item in items:
        _port(item, field, value)
    return len(items)


def validate_filters(raw: Any) -> tuple[CaptureFilter, ...]:
    if not isinstance(raw, list):
        raise Unprocessable("filters must be a list of objects")
    if len(raw) > limits.MAX_FILTERS:
        raise Unprocessable(f"at most {limits.MAX_FILTERS} filters")
    filters = []
    terms = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise Unprocessable(f"filters[{i}] must be an object")
        unknown = set(item) - set(FILTER_FIELDS)
        if unknown:
            raise Unprocessable(f"filters[{i}]: unknown fields {sorted(unknown)[:5]}")
        values: dict[str, str] = {}
        for json_name, attr in FILTER_FIELDS.items():
            value = item.get(json_name)
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and "Port" in json_name:
                value = str(value)
            if (not isinstance(value, str) or not value
                    or len(value) > limits.MAX_FILTER_VALUE_LENGTH):
                raise Unprocessable(f"filters[{i}].{json_name} must be a non-empty string of "
                                    f"at most {limits.MAX_FILTER_VALUE_LENGTH} characters")
            values[attr] = value
        protocol = _PROTOCOLS.get(values.get("protocol", "Any").lower())
        if protocol is None:
            raise Unprocessable(f"filters[{i}].protocol must be TCP, UDP or Any")
        values["protocol"] = protocol
        for json_name, attr in FILTER_FIELDS.items():
            if attr in values and attr.endswith("_ip"):
                terms += _ip_terms(values[attr], f"filters[{i}].{json_name}")
            elif attr in values and attr.endswith("_port"):
                terms += _port_terms(values[attr], f"filters[{i}].{json_name}")
        filters.append(CaptureFilter(**values))
    if terms > limits.MAX_FILTER_TERMS:
        raise Unprocessable(f"the filters expand to {terms} address and port terms; the limit "
                            f"is {limits.MAX_FILTER_TERMS}: use fewer values or wider ranges")
    return tuple(filters)


def local_path_os(path: str) -> str | None:
    """"linux" or "windows" for a well-formed local capture path, else None."""
    if len(path) > limits.MAX_LOCAL_PATH_LENGTH or ".." in path:
        return None
    if _LINUX_PATH.fullmatch(path):
        return "linux"
    if _WINDOWS_PATH.fullmatch(path):
        return "windows"
    return None


def validate_options(options: CaptureOptions) -> CaptureOptions:
    if not 1 <= options.time_limit_seconds <= limits.MAX_TIME_LIMIT_SECONDS:
        raise Unprocessable(f"timeLimitInSeconds must be 1-{limits.MAX_TIME_LIMIT_SECONDS}")
    if not 0 <= options.bytes_per_packet <= limits.MAX_BYTES_PER_PACKET:
        raise Unprocessable(f"bytesToCapturePerPacket must be 0 (whole packet) to "
                            f"{limits.MAX_BYTES_PER_PACKET}")
    if not 1 <= options.total_bytes <= limits.MAX_TOTAL_BYTES:
        raise Unprocessable(f"totalBytesPerSession must be 1 to {limits.MAX_TOTAL_BYTES}")
    path = options.local_file_path
    if path is not None and local_path_os(path) is None:
        raise Unprocessable("localFilePath must be /var/captures/<name>.cap on Linux or "
                            "<drive>:\\<folders>\\<name>.cap on Windows")
    if not options.to_storage and path is None:
        raise Unprocessable("a capture needs a storage account or a localFilePath")
    return options


def options_from_json(raw: Any, defaults: CaptureOptions) -> CaptureOptions:
    """Manual-start options over the configured defaults."""
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise Unprocessable("capture must be an object")
    unknown = set(raw) - set(OPTION_FIELDS)
    if unknown:
        raise Unprocessable(f"capture: unknown fields {sorted(unknown)[:5]}")
    changes: dict[str, Any] = {}
    for json_name, attr in OPTION_FIELDS.items():
        if json_name not in raw:
            continue
        value = raw[json_name]
        if attr == "filters":
            changes[attr] = validate_filters(value)
        elif attr == "local_file_path":
            if value is not None and not isinstance(value, str):
                raise Unprocessable("localFilePath must be a string")
            changes[attr] = value
        elif attr == "to_storage":
            if not isinstance(value, bool):
                raise Unprocessable("toStorage must be true or false")
            changes[attr] = value
        else:
            if not isinstance(value, int) or isinstance(value, bool):
                raise Unprocessable(f"{json_name} must be a whole number")
            changes[attr] = value
    return validate_options(replace(defaults, **changes))


@dataclass(frozen=True)
class ManualStart:
    vm: VmRef
    location: str | None
    reason: str | None
    options: CaptureOptions


def manual_start(body: Any, defaults: CaptureOptions) -> ManualStart:
    """The body of POST /api/captures: {"vmId", "location"?, "reason"?, "capture"?}."""
    if not isinstance(body, dict):
        raise Unprocessable("send a JSON object: {\"vmId\": ..., \"capture\": {...}}")
    unknown = set(body) - set(MANUAL_FIELDS)
    if unknown:
        raise Unprocessable(f"unknown fields {sorted(unknown)[:5]}")
    vm = VmRef.parse(body.get("vmId"))
    location = body.get("location")
    if location is not None:
        if not isinstance(location, str) or not _LOCATION.fullmatch(location.lower()):
            raise Unprocessable("location must be an Azure region name such as eastus")
        location = location.lower()
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str)
                               or len(reason) > limits.MAX_REASON_LENGTH):
        raise Unprocessable(f"reason must be a string of at most {limits.MAX_REASON_LENGTH} "
                            "characters")
    return ManualStart(vm, location, reason, options_from_json(body.get("capture"), defaults))
