"""The capture file: stream the .cap blob Network Watcher wrote, summarise it, make a
read-only link that expires, and cut evidence slices. Memory stays bounded: the blob
arrives in chunks and the pcap reader never holds more than a buffer of it.

Evidence slices (small pcaps of the top findings' and conversations' packets) are kept
beside the run record, in the app's own storage (ALERTCAP_RUNS_CONTAINER_URL), each with
its own expiring read link: the app needs no write access to the capture account, and a
retention rule there does not take the evidence with it.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.spec import activity
from alertcap import pcap
from alertcap.domain.run import CaptureSummary, EvidenceSlice, InstanceSummary
from alertcap.domain.wire import Model
from alertcap.sdk.clients import Clients
from alertcap.sdk.errors import from_azure


@dataclass(frozen=True)
class SummariseInput(Model):
    storage_path: str
    top: int = 10
    link_ttl_hours: int = 24
    alert: dict[str, Any] | None = None  # {metric, value, threshold, operator, fired_at}


@activity("summarise_capture")
def summarise_capture(clients: Clients, inp: SummariseInput) -> CaptureSummary:
    blob = clients.blob(inp.storage_path)
    try:
        # The downloader's read(n) fetches one chunk at a time: memory stays bounded.
        downloader = blob.download_blob(max_concurrency=1)
        size = downloader.size
        alert = typing.cast(pcap.AlertSignal, inp.alert) if inp.alert else None
        summary = pcap.summarise(downloader, top=inp.top, alert=alert).to_dict()
    except Exception as exc:
        raise from_azure(exc, "read the capture file") from exc
    warnings: list[str] = []
    try:
        link, expires = clients.read_link(inp.storage_path, inp.link_ttl_hours)
    except Exception as exc:
        # The summary is what the operator needs at 2 AM; a missing link is only a warning.
        link, expires = None, None
        warnings.append(f"no read link: {from_azure(exc, 'sign a read link').message}")
    slices: tuple[EvidenceSlice, ...] = ()
    if clients.settings.runs_container_url:
        try:
            slices = _slices(clients, inp, summary)
        except Exception as exc:  # the evidence is a convenience; the summary is the answer
            warnings.append(f"no evidence slices: {from_azure(exc, 'cut slices').message}")
    return CaptureSummary(blob_url=inp.storage_path, link=link, link_expires=expires,
                          size_bytes=size, summary=summary, warnings=tuple(warnings),
                          slices=slices)


def _slices(clients: Clients, inp: SummariseInput,
            summary: dict[str, Any]) -> tuple[EvidenceSlice, ...]:
    wanted = pcap.selectors(summary)
    if not wanted:
        return ()
    # A second pass over the blob: the selectors come from the first.
    data, info = pcap.write_slices(
        clients.blob(inp.storage_path).download_blob(max_concurrency=1), wanted)
    container = clients.records()
    base = inp.storage_path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".cap")
    out = []
    for name, body in data.items():
        blob = container.upload_blob(f"evidence/{base}/{name}.pcap", body, overwrite=True)
        url = blob.url
        try:
            link: str | None = clients.read_link(url, inp.link_ttl_hours)[0]
        except Exception:
            link = None
        out.append(EvidenceSlice(name=name, url=url, link=link, packets=info[name].packets,
                                 size_bytes=len(body), truncated=info[name].dropped > 0))
    return tuple(out)


# --- scale sets: one file per captured instance ----------------------------------------

_INSTANCE_IN_PATH = re.compile(r"/virtualmachines/(?P<iid>[0-9]+)/", re.IGNORECASE)
MAX_INSTANCE_FILES = 1000


@activity("summarise_scale_set_capture")
def summarise_scale_set_capture(clients: Clients, inp: SummariseInput) -> CaptureSummary:
    """A scale-set capture's storage path is a folder; Network Watcher writes one file per
    captured instance under `.../virtualmachines/{instanceId}/`: summarise each, and all of
    them together (each file is read twice; memory stays bounded either way)."""
    folder = clients.blob(inp.storage_path)
    container = clients.container_of(inp.storage_path)
    prefix = folder.blob_name.rstrip("/") + "/"
    try:
        names = [b.name for b in container.list_blobs(name_starts_with=prefix)
                 if b.name.endswith(".cap")][:MAX_INSTANCE_FILES]
    except Exception as exc:
        raise from_azure(exc, "list the scale set's capture files") from exc
    base = inp.storage_path[: len(inp.storage_path) - len(folder.blob_name.rstrip("/"))]
    instances: list[InstanceSummary] = []
    warnings: list[str] = []
    for name in sorted(names):
        found = _INSTANCE_IN_PATH.search("/" + name)
        url = base + name
        one = summarise_capture(clients, SummariseInput(url, inp.top, inp.link_ttl_hours))
        warnings.extend(f"instance {found['iid'] if found else '?'}: {w}" for w in one.warnings)
        instances.append(InstanceSummary(instance_id=found["iid"] if found else name,
                                         blob_url=url, link=one.link,
                                         size_bytes=one.size_bytes, summary=one.summary))
    if not instances:
        return CaptureSummary(blob_url=inp.storage_path, warnings=(
            "Network Watcher wrote no capture file for any instance",))
    def opener(url: str) -> Callable[[], Any]:
        return lambda: clients.blob(url).download_blob(max_concurrency=1)

    # The instances' files as one capture (the same reader the standby harvest uses).
    chained = pcap.ChainedCaptures((f"instance {i.instance_id}", opener(i.blob_url))
                                   for i in instances)
    try:
        together = pcap.summarise(chained, top=inp.top).to_dict()
    except Exception as exc:
        raise from_azure(exc, "read the capture files") from exc
    warnings.extend(f"left out of the together-summary: {why}" for why in chained.skipped)
    return CaptureSummary(blob_url=inp.storage_path, size_bytes=sum(
        i.size_bytes or 0 for i in instances), summary=together, warnings=tuple(warnings),
        instances=tuple(instances))
