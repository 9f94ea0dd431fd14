"""Capture file formats -> chunks of classic pcap records, read as a stream.

Boundary: this module knows file formats (classic pcap in both byte orders and
both timestamp resolutions, and pcapng) and nothing about protocols.  It reads
any binary file-like object with ``.read(n)`` -- seekability is never assumed,
because the capture arrives as a blob download stream -- in fixed-size pieces,
so memory stays bounded whatever the file size.

Everything is presented to the consumer in one shape, a :class:`Chunk`: a
``bytes`` buffer of *classic pcap records* (16-byte record header
``ts_sec, ts_frac, caplen, wirelen`` followed by ``caplen`` bytes), plus the
link type, the ``struct`` that unpacks the record headers (byte order differs
between files) and the timestamp unit.  For classic pcap the buffer is the file
bytes themselves (no copy); pcapng blocks are rewritten into that layout.

The fast consumer (:func:`alertcap.pcap.decode.scan`) walks the records itself
and writes ``chunk.used`` = offset of the first record it did not process
(because the record is incomplete in this buffer); the reader carries those
bytes over into the next chunk.  :meth:`CaptureReader.records` is the simple,
slower per-record view of the same stream.

Damage never raises past the file header: a truncated last record, an
impossible record length or a broken pcapng block ends the stream and appends a
human-readable sentence to :attr:`CaptureReader.warnings`.  Only a stream that
is not a capture at all raises :class:`NotACaptureError`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

__all__ = [
    "CHUNK_SIZE",
    "CaptureReader",
    "Chunk",
    "NotACaptureError",
    "Readable",
]

CHUNK_SIZE = 1 << 20
# A record longer than max(snaplen, 256 KiB) -- libpcap's own ceiling -- is
# corruption, not data; MAX_RECORD bounds that however large snaplen claims to be.
MAX_RECORD = 1 << 24
_LIBPCAP_MAX = 1 << 18

_PCAP_MAGICS = {
    # first four bytes: (byte order, fractional units per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
_PCAP_KUZNETSOV = {b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34"}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_SHB_TYPE = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_REC_LE = struct.Struct("<IIII")
_REC_BE = struct.Struct(">IIII")


class NotACaptureError(ValueError):
    """The stream does not start with a pcap or pcapng header we can read."""


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(slots=True)
class Chunk:
    """A buffer of classic pcap records, all with the same link type.

    Only ``data[:size]`` is valid, and ``data`` is reused for the next chunk:
    a consumer must copy what it keeps (``bytes(...)``).
    """

    data: bytes | bytearray
    size: int
    linktype: int
    record: struct.Struct  # unpacks (ts_sec, ts_frac, caplen, wirelen)
    units: int  # ts_frac units per second: 10**6 or 10**9
    max_caplen: int = MAX_RECORD  # a longer record is corruption: stop there
    used: int = 0  # set by the consumer: offset of the first unprocessed record


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    to_ns: tuple[int, int, int]  # ns = (ts * mul) // div + offset_ns


@dataclass
class CaptureReader:
    """Stream reader for one capture; see the module docstring."""

    stream: Readable | BinaryIO
    chunk_size: int = CHUNK_SIZE
    format: str = ""
    byte_order: str = ""
    units: int = 1_000_000
    snaplen: int | None = None
    linktypes: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    bytes_read: int = 0
    _head: bytes = b""

    def __post_init__(self) -> None:
        probe = self.stream.read(0)
        if not isinstance(probe, bytes | bytearray):
            raise TypeError("the capture stream must be binary (open it with 'rb')")
        head = self._read_exactly(4)
        if len(head) < 4:
            raise NotACaptureError(
                "empty stream" if not head else f"only {len(head)} bytes: not a capture file"
            )
        if head in _PCAP_MAGICS:
            self.format = "pcap"
            order, self.units = _PCAP_MAGICS[head]
            self.byte_order = "little" if order == "<" else "big"
            rest = self._read_exactly(20)
            if len(rest) < 20:
                raise NotACaptureError("pcap file header is truncated")
            _vmaj, _vmin, _zone, _sigfigs, snaplen, network = struct.unpack(
                order + "HHiIII", rest
            )
            self.snaplen = snaplen
            # The upper 16 bits of the link-type field carry FCS metadata.
            self.linktypes = [network & 0xFFFF]
        elif head == _PCAPNG_SHB:
            # Four bytes are a weak signature (CR LF CR LF... in a text file):
            # require the section header's byte-order magic too.
            rest = self._read_exactly(8)
            if rest[4:] not in (_PCAPNG_BOM.to_bytes(4, "little"), _PCAPNG_BOM.to_bytes(4, "big")):
                raise NotACaptureError("not a pcap or pcapng file (bad pcapng byte-order magic)")
            self.format = "pcapng"
            self.units = 1_000_000_000
            self._head = head + rest
        elif head in _PCAP_KUZNETSOV:
            raise NotACaptureError("modified (Kuznetsov) pcap format is not supported")
        else:
            raise NotACaptureError(
                f"not a pcap or pcapng file (starts with bytes {head.hex()})"
            )

    def _read_exactly(self, n: int) -> bytes:
        """Read n bytes, tolerating short reads from pipes; fewer only at EOF."""
        parts = []
        want = n
        while want > 0:
            piece = self.stream.read(want)
            if not piece:
                break
            parts.append(piece)
            want -= len(piece)
        data = b"".join(parts)
        self.bytes_read += len(data)
        return data

    def chunks(self) -> Iterator[Chunk]:
        """Yield record chunks until EOF or damage (which adds a warning)."""
        if self.format == "pcap":
            return self._pcap_chunks()
        return self._pcapng_chunks()

    # -- classic pcap -----------------------------------------------------------

    def _pcap_chunks(self) -> Iterator[Chunk]:
        rec = _REC_LE if self.byte_order == "little" else _REC_BE
        linktype = self.linktypes[0]
        max_caplen = min(max(self.snaplen or 0, _LIBPCAP_MAX), MAX_RECORD)
        # One buffer for the whole file, refilled in place: a fresh 1 MiB bytes
        # object per read costs the kernel a page fault per 4 KiB (measured: a
        # sixth of the run time).  The unconsumed tail moves to the front.
        buf = bytearray(self.chunk_size)
        size = 0  # valid bytes in buf
        need = 16  # bytes the next record needs before it is complete
        eof = False
        while True:
            while size < max(need, self.chunk_size) and not eof:
                if len(buf) < need:  # a record larger than the buffer
                    buf.extend(bytes(need - len(buf)))
                got = self._fill(buf, size)
                if not got:
                    eof = True
                    break
                size += got
                self.bytes_read += got
            chunk = Chunk(buf, size, linktype, rec, self.units, max_caplen)
            if size >= need:
                yield chunk
            used = chunk.used
            rest = size - used
            if used:
                buf[:rest] = buf[used:size]
            size = rest
            need = 16
            if rest >= 16:
                caplen = rec.unpack_from(buf, 0)[2]
                if caplen > max_caplen:
                    self.warnings.append(
                        f"corrupt record header at file offset {self.bytes_read - rest}"
                        f" (captured length {caplen}); stopped reading there"
                    )
                    return
                need = 16 + caplen
            if eof:
                if rest:
                    self.warnings.append(
                        f"file is truncated: the last record is incomplete ({rest} of"
                        f" {need} bytes present)"
                    )
                return
            if used == 0 and rest >= need:
                # The consumer refused a complete record: guard against a loop.
                raise RuntimeError("consumer made no progress on a complete record")

    def _fill(self, buf: bytearray, pos: int) -> int:
        """Read into ``buf[pos:]``; 0 at EOF.  ``readinto`` only on real io
        objects: other streams (Azure's downloader) give it another meaning."""
        if isinstance(self.stream, io.IOBase):
            with memoryview(buf) as view, view[pos:] as target:
                return self.stream.readinto(target) or 0  # type: ignore[attr-defined]
        piece = self.stream.read(len(buf) - pos)
        buf[pos : pos + len(piece)] = piece
        return len(piece)

    # -- pcapng ----------------------------------------------------------------

    def _pcapng_chunks(self) -> Iterator[Chunk]:
        """Rewrite pcapng packet blocks into little-endian classic records (ns).

        Blocks are walked in a read buffer (like classic records), so the cost
        per packet is a couple of unpacks and one copy of the packet bytes.
        """
        rec_pack = _REC_LE.pack
        ns_per_s = 1_000_000_000
        order = "<"
        head = struct.Struct("<II")
        epb = struct.Struct("<IIIII")
        interfaces: list[_Interface] = []
        out: list[bytes | bytearray] = []
        out_linktype = -1
        iface_now, linktype, mul, div, add = -1, -1, 1000, 1, 0
        last_ns = 0
        offset = 0  # file offset of buf[0]
        # A reused read buffer, as for classic pcap; it starts with the bytes of
        # the section header that __post_init__ consumed.
        buf = bytearray(max(self.chunk_size, len(self._head)))
        n = len(self._head)
        buf[:n] = self._head
        eof = False
        while True:
            if not eof:
                if n == len(buf):  # a block larger than the buffer
                    buf.extend(bytes(len(buf)))
                got = self._fill(buf, n)
                self.bytes_read += got
                eof = not got
                n += got
            pos = 0
            damaged = ""
            while pos + 12 <= n:
                btype, blen = head.unpack_from(buf, pos)
                if btype == _SHB_TYPE:  # a palindrome: the same in either byte order
                    # A section header decides the byte order of everything after it.
                    bom = buf[pos + 8 : pos + 12]
                    if bom == _PCAPNG_BOM.to_bytes(4, "little"):
                        order = "<"
                    elif bom == _PCAPNG_BOM.to_bytes(4, "big"):
                        order = ">"
                    else:
                        damaged = f"corrupt pcapng section header at offset {offset + pos}"
                        break
                    self.byte_order = "little" if order == "<" else "big"
                    head = struct.Struct(order + "II")
                    epb = struct.Struct(order + "IIIII")
                    interfaces, iface_now = [], -1
                    btype, blen = head.unpack_from(buf, pos)
                if blen < 12 or blen % 4 or blen > MAX_RECORD:
                    damaged = (
                        f"corrupt pcapng block at offset {offset + pos} (length {blen});"
                        " stopped reading"
                    )
                    break
                if pos + blen > n:
                    break  # the rest of this block is in the next read
                if btype == 6 and blen >= 32:  # enhanced packet block: the common case
                    iface, ts_hi, ts_lo, caplen, wirelen = epb.unpack_from(buf, pos + 8)
                    if iface != iface_now:
                        if iface >= len(interfaces):
                            self.warnings.append(
                                f"packet block at offset {offset + pos} names undefined"
                                f" interface {iface}; skipped"
                            )
                            pos += blen
                            continue
                        iface_now = iface
                        linktype = interfaces[iface].linktype
                        mul, div, add = interfaces[iface].to_ns
                    last_ns = ((ts_hi << 32 | ts_lo) * mul) // div + add
                    data_at = pos + 28
                    if caplen > blen - 32:  # claims more than the block holds
                        caplen = blen - 32
                elif btype == 3 and blen >= 16 and interfaces:  # simple packet block
                    (wirelen,) = struct.unpack_from(order + "I", buf, pos + 8)
                    caplen = min(wirelen, blen - 16, interfaces[0].snaplen or wirelen)
                    data_at = pos + 12
                    linktype, iface_now = interfaces[0].linktype, -1
                elif btype == 2 and blen >= 32:  # obsolete packet block
                    iface, _drops, ts_hi, ts_lo, caplen, wirelen = struct.unpack_from(
                        order + "HHIIII", buf, pos + 8
                    )
                    if iface < len(interfaces):
                        linktype, iface_now = interfaces[iface].linktype, -1
                        m, d, a = interfaces[iface].to_ns
                        last_ns = ((ts_hi << 32 | ts_lo) * m) // d + a
                    data_at = pos + 28
                    caplen = min(caplen, blen - 32)
                else:
                    if btype == 1 and blen >= 20:  # interface description block
                        ifc = self._interface(bytes(buf[pos + 8 : pos + blen - 4]), order)
                        interfaces.append(ifc)
                        if ifc.linktype not in self.linktypes:
                            self.linktypes.append(ifc.linktype)
                        if self.snaplen is None:
                            self.snaplen = ifc.snaplen
                    pos += blen
                    continue
                if linktype != out_linktype:
                    if out:
                        data = b"".join(out)
                        yield Chunk(data, len(data), out_linktype, _REC_LE, ns_per_s)
                        out = []
                    out_linktype = linktype
                sec, frac = divmod(last_ns, ns_per_s)
                out.append(rec_pack(sec & 0xFFFFFFFF, frac, caplen, wirelen))
                out.append(buf[data_at : data_at + caplen])
                pos += blen
            if out:
                data = b"".join(out)
                yield Chunk(data, len(data), out_linktype, _REC_LE, ns_per_s)
                out = []
            if damaged:
                self.warnings.append(damaged)
                return
            rest = n - pos
            if pos:
                buf[:rest] = buf[pos:n]
            n = rest
            offset += pos
            if eof:
                if rest:
                    self.warnings.append(
                        f"file is truncated: the last pcapng block (offset {offset}) is"
                        " incomplete"
                    )
                return

    @staticmethod
    def _interface(body: bytes, order: str) -> _Interface:
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
        to_ns = (1000, 1, 0)  # default resolution: microseconds
        pos = 8
        while pos + 4 <= len(body):
            code, length = struct.unpack_from(order + "HH", body, pos)
            value = body[pos + 4 : pos + 4 + length]
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                res = value[0]
                exp = res & 0x7F
                if res & 0x80:
                    to_ns = (10**9, 1 << exp, to_ns[2])
                elif exp <= 9:
                    to_ns = (10 ** (9 - exp), 1, to_ns[2])
                else:
                    to_ns = (1, 10 ** (exp - 9), to_ns[2])
            elif code == 14 and length >= 8:  # if_tsoffset, in seconds
                to_ns = (to_ns[0], to_ns[1], struct.unpack(order + "q", value[:8])[0] * 10**9)
            pos += 4 + ((length + 3) & ~3)
        return _Interface(linktype, snaplen, to_ns)

    # -- simple view -----------------------------------------------------------

    def records(self) -> Iterator[tuple[float, int, int, int, bytes]]:
        """Yield ``(timestamp, caplen, wirelen, linktype, data)`` per packet.

        Convenient and slow (one tuple and one bytes object per packet); the
        summary uses :meth:`chunks` with :func:`alertcap.pcap.decode.scan`.
        """
        for chunk in self.chunks():
            buf = chunk.data
            unpack = chunk.record.unpack_from
            off = 0
            n = chunk.size
            while off + 16 <= n:
                ts_sec, ts_frac, caplen, wirelen = unpack(buf, off)
                end = off + 16 + caplen
                if end > n or caplen > chunk.max_caplen:
                    break
                yield (
                    ts_sec + ts_frac / chunk.units,
                    caplen,
                    wirelen,
                    chunk.linktype,
                    bytes(buf[off + 16 : end]),
                )
                off = end
            chunk.used = off
