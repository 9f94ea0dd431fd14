"""Names the capture itself tells: DNS answers, TLS ClientHello SNI, HTTP Host.

Boundary: parses application payloads handed over by ``decode.inspect`` (the
first client data segment of each TCP connection whose SYN was seen, and every
UDP packet from port 53) into bounded tables; no packet or file handling.
Every value comes from untrusted packets: names are kept only if they look
like DNS names (printable, at most 253 characters), and every table has a cap.

Field meanings follow Wireshark's dissectors (``dns.qry.name``, ``dns.a``,
``dns.aaaa``, ``dns.flags.rcode``: packet-dns.c; ``tls.handshake.extensions_
server_name``: packet-tls-utils.c; ``http.host``: packet-http.c), so tests can
compare with ``tshark -T fields``.  An address answered for several names keeps
the first one per source; SNI and HTTP Host name the server address the client
connected to, and win over DNS when the summary picks one name.
"""

from __future__ import annotations

import re
import struct
from typing import Any

__all__ = ["RCODES", "Names", "parse_dns", "parse_http_host", "parse_sni"]

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_NAME_OK = re.compile(rb"^[A-Za-z0-9_*.-]{1,253}$")
_HTTP_METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                 b"CONNECT ")  # fmt: skip
_HOST = re.compile(rb"\r\nhost:[ \t]*([^\r\n]*)", re.IGNORECASE)


def _clean(raw: bytes) -> str | None:
    raw = raw.rstrip(b".")
    return raw.decode("ascii").lower() if _NAME_OK.match(raw) else None


def _name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """A (possibly compressed) DNS name at ``pos``: (dotted name, offset after it)."""
    labels: list[bytes] = []
    after = -1
    for _ in range(128):  # bounds compression loops
        if pos >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[pos]
        if n == 0:
            pos += 1
            break
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise ValueError("truncated pointer")
            if after < 0:
                after = pos + 2
            pos = (n & 0x3F) << 8 | msg[pos + 1]
            continue
        if n & 0xC0:
            raise ValueError("unknown label type")
        labels.append(msg[pos + 1 : pos + 1 + n])
        pos += 1 + n
    else:
        raise ValueError("name too long")
    return b".".join(labels), (after if after >= 0 else pos)


def parse_dns(msg: bytes) -> tuple[int, str | None, list[bytes]] | None:
    """A DNS response -> (rcode, question name, A/AAAA addresses); None if the
    message is not a response or cannot be read."""
    if len(msg) < 12:
        return None
    _ident, flags, qd, an, _ns, _ar = struct.unpack_from(">HHHHHH", msg)
    if not flags & 0x8000:
        return None
    rcode = flags & 0xF
    qname: str | None = None
    addrs: list[bytes] = []
    try:
        pos = 12
        for i in range(qd):
            raw, pos = _name(msg, pos)
            pos += 4
            if i == 0:
                qname = _clean(raw)
        for _ in range(min(an, 256)):
            _raw, pos = _name(msg, pos)
            if pos + 10 > len(msg):
                break
            rtype, _cls, _ttl, rdlen = struct.unpack_from(">HHIH", msg, pos)
            pos += 10
            if pos + rdlen > len(msg):
                break
            if (rtype == 1 and rdlen == 4) or (rtype == 28 and rdlen == 16):
                addrs.append(msg[pos : pos + rdlen])
            pos += rdlen
    except ValueError:
        pass  # keep what was read before the damage
    return rcode, qname, addrs


