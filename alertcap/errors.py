"""The one exception tree of alertcap, and its single mapping to HTTP.

    AlertcapError                 base: .status (HTTP), .code (stable string), .message
    ├── RequestError              400  the request itself is broken
    │   ├── BodyTooLarge          400  body over the configured limit
    │   └── MalformedJson         400  not JSON, or not a JSON object
    ├── Unprocessable             422  valid JSON we cannot act on
    │   ├── UnknownAlertSchema    422  no Azure Monitor webhook schema matches
    │   ├── NoVmTarget            422  the alert names no virtual machine
    │   ├── InvalidResourceId     422  not a well-formed ARM id of the expected type
    │   ├── EmptyScope            422  a scale-set scope with no instance left to capture
    │   └── MixedTargets          422  one alert names VMs and scale sets (split the rule)
    ├── Unauthenticated           401  the caller did not prove who it is (secure webhook)
    ├── InstanceNotFound          404  no orchestration with that id
    ├── InstanceNotRunning        409  the orchestration is not running (stop)
    ├── ConfigError               500  settings are missing or invalid (found at start-up)
    └── AzureError                     a call to Azure (ARM, storage, email) failed
        ├── TransientAzureError   503  throttled, 5xx, timeout: retried by the orchestration
        └── PermanentAzureError        retrying cannot help: fail fast
            ├── ResourceNotFound  404
            ├── AccessDenied      403
            ├── AzureBadRequest   400
            ├── WatcherNotFound   404  no Network Watcher in the VM's region
            ├── AgentMissing      409  the Network Watcher agent is not on the VM
            ├── CaptureLimitReached 409 the watcher already runs its maximum of captures
            ├── CaptureFailed     502  Network Watcher reported the capture as failed
            └── NotificationFailed 502 the email service ended the send as Failed

HTTP handlers turn any AlertcapError into `error.to_body()` with `error.status`
(`http_status_for`); activities turn Azure SDK exceptions into this tree at the boundary
(`alertcap.sdk.errors.from_azure`, a table) and report permanent ones to the orchestrator
as data (`activities/spec.py`), so only transient faults are retried.
"""

from __future__ import annotations

from typing import Any


class AlertcapError(Exception):
    status = 500
    code = "InternalError"

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return {"error": body}

    def to_dict(self) -> dict[str, Any]:
        """The form an activity returns and the orchestration output records."""
        return {"type": type(self).__name__, "code": self.code, "status": self.status,
                "message": self.message}


class RequestError(AlertcapError):
    status = 400
    code = "BadRequest"


class BodyTooLarge(RequestError):
    code = "BodyTooLarge"


class MalformedJson(RequestError):
    code = "MalformedJson"


class Unprocessable(AlertcapError):
    status = 422
    code = "Unprocessable"


class UnknownAlertSchema(Unprocessable):
    code = "UnknownAlertSchema"


class NoVmTarget(Unprocessable):
    code = "NoVmTarget"


class InvalidResourceId(Unprocessable):
    code = "InvalidResourceId"


class EmptyScope(Unprocessable):
    code = "EmptyScope"


class MixedTargets(Unprocessable):
    code = "MixedTargets"


class Unauthenticated(AlertcapError):
    status = 401
    code = "Unauthenticated"


class InstanceNotFound(AlertcapError):
    status = 404
    code = "InstanceNotFound"


class InstanceNotRunning(AlertcapError):
    status = 409
    code = "InstanceNotRunning"


class ConfigError(AlertcapError):
    status = 500
    code = "ConfigError"


class AzureError(AlertcapError):
    status = 502
    code = "AzureError"


class TransientAzureError(AzureError):
    status = 503
    code = "Transient"


class PermanentAzureError(AzureError):
    code = "Permanent"


class ResourceNotFound(PermanentAzureError):
    status = 404
    code = "ResourceNotFound"


class AccessDenied(PermanentAzureError):
    status = 403
    code = "AccessDenied"


class AzureBadRequest(PermanentAzureError):
    status = 400
    code = "AzureBadRequest"


class WatcherNotFound(PermanentAzureError):
    status = 404
    code = "WatcherNotFound"


class AgentMissing(PermanentAzureError):
    status = 409
    code = "AgentMissing"


class CaptureLimitReached(PermanentAzureError):
    status = 409
    code = "CaptureLimitReached"


class CaptureFailed(PermanentAzureError):
    status = 502
    code = "CaptureFailed"


class NotificationFailed(PermanentAzureError):
    status = 502
    code = "NotificationFailed"


def _subclasses(cls: type[PermanentAzureError]) -> dict[str, type[PermanentAzureError]]:
    found = {cls.__name__: cls}
    for sub in cls.__subclasses__():
        found.update(_subclasses(sub))
    return found


def permanent_from_dict(data: dict[str, Any]) -> PermanentAzureError:
    """Rebuild a permanent error an activity reported as data (see AlertcapError.to_dict).

    The class is looked up in the tree itself, so a new permanent error needs no entry
    anywhere else; an unknown name (an older or newer app's) stays a PermanentAzureError.
    """
    cls = _subclasses(PermanentAzureError).get(str(data.get("type")), PermanentAzureError)
    return cls(str(data.get("message") or "Azure call failed"))


def http_status_for(error: BaseException) -> int:
    return error.status if isinstance(error, AlertcapError) else 500
