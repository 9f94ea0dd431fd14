"""Standby ring activities: keep a VM's continuous capture (create, renew, restart, remove
when the opt-in goes), harvest the ring files that cover an alert's lookback window
(copied beside the run's results, out of rotation's reach), and summarise several files
as one capture. Also `find_standby_vms`, the sweep's discovery, a plain function.

Boundary: Azure calls only; the decisions over time (when to look again) are the keeper
orchestration's (orchestrators/standby.py).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.network import (
    ResolveWatcherInput,
    _status,
    resolve_watcher,
)
from activities.spec import activity
from alertcap import pcap
from alertcap.domain.run import CaptureSummary, Watcher
from alertcap.domain.standby import (
    HARVEST_FOLDER,
    Harvest,
    HarvestedFile,
    RingSettings,
    StandbySettings,
)
from alertcap.domain.vm import VmRef
from alertcap.domain.wire import Model, json_key
from alertcap.errors import AlertcapError, ResourceNotFound, Unprocessable
from alertcap.sdk.clients import COMPUTE_API_VERSION, Clients
from alertcap.sdk.errors import call_azure, from_azure

# Network Watcher names each ring blob by when the file closed (NETWORK-WATCHER.md).
RING_BLOB = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/packetcapture_(\d{2})_(\d{2})_(\d{2})_(\d{3})"
                       r"(?:_\d+)?\.cap$")
CONTINUOUS_API = "2024-05-01"  # continuousCapture first appears here; the SDK sends newer
COPY_WAIT_SECONDS = 60


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _captures(clients: Clients, w: Watcher) -> Any:
    # Local, not imported from activities.network: the role scan follows a module's own
    # helpers only (tests/infra/sdk_calls.py).
    return clients.network(w.subscription_id).packet_captures


# --- discovery (the sweep) --------------------------------------------------------------


def _tagged(vm: Any, tag: str) -> bool:
    tags = {str(k).lower(): str(v).lower() for k, v in (getattr(vm, "tags", None) or {}).items()}
    return tags.get(tag.lower()) == "true"


def find_standby_vms(clients: Clients, standby: StandbySettings) -> tuple[list[VmRef], list[str]]:
    """The VMs in standby now: every VM id listed, and every VM tagged <tag>=true in a
    listed resource group. Returns (VMs, problems); a group that cannot be read is a
    problem, not an exception, so one bad entry never drops the others' rings."""
    vms: dict[str, VmRef] = {}
    problems: list[str] = []
    for target in standby.targets:
        parts = target.split("/")
        if len(parts) == 5:
            sub, group = parts[2], parts[4]
            # its own name: the role scan (tests/infra/sdk_calls.py) types names module-wide
            listing = clients.resources(sub).resources
            vm_type = "resourceType eq 'Microsoft.Compute/virtualMachines'"
            try:
                listed: list[Any] = call_azure(f"list VMs in {group}", lambda: list(
                    listing.list_by_resource_group(group, filter=vm_type)))  # noqa: B023
            except AlertcapError as exc:
                problems.append(f"{target}: {exc.message}")
                continue
            for vm in listed:
                if _tagged(vm, standby.tag):
                    ref = VmRef.parse(vm.id)
                    vms[ref.id.lower()] = ref
        else:
            ref = VmRef.parse(target)
            vms[ref.id.lower()] = ref
    return list(vms.values()), problems


def still_standby(clients: Clients, vm: VmRef) -> bool:
    """Is this VM still opted in, by the process's settings (read now, not at start)?"""
    standby = clients.settings.standby
    ids = {t.lower() for t in standby.targets}
    if vm.id.lower() in ids:
        return True
    group = f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}".lower()
    if group not in ids:
        return False
    try:
        model = call_azure(f"read VM {vm.name}", lambda: clients.resources(vm.subscription_id)
                       .resources.get_by_id(vm.id, api_version=COMPUTE_API_VERSION))
    except ResourceNotFound:
        return False
    return _tagged(model, standby.tag)