def parse_sni(data: bytes) -> str | None:
    """The server_name of a TLS ClientHello at the start of ``data``, if present
    in this segment (a ClientHello split across segments may lose it)."""
    if len(data) < 43 or data[0] != 0x16 or data[5] != 1:
        return None
    try:
        pos = 5 + 4 + 2 + 32
        pos += 1 + data[pos]  # session id
        pos += 2 + (data[pos] << 8 | data[pos + 1])  # cipher suites
        pos += 1 + data[pos]  # compression methods
        end = min(len(data), pos + 2 + (data[pos] << 8 | data[pos + 1]))
        pos += 2
        while pos + 4 <= end:
            etype, elen = struct.unpack_from(">HH", data, pos)
            pos += 4
            if etype == 0:  # server_name: list length, then (type, length, name) entries
                q = pos + 2
                while q + 3 <= pos + elen:
                    ntype, nlen = data[q], data[q + 1] << 8 | data[q + 2]
                    if ntype == 0:
                        return _clean(data[q + 3 : q + 3 + nlen])
                    q += 3 + nlen
                return None
            pos += elen
    except (IndexError, struct.error):
        return None
    return None


def parse_http_host(data: bytes) -> str | None:
    """The Host header of an HTTP/1.x request at the start of ``data`` (no port)."""
    if not data.startswith(_HTTP_METHODS):
        return None
    m = _HOST.search(data, 0, 8192)
    if m is None:
        return None
    host = m.group(1).strip()
    if host.startswith(b"["):  # [v6]:port
        host = host[1 : host.find(b"]")] if b"]" in host else b""
        return host.decode("ascii", "replace").lower() if host else None
    return _clean(host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host)


class Names:
    """Bounded tables of what payloads said; filled during the packet pass."""

    def __init__(self, max_names: int = 10_000, max_parsed: int = 100_000) -> None:
        self.max_names = max_names
        self.max_parsed = max_parsed  # full DNS parses; later responses: rcode only
        self.by_addr: dict[bytes, dict[str, str]] = {}  # addr -> {source: name}
        self.sni: dict[tuple[str, bytes], int] = {}  # (name, server) -> ClientHellos
        self.http: dict[tuple[str, bytes], int] = {}
        self.dns_responses = 0
        self.dns_parsed = 0
        self.rcodes: dict[int, int] = {}
        self.qnames: dict[tuple[str, int], int] = {}  # (name, rcode) -> responses
        self.answers: dict[str, list[bytes]] = {}  # name -> up to 8 addresses answered
        self.dropped = 0  # names not kept because a table was full

    def _remember(self, addr: bytes, source: str, name: str) -> None:
        slot = self.by_addr.get(addr)
        if slot is None:
            if len(self.by_addr) >= self.max_names:
                self.dropped += 1
                return
            slot = self.by_addr[addr] = {}
        slot.setdefault(source, name)

    def _count(self, table: dict[Any, int], key: tuple[str, Any]) -> None:
        if key in table or len(table) < self.max_names:
            table[key] = table.get(key, 0) + 1
        else:
            self.dropped += 1

    def dns_response(self, msg: bytes | bytearray) -> None:
        if len(msg) < 12 or not msg[2] & 0x80:
            return
        self.dns_responses += 1
        if self.dns_parsed >= self.max_parsed:
            rcode = msg[3] & 0xF
            self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1
            return
        self.dns_parsed += 1
        parsed = parse_dns(bytes(msg))
        if parsed is None:
            return
        rcode, qname, addrs = parsed
        self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1
        if qname is None:
            return
        self._count(self.qnames, (qname, rcode))
        for a in addrs:
            self._remember(a, "dns", qname)
        if addrs:
            known = self.answers.get(qname)
            if known is None and len(self.answers) < self.max_names:
                known = self.answers[qname] = []
            if known is not None:
                known.extend(a for a in addrs if a not in known and len(known) < 8)

    def tcp_payload(self, data: bytes, server: bytes) -> None:
        name = parse_sni(data)
        if name is not None:
            self._remember(server, "sni", name)
            self._count(self.sni, (name, server))
            return
        name = parse_http_host(data)
        if name is not None:
            self._remember(server, "http", name)
            self._count(self.http, (name, server))

    def name_of(self, addr: bytes) -> tuple[str, str] | None:
        """(name, source) for an address: SNI, then HTTP Host, then DNS."""
        slot = self.by_addr.get(addr)
        if not slot:
            return None
        for source in ("sni", "http", "dns"):
            if source in slot:
                return slot[source], source
        return None
