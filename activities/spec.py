"""An activity, declared once: its Durable name, its input and output dataclasses (read
from the adapter's annotations) and its adapter, in one `Activity` object created beside
the adapter with `@activity("name")`.

The orchestrator calls it by reference (`run.call(create_capture, inp)`); the blueprint
registers every declared activity (`activities/functions.py`). How each one runs is
decided here, once: decode the input, call the adapter with the process's clients, encode
the output, and sort failures into an envelope:

    {"value": <output dict>}    success
    {"error": <error dict>}     a permanent failure (404, 403, 400, no watcher, no agent):
                                reported as data, so it is not retried
    raise                       a transient fault: Durable's RetryOptions retry it

Durable 1.x retries every raised exception alike, and retrying a 403 five times helps no one.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from alertcap.domain.wire import Model
from alertcap.errors import AlertcapError, TransientAzureError
from alertcap.sdk.clients import Clients, get_clients

log = logging.getLogger("alertcap.activities")

I = TypeVar("I", bound=Model)  # noqa: E741
O = TypeVar("O", bound=Model)  # noqa: E741

_DECLARED: dict[str, Activity[Any, Any]] = {}


@dataclass(frozen=True)
class Activity(Generic[I, O]):
    name: str  # the Durable function name: it is in every history, so it never changes
    input: type[I]
    output: type[O]
    adapter: Callable[[Clients, I], O]
    # At most this many attempts, whatever the run's retry policy says: for a step whose
    # failure should not hold the rest of the run (the summary must not delay the email).
    max_attempts: int | None = None

    def __call__(self, clients: Clients, inp: I) -> O:
        """The adapter itself, for tests and for adapters that build on one another."""
        return self.adapter(clients, inp)

    def run(self, payload: Any, clients: Clients | None = None) -> dict[str, Any]:
        """What the Functions worker calls: JSON in, envelope out."""
        inp = self.input.from_dict(payload)
        try:
            out = self.adapter(clients or get_clients(), inp)
        except TransientAzureError as exc:
            log.warning("%s: transient failure, will be retried: %s", self.name, exc.message)
            raise
        except AlertcapError as exc:
            log.warning("%s: permanent failure: %s", self.name, exc.message)
            return {"error": exc.to_dict()}
        return {"value": out.to_dict()}


def activity(name: str, *, max_attempts: int | None = None
             ) -> Callable[[Callable[[Clients, I], O]], Activity[I, O]]:
    """Declare the decorated adapter `(clients, input) -> output` as activity `name`."""

    def declare(adapter: Callable[[Clients, I], O]) -> Activity[I, O]:
        hints = typing.get_type_hints(adapter)
        params = [h for k, h in hints.items() if k != "return"]
        spec = Activity(name, params[-1], hints["return"], adapter, max_attempts)
        if name in _DECLARED:
            raise ValueError(f"activity {name!r} is declared twice")
        _DECLARED[name] = spec
        return spec

    return declare


def declared() -> tuple[Activity[Any, Any], ...]:
    return tuple(_DECLARED.values())
