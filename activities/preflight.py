"""The preflight of a version-3 run: everything between the alert and the capture's PUT, in
one activity, with the independent ARM calls made concurrently.

    region's watcher (cached)  ─┐
    GET the VM (region; agent) ─┼─► stale clean-up + limit check, from ONE listing
    LIST the watcher's captures ┘

ARM round trips before the PUT, one after another: one when the watcher is cached (GET VM ∥
LIST), two when the alert names the region but the watcher is not cached yet (GET VM ∥ GET
watcher, then LIST), three when neither is known (GET VM, GET watcher, LIST). A stale capture
of ours (the VM's previous run) adds one: its DELETE, up to ARM's 202, not the operation's
polls.

The watcher cache lives in this process (module level, with a TTL): a region's watcher does
not move between runs, and reading it back from run records would cost more than the GET it
saves. A cached watcher is trusted without a GET; if it has vanished, its listing answers 404
and the watcher is resolved again in the same attempt. The cache is an optimisation only:
a cold process resolves as before, so nothing depends on which worker runs the activity.

Boundary: ARM calls through the `Clients` only; it decides nothing about the workflow (the
orchestrator raises the errors this reports, as for every activity).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from activities.network import (
    AgentStatus,
    ResolveWatcherInput,
    _region,
    agent_on,
    read_vm,
    resolve_watcher,
)
from activities.spec import activity
from alertcap.domain.run import Watcher
from alertcap.domain.validation import local_path_os
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key
from alertcap.errors import CaptureLimitReached, ResourceNotFound
from alertcap.sdk.clients import Clients
from alertcap.sdk.errors import call_azure

CACHE_TTL_SECONDS = 3600.0  # long enough to serve an alert storm; short enough to notice a
                            # watcher re-created under another name without a 404 first


class WatcherCache:
    """Region -> watcher, and VM -> region (a VM never changes region), per subscription."""

    def __init__(self, ttl: float = CACHE_TTL_SECONDS,
                 clock: Any = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._watchers: dict[tuple[str, str], tuple[float, Watcher]] = {}
        self._regions: dict[str, str] = {}

    def watcher(self, subscription: str, region: str) -> Watcher | None:
        with self._lock:
            hit = self._watchers.get((subscription.lower(), region))
            if hit is None or self.clock() - hit[0] > self.ttl:
                return None
            return hit[1]

    def keep(self, subscription: str, region: str, watcher: Watcher) -> None:
        with self._lock:
            self._watchers[(subscription.lower(), region)] = (self.clock(), watcher)

    def forget(self, subscription: str, region: str) -> None:
        with self._lock:
            self._watchers.pop((subscription.lower(), region), None)

    def region_of(self, vm_id: str) -> str | None:
        with self._lock:
            return self._regions.get(vm_id.lower())

    def keep_region(self, vm_id: str, region: str) -> None:
        with self._lock:
            self._regions[vm_id.lower()] = region

    def clear(self) -> None:
        with self._lock:
            self._watchers.clear()
            self._regions.clear()


CACHE = WatcherCache()


@dataclass(frozen=True)
class PreflightInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    name: str  # the capture this run will create: never deleted, not counted
    name_prefix: str  # our captures of this VM: the stale ones
    limit: int
    location: str | None = None
    install_agent: bool = False
    local_file_path: str | None = None


@dataclass(frozen=True)
class Preflight(Model):
    watcher: Watcher
    vm_location: str
    found_by: str  # "cache", "default-name" or "list_all"
    agent: AgentStatus
    deleted: tuple[str, ...] = ()
    count: int = 0  # other capture sessions on the watcher, after the clean-up
    limit: int = 0
    # Set when the capture must not be created (the local file's OS is not the VM's): the
    # orchestrator raises it as Unprocessable; nothing was deleted.
    refused: str | None = None


def _list(clients: Clients, w: Watcher) -> list[str]:
    ops = clients.network(w.subscription_id).packet_captures
    return [str(c.name) for c in call_azure("list packet captures",
                                        lambda: list(ops.list(w.resource_group, w.name)))]


def _resolve(clients: Clients, vm: VmRef, region: str) -> tuple[Watcher, str]:
    found = resolve_watcher(clients, ResolveWatcherInput(vm, region))
    CACHE.keep(vm.subscription_id, region, found.watcher)
    return found.watcher, found.found_by


def _delete_accepted(clients: Clients, w: Watcher, name: str) -> None:
    """Send the DELETE and stop at ARM's 202: the session is being torn down, and waiting
    for the operation to finish would put its polls before our PUT. Should the delete fail
    after all, the run's monitor loop sweeps stale captures of this VM (version >= 2)."""
    ops = clients.network(w.subscription_id).packet_captures
    call_azure(f"delete stale capture {name}",
           lambda: ops.begin_delete(w.resource_group, w.name, name, polling=False))


@activity("preflight")
def preflight(clients: Clients, inp: PreflightInput) -> Preflight:
    vm = inp.vm
    region = _region(inp.location) if inp.location else CACHE.region_of(vm.id)
    cached = CACHE.watcher(vm.subscription_id, region) if region else None
    with ThreadPoolExecutor(3, thread_name_prefix="preflight") as pool:
        vm_model: Future[Any] = pool.submit(read_vm, clients, vm)
        listing: Future[list[str]] | None = None
        resolving: Future[tuple[Watcher, str]] | None = None
        if cached is not None:
            listing = pool.submit(_list, clients, cached)
        elif region:
            resolving = pool.submit(_resolve, clients, vm, region)
        model = vm_model.result()
        vm_region = _region(str(model.location))
        CACHE.keep_region(vm.id, vm_region)
        agent = agent_on(clients, vm, model, inp.install_agent)
        if cached is not None and cached.location != vm_region:
            cached, listing = None, None  # the alert named another region than the VM's
        if cached is not None and listing is not None:
            watcher, found_by = cached, "cache"
            try:
                names = listing.result()
            except ResourceNotFound:
                # The cached watcher is gone (deleted, or re-created under another name).
                CACHE.forget(vm.subscription_id, vm_region)
                watcher, found_by = _resolve(clients, vm, vm_region)
                names = _list(clients, watcher)
        else:
            resolved = resolving.result() if resolving is not None and region == vm_region \
                else _resolve(clients, vm, vm_region)
            watcher, found_by = resolved
            names = _list(clients, watcher)
    path = inp.local_file_path
    if path and local_path_os(path) != agent.os_type:
        return Preflight(watcher, vm_region, found_by, agent, limit=inp.limit, refused=(
            f"localFilePath {path} is a {local_path_os(path)} path, but {vm.name} runs "
            f"{agent.os_type}"))
    stale = [n for n in names if n.startswith(inp.name_prefix) and n != inp.name]
    if stale:
        with ThreadPoolExecutor(min(len(stale), 4), thread_name_prefix="preflight") as pool:
            for done in [pool.submit(_delete_accepted, clients, watcher, n) for n in stale]:
                done.result()
    count = sum(1 for n in names if n != inp.name and n not in stale)
    if count >= inp.limit:
        raise CaptureLimitReached(
            f"Network Watcher {watcher.name} already holds {count} capture sessions "
            f"(limit {inp.limit}); delete finished ones or raise ALERTCAP_CAPTURE_LIMIT")
    return Preflight(watcher, vm_region, found_by, agent, tuple(stale), count, inp.limit)