# --- keep_ring ------------------------------------------------------------------------


@dataclass(frozen=True)
class KeepRingInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    name: str
    ring: RingSettings
    storage_account_id: str | None
    renew_before_seconds: int


@dataclass(frozen=True)
class RingState(Model):
    action: str  # kept | created | renewed | restarted | removed
    status: str  # the ring's queryStatus (Running, ...) or "absent"
    opted_in: bool = True
    started_at: str | None = None
    session_ends_at: str | None = None
    folder: str | None = None  # where the ring's files are
    watcher: Watcher | None = None
    detail: str | None = None


def _create_ring(clients: Clients, w: Watcher, inp: KeepRingInput) -> None:
    from azure.mgmt.network import models

    if not inp.storage_account_id:
        raise Unprocessable("a standby ring needs ALERTCAP_STORAGE_ACCOUNT_ID")
    params = models.PacketCapture(properties=models.PacketCaptureParameters(
        target=inp.vm.id, target_type="AzureVM", continuous_capture=True,
        capture_settings=models.PacketCaptureSettings(
            file_count=inp.ring.file_count, file_size_in_bytes=inp.ring.file_size_bytes,
            session_time_limit_in_seconds=inp.ring.session_seconds),
        storage_location=models.PacketCaptureStorageLocation(
            storage_id=inp.storage_account_id)))
    ops = _captures(clients, w)
    call_azure(f"create standby ring {inp.name}",
           lambda: ops.begin_create(w.resource_group, w.name, inp.name, params).result())


def _delete_ring(clients: Clients, w: Watcher, name: str) -> None:
    ops = _captures(clients, w)
    with contextlib.suppress(ResourceNotFound):
        call_azure(f"delete standby ring {name}",
               lambda: ops.begin_delete(w.resource_group, w.name, name).result())


def _ring_state(clients: Clients, w: Watcher, name: str, ring: RingSettings
                ) -> tuple[str, datetime | None, str | None]:
    ops = _captures(clients, w)
    try:
        got = call_azure(f"read standby ring {name}",
                         lambda: ops.get(w.resource_group, w.name, name))
    except ResourceNotFound:
        return "absent", None, None
    st = _status(call_azure(f"query standby ring {name}", lambda: ops.begin_get_status(
        w.resource_group, w.name, name).result()))
    location = got.properties.storage_location if got.properties else None
    started = _parse(st.started_at) if st.started_at else None
    return st.status, started, getattr(location, "storage_path", None)


@activity("keep_standby_ring")
def keep_standby_ring(clients: Clients, inp: KeepRingInput) -> RingState:
    """One look at a VM's ring: remove it if the VM left standby, (re)create it if it is
    missing, stopped or failed, renew it when its session is about to end."""
    w = resolve_watcher(clients, ResolveWatcherInput(inp.vm)).watcher
    if not still_standby(clients, inp.vm):
        _delete_ring(clients, w, inp.name)
        return RingState("removed", "absent", opted_in=False, watcher=w)
    status, started, folder = _ring_state(clients, w, inp.name, inp.ring)
    action, detail = "kept", None
    now = datetime.now(UTC)
    if status == "absent":
        action = "created"
    elif status in ("Stopped", "Error", "Unknown"):
        action, detail = "restarted", f"the ring was {status}"
    elif started and (started + timedelta(seconds=inp.ring.session_seconds) - now
                      ).total_seconds() < inp.renew_before_seconds:
        # A session cannot be extended: end it and start the next one (a gap of seconds,
        # which a harvest across it reports as missing).
        action = "renewed"
    if action != "kept":
        if status != "absent":
            _delete_ring(clients, w, inp.name)
        _create_ring(clients, w, inp)
        status, started, folder = _ring_state(clients, w, inp.name, inp.ring)
    ends = started + timedelta(seconds=inp.ring.session_seconds) if started else None
    return RingState(action, status, started_at=_iso(started) if started else None,
                     session_ends_at=_iso(ends) if ends else None, folder=folder,
                     watcher=w, detail=detail)


