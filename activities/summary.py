"""The capture file: stream the .cap blob Network Watcher wrote, summarise it, make a
read-only link that expires, and cut evidence slices. Memory stays bounded: the blob
arrives in chunks and the pcap reader never holds more than a buffer of it.

Evidence slices (small pcaps of the top findings' and conversations' packets) are kept
beside the run record, in the app's own storage (ALERTCAP_RUNS_CONTAINER_URL), each with
its own expiring read link: the app needs no write access to the capture account, and a
retention rule there does not take the evidence with it.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

from activities.spec import activity
from alertcap import pcap
from alertcap.domain.run import CaptureSummary, EvidenceSlice
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
