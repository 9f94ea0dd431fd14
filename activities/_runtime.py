"""How every activity runs: decode the input dataclass, call the adapter with the
process's clients, encode the output, and sort failures.

Activities return an envelope: `{"value": <output dict>}` or, for a permanent Azure error
(404, 403, 400, no watcher, no agent, ...), `{"error": <AlertcapError.to_dict()>}`. Only
transient faults are raised, so only they are retried by the orchestrator's RetryOptions:
Durable 1.x retries every raised exception alike, and retrying a 403 five times helps no one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from alertcap.clients import Clients, get_clients
from alertcap.errors import AlertcapError, PermanentAzureError, TransientAzureError
from alertcap.model import Model

log = logging.getLogger("alertcap.activities")

I = TypeVar("I", bound=Model)  # noqa: E741


def run(name: str, payload: Any, input_type: type[I], adapter: Callable[[Clients, I], Model],
        clients: Clients | None = None) -> dict[str, Any]:
    inp = input_type.from_dict(payload)
    try:
        out = adapter(clients or get_clients(), inp)
    except PermanentAzureError as exc:
        log.warning("%s: permanent failure: %s", name, exc.message)
        return {"error": exc.to_dict()}
    except TransientAzureError as exc:
        log.warning("%s: transient failure, will be retried: %s", name, exc.message)
        raise
    except AlertcapError as exc:
        log.error("%s: %s", name, exc.message)
        return {"error": exc.to_dict()}
    return {"value": out.to_dict()}