@dataclass(frozen=True)
class RemoveRingInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    name: str


@activity("remove_standby_ring")
def remove_standby_ring(clients: Clients, inp: RemoveRingInput) -> RingState:
    w = resolve_watcher(clients, ResolveWatcherInput(inp.vm)).watcher
    _delete_ring(clients, w, inp.name)
    return RingState("removed", "absent", opted_in=False, watcher=w)


# --- harvest_standby_ring ---------------------------------------------------------------


@dataclass(frozen=True)
class HarvestInput(Model):
    vm: VmRef = field(metadata=json_key("vm_id"))
    name: str  # the ring capture's name
    alert_time: str
    lookback_seconds: int
    run_stamp: str  # the run's identity: the copies' folder
    location: str | None = None
    link_ttl_hours: int = 24


@dataclass
class _RingFile:
    blob: str
    closed_at: datetime
    size: int


def _ring_files(container: Any, prefix: str) -> list[_RingFile]:
    out = []
    for b in container.list_blobs(name_starts_with=prefix.rstrip("/") + "/"):
        m = RING_BLOB.search(b.name)
        if not m:
            continue
        y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
        out.append(_RingFile(b.name, datetime(y, mo, d, h, mi, s, ms * 1000, UTC),
                             int(b.size or 0)))
    return sorted(out, key=lambda f: (f.closed_at, f.blob))


