"""The OpenAPI 3.0 description of alertcap's HTTP routes, published at
`GET /api/openapi.json` (function key) and used by the schemathesis tests.

Built from the same limits the validators use, so the document cannot drift from the
code on the numbers that matter.
"""

from __future__ import annotations

import re
from typing import Any

from alertcap.domain import limits


def _anchored(pattern: str) -> str:
    # OpenAPI patterns are ECMA regexes searched anywhere: anchor them. \Z has no ECMA
    # form; a JSON string with a trailing newline is refused by the server either way.
    # Python's named groups (?P<x>...) are not ECMA: plain groups match the same strings.
    return "^(?:" + re.sub(r"\(\?P<\w+>", "(", pattern) + ")$"

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "detail": {"type": "object"}}}}}

_WEBHOOK = {"type": "object", "required": ["id", "statusQueryGetUri", "accepted", "instances"],
            "properties": {"id": {"type": "string"},
                           "statusQueryGetUri": {"type": "string"},
                           "accepted": {"type": "integer"},
                           "instances": {"type": "array", "items": {
                               "type": "object",
                               "required": ["vmId", "instanceId", "state", "statusQueryGetUri"],
                               "properties": {
                                   "vmId": {"type": "string"},
                                   "instanceId": {"type": "string"},
                                   "state": {"type": "string", "enum": ["started", "running"]},
                                   "statusQueryGetUri": {"type": "string"}}}}}}

_STATUS = {"type": "object", "required": ["id", "statusQueryGetUri", "instances"],
           "properties": {"id": {"type": "string"},
                          "statusQueryGetUri": {"type": "string"},
                          "sendEventPostUri": {"type": "string"},
                          "terminatePostUri": {"type": "string"},
                          "rewindPostUri": {"type": "string"},
                          "purgeHistoryDeleteUri": {"type": "string"},
                          "instances": {"type": "array", "items": {"type": "object"}}}}

_FILTER = {"type": "object", "additionalProperties": False, "properties": {
    "protocol": {"type": "string", "enum": ["TCP", "UDP", "Any"]},
    "localIPAddress": {"type": "string", "maxLength": limits.MAX_FILTER_VALUE_LENGTH},
    "remoteIPAddress": {"type": "string", "maxLength": limits.MAX_FILTER_VALUE_LENGTH},
    "localPort": {"type": "string", "maxLength": limits.MAX_FILTER_VALUE_LENGTH},
    "remotePort": {"type": "string", "maxLength": limits.MAX_FILTER_VALUE_LENGTH}}}

_CAPTURE = {"type": "object", "additionalProperties": False, "properties": {
    "timeLimitInSeconds": {"type": "integer", "minimum": 1,
                           "maximum": limits.MAX_TIME_LIMIT_SECONDS},
    "bytesToCapturePerPacket": {"type": "integer", "minimum": 0,
                                "maximum": limits.MAX_BYTES_PER_PACKET},
    "totalBytesPerSession": {"type": "integer", "minimum": 1, "maximum": limits.MAX_TOTAL_BYTES},
    "localFilePath": {"type": "string", "maxLength": limits.MAX_LOCAL_PATH_LENGTH,
                      "pattern": _anchored(limits.LINUX_LOCAL_PATH_PATTERN + "|"
                                           + limits.WINDOWS_LOCAL_PATH_PATTERN)},
    "toStorage": {"type": "boolean"},
    "filters": {"type": "array", "maxItems": limits.MAX_FILTERS, "items": _FILTER}}}


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ERROR}}}
    return {**ok, "400": {"description": "malformed request", **error},
            "401": {"description": "missing or wrong function key"},
            "422": {"description": "nothing to act on", **error}}


def document() -> dict[str, Any]:
    status = {"content": {"application/json": {"schema": _STATUS}}}
    webhook = {"content": {"application/json": {"schema": _WEBHOOK}}}
    security: list[dict[str, list[str]]] = [{"functionKey": []}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "alertcap", "version": "1.0.0",
                 "description": "Alert-triggered packet capture for Azure VMs."},
        "servers": [{"url": "/api"}],
        "components": {"securitySchemes": {
            "functionKey": {"type": "apiKey", "in": "query", "name": "code"}}},
        "paths": {
            "/alerts": {"post": {
                "operationId": "postAlert", "security": security,
                "summary": "Azure Monitor webhook (every alert schema): one run per VM",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                "responses": _responses({
                    "202": {"description": "started (status URLs carry no key)", **webhook},
                    "200": {"description": "already running, or a resolved alert"}})}},
            "/captures": {"post": {
                "operationId": "startCapture", "security": security,
                "summary": "Start a capture on a VM by hand",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["vmId"],
                               "additionalProperties": False, "properties": {
                                   "vmId": {"type": "string",
                                            "maxLength": limits.MAX_RESOURCE_ID_LENGTH,
                                            "pattern": _anchored(limits.VM_ID_PATTERN)},
                                   "location": {"type": "string",
                                                "pattern": _anchored(limits.LOCATION_PATTERN)},
                                   "reason": {"type": "string",
                                              "maxLength": limits.MAX_REASON_LENGTH},
                                   "capture": _CAPTURE}}}}},
                "responses": _responses({
                    "202": {"description": "started", **status},
                    "200": {"description": "this VM's run is already live", **status}})}},
            "/captures/{instanceId}/stop": {"post": {
                "operationId": "stopCapture", "security": security,
                "summary": "End a running capture early",
                "parameters": [{"name": "instanceId", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": _anchored(
                                    limits.INSTANCE_ID_PATTERN)}}],
                "responses": {"202": {"description": "stop requested"},
                              "401": {"description": "missing or wrong function key"},
                              "404": {"description": "no such run"},
                              "409": {"description": "the run is not running"}}}},
        },
    }
