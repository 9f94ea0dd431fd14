"""Run-time fault injection and the recent request log for the local ARM endpoint.

Rules (POST /_localdev/faults, one JSON object each; DELETE clears them all):

* ``{"kind": "http", "method": "GET", "pathContains": "networkWatchers", "status": 429,
  "retryAfter": 1, "count": 2}`` -- answer matching requests with that status (429, 500,
  503, ...) and ARM error JSON instead of serving them. ``method`` defaults to any,
  ``count`` limits how many requests it hits, ``probability`` (with ``seed``) makes it
  random; without either it hits every match. ``code`` overrides the error code.
* ``{"kind": "captureError", "nameContains": "", "error": "CaptureFailed",
  "afterSeconds": 0.2, "count": 1}`` -- the next matching capture runs, then ends in
  status ``Error`` with that packetCaptureError.
* ``{"kind": "agentMissing", "vm": "<vm name or id>"}`` -- the VM loses its
  AzureNetworkWatcherExtension (clearing the faults gives it back).
* ``{"kind": "agentState", "vm": "<vm or scale set name or id>", "provisioningState":
  "Failed", "typeHandlerVersion": "1.3"}`` -- the agent extension is there but failed
  and/or old (either field may be left out).
* ``{"kind": "watcherAbsent", "location": "eastus"}`` -- the region has no Network
  Watcher (every watcher there disappears until the faults are cleared).
"""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass, field

from ..middleware import DEFAULT_CODES

__all__ = ["DEFAULT_CODES", "KINDS", "Faults", "Rule", "validate"]

KINDS = frozenset({"http", "captureError", "agentMissing", "agentState", "watcherAbsent"})


@dataclass
class Rule:
    spec: dict
    remaining: int | None = None
    rng: random.Random | None = None
    hits: int = 0

    def fires(self) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rng is not None and self.rng.random() >= float(self.spec["probability"]):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.hits += 1
        return True


def validate(spec: object, kinds: frozenset[str] = KINDS) -> dict:
    if not isinstance(spec, dict) or spec.get("kind", "http") not in kinds:
        raise ValueError(f"a fault rule is an object with kind in {sorted(kinds)}")
    spec = {"kind": "http", **spec}
    if spec["kind"] == "http":
        status = spec.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("http rules need an integer status 400-599")
    if spec["kind"] in ("agentMissing", "agentState") and not spec.get("vm"):
        raise ValueError(f"{spec['kind']} rules need vm")
    if spec["kind"] == "agentState" and not (
            spec.get("provisioningState") or spec.get("typeHandlerVersion")):
        raise ValueError("agentState rules need provisioningState and/or typeHandlerVersion")
    if spec["kind"] == "watcherAbsent" and not spec.get("location"):
        raise ValueError("watcherAbsent rules need location")
    if "probability" in spec and not 0 <= float(spec["probability"]) <= 1:
        raise ValueError("probability must be within [0, 1]")
    return spec


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    log: deque = field(default_factory=lambda: deque(maxlen=20000))
    kinds: frozenset[str] = KINDS  # the email endpoint has its own kinds

    def add(self, spec: dict) -> Rule:
        spec = validate(spec, self.kinds)
        rule = Rule(
            spec,
            remaining=int(spec["count"]) if "count" in spec else None,
            # Seeded on purpose: a test replays the same fault sequence.
            rng=random.Random(spec.get("seed")) if "probability" in spec else None,  # noqa: S311
        )
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def match_http(self, method: str, path: str) -> dict | None:
        for rule in self.rules:
            s = rule.spec
            if s["kind"] != "http":
                continue
            if s.get("method", "*") not in ("*", method.upper()):
                continue
            if s.get("pathContains", "").lower() not in path.lower():
                continue
            if rule.fires():
                return s
        return None

    def take(self, kind: str, name: str = "") -> dict | None:
        """The first rule of KIND whose nameContains matches NAME and that fires now."""
        for rule in self.rules:
            s = rule.spec
            if s["kind"] == kind and s.get("nameContains", "") in name and rule.fires():
                return s
        return None

    def record(self, method: str, path: str, status: int, started: float | None = None
               ) -> None:
        now = time.time()
        self.log.append({"method": method, "path": path, "status": status, "timestamp": now,
                         "started": now if started is None else started})

    def describe(self) -> list[dict]:
        return [{**r.spec, "hits": r.hits, "remaining": r.remaining} for r in self.rules]