def _first_packet(container: Any, blob: str) -> datetime | None:
    head = container.get_blob_client(blob).download_blob(offset=0, length=40).readall()
    if len(head) < 40:
        return None
    order = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nanos = head[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    secs = int.from_bytes(head[24:28], "little" if order == "<" else "big")
    frac = int.from_bytes(head[28:32], "little" if order == "<" else "big")
    return datetime.fromtimestamp(secs + frac / (1e9 if nanos else 1e6), UTC)


def _span(a: datetime, b: datetime, why: str) -> str:
    return f"{a:%H:%M:%S}-{b:%H:%M:%S} UTC ({int((b - a).total_seconds()) // 60} min " \
           f"{int((b - a).total_seconds()) % 60} s): {why}"


def _copy(container: Any, src: str, dest: str, source_url: str) -> None:
    copy_to = container.get_blob_client(dest)
    copy_to.start_copy_from_url(source_url)
    deadline = time.monotonic() + COPY_WAIT_SECONDS
    while True:
        props = copy_to.get_blob_properties()
        state = props.copy.status if props.copy else "success"
        if state == "success":
            return
        if state in ("failed", "aborted") or time.monotonic() > deadline:
            raise Unprocessable(f"copying {src} ended {state}")
        time.sleep(0.5)


@activity("harvest_standby_ring", max_attempts=2)
def harvest_standby_ring(clients: Clients, inp: HarvestInput) -> Harvest:
    """Copy the ring files that cover [alert - lookback, now] out of the ring and say which
    spans of that window no file covers. No ring of ours: Harvest(standby=False)."""
    w = resolve_watcher(clients, ResolveWatcherInput(inp.vm, inp.location)).watcher
    alert = _parse(inp.alert_time)
    start, now = alert - timedelta(seconds=inp.lookback_seconds), datetime.now(UTC)
    base = Harvest(standby=True, ring=inp.name, alert_time=_iso(alert),
                   window_start=_iso(start), window_end=_iso(now))
    status, session_start, folder = _ring_state(clients, w, inp.name, RingSettings())
    if status == "absent":
        return Harvest(standby=False)
    warnings = [] if status == "Running" else [f"the standby ring is {status}, not Running"]
    if not folder:
        return replace(base, ring_status=status, warnings=(*warnings, "the ring has no "
                       "storage folder"), missing=(_span(start, now, "no ring files"),))
    container_name = clients.blob(folder).container_name
    cut = folder.index(f"/{container_name}/") + len(container_name) + 1
    container_url, prefix = folder[:cut], folder[cut + 1:]
    container = clients.container(container_url)
    try:
        ring = _ring_files(container, prefix)
        before = [f for f in ring if f.closed_at < start]
        chosen = [f for f in ring if f.closed_at >= start]
        missing: list[str] = []
        if not chosen:
            missing.append(_span(start, now, "no ring file closed in the window"))
        else:
            first = _first_packet(container, chosen[0].blob)
            if not before and first and first > start:
                missing.append(_span(start, first, "the ring is shorter than the lookback"))
        if session_start and chosen and session_start > start:
            # Files before the current session and after it leave the restart's span.
            prior = [f for f in ring if f.closed_at <= session_start]
            if prior and (session_start - prior[-1].closed_at).total_seconds() > 5 \
                    and prior[-1].closed_at >= start:
                missing.append(_span(prior[-1].closed_at, session_start,
                                     "the ring was restarted or renewed"))
        if status == "Running" and chosen and (now - chosen[-1].closed_at).total_seconds() > 1:
            # The ring writes a file out only when it closes: what came after the last
            # closed file is in the open one, which no harvest can copy yet.
            missing.append(_span(chosen[-1].closed_at, now,
                                 "in the ring's open file, not written out yet"))
        files = []
        for f in chosen:
            name = f.blob.rsplit("/", 1)[1]
            dest = f"{HARVEST_FOLDER}/{prefix}/{inp.run_stamp}/{name}"
            source = f"{container_url}/{f.blob}"
            source_link, _ = clients.read_link(source, 1)
            _copy(container, f.blob, dest, source_link)
            url = f"{container_url}/{dest}"
            first_at = _first_packet(container, dest)
            link: str | None
            expires: str | None
            try:
                link, expires = clients.read_link(url, inp.link_ttl_hours)
            except Exception:  # a missing link is a warning, the copy is what matters
                link, expires = None, None
            files.append(HarvestedFile(url=url, source=source, closed_at=_iso(f.closed_at),
                                       first_packet_at=_iso(first_at) if first_at else None,
                                       size_bytes=f.size, link=link, link_expires=expires))
    except AlertcapError:
        raise
    except Exception as exc:
        raise from_azure(exc, "harvest the standby ring") from exc
    return replace(base, ring_status=status, files=tuple(files), missing=tuple(missing),
                   warnings=tuple(warnings))


# --- summarise_files ------------------------------------------------------------------


@dataclass(frozen=True)
class SummariseFilesInput(Model):
    paths: tuple[str, ...]  # in time order: harvested ring files, then the after capture
    alert_time: str | None = None
    top: int = 10
    link_ttl_hours: int = 24


@activity("summarise_files", max_attempts=2)
def summarise_files(clients: Clients, inp: SummariseFilesInput) -> CaptureSummary:
    """The files as one capture; `alert_time` splits it into before/after the alert."""
    if not inp.paths:
        raise Unprocessable("no files to summarise")

    def opener(path: str) -> Any:
        return lambda: clients.blob(path).download_blob(max_concurrency=1)

    chain = pcap.ChainedCaptures((p, opener(p)) for p in inp.paths)
    try:
        summary = pcap.summarise(chain, top=inp.top, alert_time=inp.alert_time).to_dict()
    except Exception as exc:
        raise from_azure(exc, "read the harvested files") from exc
    warnings = [f"left out {s}" for s in chain.skipped]
    last = inp.paths[-1]
    link: str | None
    expires: str | None
    try:
        link, expires = clients.read_link(last, inp.link_ttl_hours)
    except Exception as exc:
        link, expires = None, None
        warnings.append(f"no read link: {from_azure(exc, 'sign a read link').message}")
    return CaptureSummary(blob_url=last, link=link, link_expires=expires, size_bytes=None,
                          summary=summary, warnings=tuple(warnings))
