"""The OpenAPI 3.0 description of alertcap's HTTP routes, published at
`GET /api/openapi.json` (function key) and used by the schemathesis tests.

Built from the same limits the validators use, so the document cannot drift from the
code on the numbers that matter.
"""

from __future__ import annotations

from typing import Any

from alertcap.validation import MAX_FILTERS, MAX_TIME_LIMIT

_VM_ID_PATTERN = (r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}"
                  r"/providers/Microsoft\.Compute/virtualMachines/[A-Za-z0-9_][-\w.]{0,63}$")

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                   "detail": {"type": "object"}}}}}

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
    "localIPAddress": {"type": "string"}, "remoteIPAddress": {"type": "string"},
    "localPort": {"type": "string"}, "remotePort": {"type": "string"}}}

_CAPTURE = {"type": "object", "additionalProperties": False, "properties": {
    "timeLimitInSeconds": {"type": "integer", "minimum": 1, "maximum": MAX_TIME_LIMIT},
    "bytesToCapturePerPacket": {"type": "integer", "minimum": 0, "maximum": 65535},
    "totalBytesPerSession": {"type": "integer", "minimum": 1, "maximum": 4294967295},
    "localFilePath": {"type": "string", "pattern": r"^/var/captures/[A-Za-z0-9_.-]+\.cap$"},
    "toStorage": {"type": "boolean"},
    "filters": {"type": "array", "maxItems": MAX_FILTERS, "items": _FILTER}}}


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ERROR}}}
    return {**ok, "400": {"description": "malformed request", **error},
            "401": {"description": "missing or wrong function key"},
            "422": {"description": "nothing to act on", **error}}


def document() -> dict[str, Any]:
    status = {"content": {"application/json": {"schema": _STATUS}}}
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
                    "202": {"description": "started", **status},
                    "200": {"description": "already running, or a resolved alert"}})}},
            "/captures": {"post": {
                "operationId": "startCapture", "security": security,
                "summary": "Start a capture on a VM by hand",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"type": "object", "required": ["vmId"],
                               "additionalProperties": False, "properties": {
                                   "vmId": {"type": "string", "pattern": _VM_ID_PATTERN},
                                   "location": {"type": "string", "pattern": "^[a-z0-9]{1,40}$"},
                                   "reason": {"type": "string", "maxLength": 500},
                                   "capture": _CAPTURE}}}}},
                "responses": _responses({
                    "202": {"description": "started", **status},
                    "200": {"description": "this VM's run is already live", **status}})}},
            "/captures/{instanceId}/stop": {"post": {
                "operationId": "stopCapture", "security": security,
                "summary": "End a running capture early",
                "parameters": [{"name": "instanceId", "in": "path", "required": True,
                                "schema": {"type": "string",
                                           "pattern": "^[A-Za-z0-9_.-]{1,100}$"}}],
                "responses": {"202": {"description": "stop requested"},
                              "401": {"description": "missing or wrong function key"},
                              "404": {"description": "no such run"},
                              "409": {"description": "the run is not running"}}}},
        },
    }
