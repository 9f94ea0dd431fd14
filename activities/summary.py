"""The capture file: stream the .cap blob Network Watcher wrote, summarise it, and make a
read-only link that expires. Memory stays bounded: the blob arrives in chunks and the
pcap reader never holds more than a buffer of it.
"""

from __future__ import annotations

from dataclasses import dataclass
import typing
from typing import Any

from activities.spec import activity
from alertcap import pcap
from alertcap.domain.run import CaptureSummary
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
    return CaptureSummary(blob_url=inp.storage_path, link=link, link_expires=expires,
                          size_bytes=size, summary=summary, warnings=tuple(warnings))
