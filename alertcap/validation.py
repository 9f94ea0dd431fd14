"""Capture options from untrusted JSON (manual starts, settings), checked against Network
Watcher's rules before anything is created, so a bad value is a 422 at the door instead
of a half-made capture later.

The JSON names are Network Watcher's own (timeLimitInSeconds, bytesToCapturePerPacket,
totalBytesPerSession, filters[].localIPAddress ...), so an operator can paste what they
know from the portal or the REST API.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any

from alertcap.errors import Unprocessable
from alertcap.model import CaptureFilter, CaptureOptions

MAX_TIME_LIMIT = 18000  # Network Watcher's maximum for a (non-continuous) session
MAX_FILTERS = 10
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "any": "Any"}
_LOCAL_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+\.cap$|^[A-Za-z]:(\\[A-Za-z0-9_. -]+)+\.cap$")

_FILTER_FIELDS = {
    "protocol": "protocol",
    "localIPAddress": "local_ip",
    "remoteIPAddress": "remote_ip",
    "localPort": "local_port",
    "remotePort": "remote_port",
}
_OPTION_FIELDS = {
    "timeLimitInSeconds": "time_limit_seconds",
    "bytesToCapturePerPacket": "bytes_per_packet",
    "totalBytesPerSession": "total_bytes",
    "localFilePath": "local_file_path",
    "filters": "filters",
    "toStorage": "to_storage",
}


def _ip_list(value: str, field: str) -> str:
    # "1.2.3.4", "1.2.3.4-1.2.3.9" or "1.2.3.4;5.6.7.8" (Network Watcher's syntax)
    for part in value.split(";"):
        ends = part.split("-")
        if len(ends) > 2:
            raise Unprocessable(f"{field}: bad address range {part!r}")
        for end in ends:
            try:
                ipaddress.ip_address(end.strip())
            except ValueError:
                raise Unprocessable(f"{field}: not an IP address: {end.strip()[:60]!r}") from None
    return value


def _port_list(value: str, field: str) -> str:
    for part in value.split(";"):
        ends = part.split("-")
        if len(ends) > 2 or not all(e.strip().isdigit() and int(e) <= 65535 for e in ends):
            raise Unprocessable(f"{field}: ports are 0-65535, as \"80\", \"80-85\" or "
                                f"\"80;443\"; got {value[:60]!r}")
        if len(ends) == 2 and int(ends[0]) > int(ends[1]):
            raise Unprocessable(f"{field}: empty port range {part!r}")
    return value


def validate_filters(raw: Any) -> tuple[CaptureFilter, ...]:
    if not isinstance(raw, list):
        raise Unprocessable("filters must be a list of objects")
    if len(raw) > MAX_FILTERS:
        raise Unprocessable(f"at most {MAX_FILTERS} filters")
    filters = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise Unprocessable(f"filters[{i}] must be an object")
        unknown = set(item) - set(_FILTER_FIELDS)
        if unknown:
            raise Unprocessable(f"filters[{i}]: unknown fields {sorted(unknown)[:5]}")
        values: dict[str, str] = {}
        for json_name, attr in _FILTER_FIELDS.items():
            value = item.get(json_name)
            if value is None:
                continue
            if isinstance(value, int) and not isinstance(value, bool) and "Port" in json_name:
                value = str(value)
            if not isinstance(value, str) or not value or len(value) > 200:
                raise Unprocessable(f"filters[{i}].{json_name} must be a non-empty string")
            values[attr] = value
        protocol = _PROTOCOLS.get(values.get("protocol", "Any").lower())
        if protocol is None:
            raise Unprocessable(f"filters[{i}].protocol must be TCP, UDP or Any")
        values["protocol"] = protocol
        for attr in ("local_ip", "remote_ip"):
            if attr in values:
                _ip_list(values[attr], f"filters[{i}].{attr}")
        for attr in ("local_port", "remote_port"):
            if attr in values:
                _port_list(values[attr], f"filters[{i}].{attr}")
        filters.append(CaptureFilter(**values))
    return tuple(filters)


def validate_options(options: CaptureOptions) -> CaptureOptions:
    if not 1 <= options.time_limit_seconds <= MAX_TIME_LIMIT:
        raise Unprocessable(f"timeLimitInSeconds must be 1-{MAX_TIME_LIMIT}")
    if not 0 <= options.bytes_per_packet <= 65535:
        raise Unprocessable("bytesToCapturePerPacket must be 0 (whole packet) to 65535")
    if not 1 <= options.total_bytes <= 4294967295:
        raise Unprocessable("totalBytesPerSession must be 1 to 4294967295")
    path = options.local_file_path
    if path is not None and (len(path) > 250 or ".." in path or not _LOCAL_PATH.match(path)):
        raise Unprocessable("localFilePath must be an absolute path ending in .cap "
                            "(on Linux under /var/captures)")
    if not options.to_storage and path is None:
        raise Unprocessable("a capture needs a storage account or a localFilePath")
    return options


def options_from_json(raw: Any, defaults: CaptureOptions) -> CaptureOptions:
    """Manual-start options over the configured defaults."""
    if raw is None:
        return defaults
    if not isinstance(raw, dict):
        raise Unprocessable("capture must be an object")
    unknown = set(raw) - set(_OPTION_FIELDS)
    if unknown:
        raise Unprocessable(f"capture: unknown fields {sorted(unknown)[:5]}")
    changes: dict[str, Any] = {}
    for json_name, attr in _OPTION_FIELDS.items():
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
