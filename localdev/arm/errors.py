"""ARM error responses: ``{"error": {"code", "message"}}`` with an HTTP status."""

from __future__ import annotations

from ..middleware import ServiceError, error_response

ArmError = ServiceError

__all__ = ["ArmError", "bad_request", "error_response", "not_found"]


def bad_request(code: str, message: str) -> ArmError:
    return ArmError(400, code, message)


def not_found(kind: str, name: str, rg: str) -> ArmError:
    """What ARM answers for a resource that is not there (ResourceNotFound, 404)."""
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}' under resource group '{rg}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )
