"""Several classic-pcap files read as one stream, in the order given (the caller sorts them
by time): the ring files of a continuous capture and the after-alert capture summarised as
one capture, so "before the alert" and "after the alert" compare across files.

Boundary: stdlib only, streaming (one file open at a time, reads of at most ``n`` bytes).
The first file's global header is kept; each later file's is checked and dropped. Files
must share byte order, timestamp resolution and link type (one tcpdump writes them all);
a file that does not is skipped and named in ``skipped``, never silently mixed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from alertcap.pcap.reader import NotACaptureError, Readable

HEADER = 24
CLASSIC = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}


def _read_exactly(stream: Readable, n: int) -> bytes:
    out = b""
    while len(out) < n:
        part = stream.read(n - len(out))
        if not part:
            break
        out += part
    return out


def _link_type(header: bytes) -> bytes:
    return header[20:24]


class ChainedCaptures:
    """A ``Readable`` over several classic-pcap streams; opened lazily, one at a time."""

    def __init__(self, opens: Iterable[tuple[str, Callable[[], Readable]]]) -> None:
        self._opens: Iterator[tuple[str, Callable[[], Readable]]] = iter(opens)
        self._header: bytes | None = None
        self._current: Readable | None = None
        self._pending = b""
        self.skipped: list[str] = []  # names of files left out, with the reason
        self.used: list[str] = []

    def _next_file(self) -> bool:
        for name, opener in self._opens:
            stream = opener()
            header = _read_exactly(stream, HEADER)
            if len(header) < HEADER or header[:4] not in CLASSIC:
                if self._header is None and len(header) >= 4 and header[:4] not in CLASSIC:
                    self.skipped.append(f"{name}: not a classic pcap file")
                else:
                    self.skipped.append(f"{name}: empty or truncated header")
                continue
            if self._header is None:
                self._header = header
                self._pending = header
            elif header[:4] != self._header[:4] or _link_type(header) != _link_type(
                    self._header):
                self.skipped.append(f"{name}: byte order or link type differs from the first")
                continue
            self._current = stream
            self.used.append(name)
            return True
        return False

    def read(self, n: int = -1, /) -> bytes:
        if n is None or n < 0:
            n = 1 << 20
        while True:
            if self._pending:
                out, self._pending = self._pending[:n], self._pending[n:]
                return out
            if self._current is not None:
                data = self._current.read(n)
                if data:
                    return data
                self._current = None
            if not self._next_file():
                if self._header is None:
                    raise NotACaptureError("none of the files is a classic pcap capture: "
                                           + "; ".join(self.skipped))
                return b""
