"""The orphan sweep's Azure side: find our run captures on the watchers the app may see, and
stop + delete the ones whose run is gone (starters/orphans.py asks Durable who is gone).

A run's capture is "ours" when its name has the run prefix `<prefix>-` (alertcap.domain.vm
capture names). Standby rings are named `<prefix>.standby-...` and belong to their keeper:
they never match. Each capture maps back to the one instance that may own it: its target
(a VM, or a scale set plus the capture's scope) gives the instance id exactly as the
webhook derived it (alertcap.domain.targets), and the name must carry that target's own
prefix, or the capture is reported and left alone (we cannot tell whose it is).

Boundary: plain functions over `Clients` (not Durable activities: the sweep is a trigger's
work, like the standby sweep), SDK errors mapped by alertcap.sdk.errors. Bounded: at most
MAX_CAPTURES of ours per sweep, every call under the SDK's own timeouts, nothing started
after the caller's deadline. A 404 on stop or delete means already gone: that is the goal.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from alertcap.domain.targets import Scope, capture_prefix_for_target, instance_id_for_target
from alertcap.domain.vm import VmRef
from alertcap.errors import AlertcapError, InvalidResourceId, ResourceNotFound
from alertcap.sdk.clients import Clients
from alertcap.sdk.errors import call_azure

log = logging.getLogger("alertcap.orphans")

MAX_CAPTURES = 2000  # of ours, per sweep: the rest wait for the next one (reported)
PARALLEL = 4  # ARM calls at once: queryStatus/stop/delete are each a long-running operation
# Still running (or not known to have ended): Network Watcher's PacketCaptureStatus values
# other than Stopped and Error.
ENDED = ("Stopped", "Error")

@dataclass(frozen=True)
class OurCapture:
    subscription_id: str
    watcher_group: str
    watcher: str
    name: str
    target: str
    instance_id: str | None  # None: the name has our prefix but not its target's
    problem: str | None = None

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "watcher": self.watcher, "target": self.target,
                "instanceId": self.instance_id}


@dataclass(frozen=True)
class Place:
    """One place to look: a subscription, or one resource group of it."""

    subscription_id: str
    resource_group: str | None = None

    @classmethod
    def parse(cls, text: str) -> Place:
        parts = text.strip().strip("/").split("/")
        if len(parts) == 2 and parts[0].lower() == "subscriptions" and parts[1]:
            return cls(parts[1].lower())
        if len(parts) == 4 and parts[0].lower() == "subscriptions" \
                and parts[2].lower() == "resourcegroups" and parts[1] and parts[3]:
            return cls(parts[1].lower(), parts[3])
        raise InvalidResourceId(f"not a subscription or resource-group id: {text[:200]!r}")


def owner_of(prefix: str, name: str, target: str, scope: Any) -> tuple[str | None, str | None]:
    """(instance id, problem) for one of our captures, from its target and scope."""
    try:
        if "/virtualmachinescalesets/" in target.lower():
            vm = VmRef.parse_scale_set(target)
            sc: Scope | None = Scope.of(getattr(scope, "include", None) or (),
                                        getattr(scope, "exclude", None) or ())
        else:
            vm, sc = VmRef.parse(target), None
    except AlertcapError:
        return None, f"{name}: its target is no VM or scale set id"
    if not name.startswith(capture_prefix_for_target(prefix, vm, sc)):
        # Our run prefix, but not the name our runs give this target (another app with the
        # same ALERTCAP_CAPTURE_PREFIX, or a capture renamed by hand): not ours to stop.
        return None, f"{name}: named like ours, but not for its target {vm.name}"
    return instance_id_for_target(vm, sc), None


def _watchers(network: Any) -> list[Any]:
    return list(network.network_watchers.list_all())


def _captures(network: Any, group: str, watcher: str) -> list[Any]:
    return list(network.packet_captures.list(group, watcher))


def list_ours(clients: Clients, scopes: Iterable[str], prefix: str, deadline: float
              ) -> tuple[list[OurCapture], list[str], bool]:
    """Our run captures on every watcher in the scopes: (captures, problems, truncated).
    A listing that fails (403 included) is a problem named in the report, not a crash;
    the other watchers are still swept."""
    found: list[OurCapture] = []
    problems: list[str] = []
    wanted: dict[str, set[str] | None] = {}  # subscription -> groups (None: all)
    for text in scopes:
        s = Place.parse(text)
        groups = wanted.get(s.subscription_id, set())
        if s.resource_group is None or groups is None:
            wanted[s.subscription_id] = None
        else:
            wanted[s.subscription_id] = groups | {s.resource_group.lower()}
    run_prefix = f"{prefix}-"
    for sub, groups in wanted.items():
        network = clients.network(sub)
        try:
            # list_all rather than per-group lists: the call the app already makes (and
            # holds a permission for); ARM returns only the watchers we may read.
            watchers = call_azure("list Network Watchers", partial(_watchers, network))
        except AlertcapError as exc:
            problems.append(f"subscription {sub}: {exc.message}")
            continue
        for w in watchers:
            group = str(w.id).split("/")[4]
            if groups is not None and group.lower() not in groups:
                continue
            if time.monotonic() > deadline:
                return found, [*problems, "time budget spent: the next sweep goes on"], True
            try:
                captures = call_azure(f"list packet captures of {w.name}",
                                  partial(_captures, network, group, str(w.name)))
            except AlertcapError as exc:
                problems.append(f"watcher {w.name}: {exc.message}")
                continue
            for c in captures:
                name = str(c.name)
                if not name.startswith(run_prefix):
                    continue  # someone else's, or a standby ring (its keeper's)
                if len(found) >= MAX_CAPTURES:
                    return found, [*problems, f"more than {MAX_CAPTURES} captures of ours: "
                                   "the next sweep goes on"], True
                props = getattr(c, "properties", None)
                target = str(getattr(props, "target", None) or "")
                iid, problem = owner_of(prefix, name, target, getattr(props, "scope", None))
                found.append(OurCapture(sub, group, str(w.name), name, target, iid, problem))
    return found, problems, False


@dataclass(frozen=True)
class Settled:
    capture: OurCapture
    status: str | None  # the capture's status before we acted (None: already gone)
    stopped: bool  # we stopped and deleted it
    error: str | None = None


def _settle_one(clients: Clients, c: OurCapture, deadline: float) -> Settled:
    if time.monotonic() > deadline:
        return Settled(c, None, False, f"{c.name}: time budget spent, left for the next sweep")
    ops = clients.network(c.subscription_id).packet_captures
    args = (c.watcher_group, c.watcher, c.name)
    try:
        status = call_azure(f"query status of capture {c.name}",
                        lambda: ops.begin_get_status(*args).result())
        state = str(getattr(status.packet_capture_status, "value",
                            status.packet_capture_status) or "Unknown")
        if state in ENDED:
            return Settled(c, state, False)  # ended on its own: nothing runs unseen
        # Already gone (the VM's next run cleared it meanwhile) is the goal: 404s pass.
        with contextlib.suppress(ResourceNotFound):
            call_azure(f"stop capture {c.name}", lambda: ops.begin_stop(*args).result())
        with contextlib.suppress(ResourceNotFound):
            # Deleting the session keeps its blob (Network Watcher's rule): the evidence
            # the capture wrote before we stopped it stays in storage.
            call_azure(f"delete capture {c.name}", lambda: ops.begin_delete(*args).result())
        log.warning("orphan sweep: stopped and deleted %s on %s (target %s, run %s gone)",
                    c.name, c.watcher, c.target.rsplit("/", 1)[-1], c.instance_id)
        return Settled(c, state, True)
    except ResourceNotFound:
        return Settled(c, None, False)
    except AlertcapError as exc:
        return Settled(c, None, False, exc.message)


def settle(clients: Clients, orphans: list[OurCapture], deadline: float) -> list[Settled]:
    """Stop and delete each orphan still running; leave ended ones (the VM's next run
    clears them, and the session shows the operator how the capture ended)."""
    if not orphans:
        return []
    with ThreadPoolExecutor(min(PARALLEL, len(orphans)), thread_name_prefix="orphans") as pool:
        return list(pool.map(lambda c: _settle_one(clients, c, deadline), orphans))
