"""Azure SDK exceptions in, the alertcap error tree out: the one place foreign errors are
mapped, by table (as azure-core's own `map_error` does), so the rule for each answer can
be read at a glance.

Order of decision: the exception's kind (no answer at all is transient), then the HTTP
status. Never the wording of a message: whether the Network Watcher agent is missing is
decided from the VM's extension list (`activities/network.ensure_agent`), as Compute
reports it, not from what an error says (Network Watcher's error code for a capture on a
VM without the agent is not published, and a stand-in's wording is no evidence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from alertcap.errors import (
    AccessDenied,
    AzureBadRequest,
    AzureError,
    ResourceNotFound,
    TransientAzureError,
)

# HTTP status -> error. Throttling, server faults and gateway timeouts are transient; 409
# is permanent here: Network Watcher answers 409 for conflicts a retry will not fix.
BY_STATUS: dict[int, type[AzureError]] = {
    400: AzureBadRequest,
    401: AccessDenied,
    403: AccessDenied,
    404: ResourceNotFound,
    408: TransientAzureError,
    429: TransientAzureError,
    500: TransientAzureError,
    502: TransientAzureError,
    503: TransientAzureError,
    504: TransientAzureError,
}

_HINTS: dict[type[AzureError], str] = {
    AccessDenied: " (check the managed identity's role assignments)",
}


def _code_and_message(exc: Any) -> tuple[str, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or getattr(exc, "reason", "") or ""
    message = getattr(error, "message", None) or str(exc).split("\n")[0]
    return str(code), str(message)


def from_azure(exc: BaseException, what: str) -> AzureError:
    """Map an azure-core exception to the tree; `what` names the call for the operator."""
    # Imported here so the pure parts of alertcap load without azure-core.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, AzureError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientAzureError(f"{what}: Azure did not answer ({type(exc).__name__})")
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return AccessDenied(f"{what}: could not get a token for the managed identity")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code, message = _code_and_message(exc)
        cls = BY_STATUS.get(status) or (
            TransientAzureError if status >= 500 else AzureBadRequest)
        return cls(f"{what}: {status} {code}: {message}".strip() + _HINTS.get(cls, ""))
    return TransientAzureError(f"{what}: {type(exc).__name__}: {exc}")


T = TypeVar("T")


def call_azure(what: str, call: Callable[[], T]) -> T:
    """Run one SDK call; its exception comes out mapped to the tree (`what` names it)."""
    try:
        return call()
    except Exception as exc:
        raise from_azure(exc, what) from exc
