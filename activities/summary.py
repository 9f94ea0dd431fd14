"""The capture file: stream the .cap blob Network Watcher wrote, summarise it, and make a
read-only link that expires. Memory stays bounded: the blob arrives in chunks and the
pcap reader never holds more than a buffer of it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from alertcap import pcap
from alertcap.clients import Clients
from alertcap.errors import from_azure
from alertcap.model import CaptureSummary, SummariseInput


class ChunkReader(io.RawIOBase):
    """A read-only, unseekable file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]  # a view: no copy of the rest of the chunk
        return n


def summarise_capture(clients: Clients, inp: SummariseInput) -> CaptureSummary:
    blob = clients.blob(inp.storage_path)
    try:
        downloader = blob.download_blob(max_concurrency=1)
        size = downloader.size
        reader = io.BufferedReader(ChunkReader(iter(downloader.chunks())), 1 << 20)
        summary = pcap.summarise(reader, top=inp.top).to_dict()
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
