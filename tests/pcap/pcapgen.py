"""A small packet builder and pcap/pcapng writer for the pcap tests.

Boundary: test support only.  Builds Ethernet (optionally VLAN-tagged),
IPv4/IPv6 (optionally with extension headers), TCP/UDP/ICMP packets with
correct lengths (checksums are left zero: tshark does not verify them by
default) and writes them as classic pcap (either byte order, us or ns) or
pcapng, with an optional snap length.  ``TcpConn`` keeps sequence numbers so
tests can script handshakes, data, retransmissions and teardowns.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

ETH, RAW, NULL, SLL, SLL2 = 1, 101, 0, 113, 276
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ip(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp_echo(ident: int = 1, seq: int = 1, payload: bytes = b"ping") -> bytes:
    return struct.pack(">BBHHH", 8, 0, 0, ident, seq) + payload


def ipv4(src: str, dst: str, proto: int, l4: bytes, *, ident: int = 0, frag: int = 0x4000,
         options: bytes = b"") -> bytes:  # fmt: skip
    ihl = (20 + len(options)) // 4
    hdr = struct.pack(
        ">BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(l4), ident, frag, 64, proto, 0,
        ip(src), ip(dst),
    )  # fmt: skip
    return hdr + options + l4


def ipv6(src: str, dst: str, proto: int, l4: bytes, *, ext: Iterable[tuple[int, bytes]] = ()
         ) -> bytes:  # fmt: skip
    """``ext``: (header type, body) pairs; bodies are padded to 8-octet units."""
    chain = list(ext)
    types = [t for t, _ in chain] + [proto]
    payload = b""
    for i, (_t, body) in enumerate(chain):
        body = body.ljust(6 + ((len(body) - 6 + 7) // 8) * 8 if len(body) > 6 else 6, b"\0")
        payload += bytes((types[i + 1], (len(body) + 2) // 8 - 1)) + body
    payload += l4
    first = types[0]
    return struct.pack(">IHBB16s16s", 0x60000000, len(payload), first, 64, ip(src), ip(dst)) + payload


def ether(l3: bytes, *, v6: bool = False, vlans: Iterable[int] = (), qinq: bool = False,
          src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:  # fmt: skip
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = 0x88A8 if qinq and i == 0 else 0x8100
        tags += struct.pack(">HH", tpid, vid)
    return dst + src + tags + (b"\x86\xdd" if v6 else b"\x08\x00") + l3


def sll(l3: bytes, *, v6: bool = False) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, MAC_A + b"\0\0", 0x86DD if v6 else 0x0800) + l3


def sll2(l3: bytes, *, v6: bool = False) -> bytes:
    return struct.pack(">HHIHBB8s", 0x86DD if v6 else 0x0800, 0, 1, 1, 0, 6, MAC_A + b"\0\0") + l3


def null(l3: bytes, *, v6: bool = False) -> bytes:
    return struct.pack("<I", 30 if v6 else 2) + l3


@dataclass
class Packet:
    ts: float
    frame: bytes
    wirelen: int | None = None


@dataclass
class Capture:
    """Packets plus how to write them."""

    linktype: int = ETH
    packets: list[Packet] = field(default_factory=list)
    base: int = 1_760_000_000  # packet times are seconds after this UNIX time

    def add(self, ts: float, frame: bytes) -> None:
        self.packets.append(Packet(ts, frame))

    def pcap(self, *, nanos: bool = False, big_endian: bool = False, snaplen: int = 262144
             ) -> bytes:  # fmt: skip
        o = ">" if big_endian else "<"
        magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
        out = [struct.pack(o + "IHHiIII", magic, 2, 4, 0, 0, snaplen, self.linktype)]
        units = 10**9 if nanos else 10**6
        for pk in self.packets:
            sec, frac = divmod(round(pk.ts * units), units)
            sec += self.base
            data = pk.frame[:snaplen]
            out.append(struct.pack(o + "IIII", sec, frac, len(data), pk.wirelen or len(pk.frame)))
            out.append(data)
        return b"".join(out)

    def pcapng(self, *, big_endian: bool = False, tsresol: int = 6, snaplen: int = 0) -> bytes:
        o = ">" if big_endian else "<"

        def block(btype: int, body: bytes) -> bytes:
            body += b"\0" * (-len(body) % 4)
            n = len(body) + 12
            return struct.pack(o + "II", btype, n) + body + struct.pack(o + "I", n)

        shb = block(0x0A0D0D0A, struct.pack(o + "IHHq", 0x1A2B3C4D, 1, 0, -1))
        opts = b""
        if tsresol != 6:
            opts = struct.pack(o + "HH", 9, 1) + bytes((tsresol,)) + b"\0\0\0"
            opts += struct.pack(o + "HH", 0, 0)
        idb = block(1, struct.pack(o + "HHI", self.linktype, 0, snaplen) + opts)
        out = [shb, idb, block(5, struct.pack(o + "I", 0) + b"\0" * 8)]  # an ISB to skip
        units = 10**tsresol
        for pk in self.packets:
            ts = round(pk.ts * units) + self.base * units
            data = pk.frame[:snaplen] if snaplen else pk.frame
            body = struct.pack(o + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data),
                               pk.wirelen or len(pk.frame)) + data  # fmt: skip
            out.append(block(6, body))
        return b"".join(out)

    def write(self, f: BinaryIO, **kw: object) -> None:
        f.write(self.pcap(**kw))  # type: ignore[arg-type]


class TcpConn:
    """Scripts one TCP connection over IPv4 or IPv6 into a Capture."""

    def __init__(self, cap: Capture, client: str, cport: int, server: str, sport: int,
                 *, frame=None, isn: tuple[int, int] = (1000, 5000)) -> None:  # fmt: skip
        self.cap = cap
        self.c, self.cp, self.s, self.sp = client, cport, server, sport
        self.v6 = ":" in client
        self.frame = frame or (lambda l3: ether(l3, v6=self.v6))
        self.seq = [isn[0], isn[1]]
        self.history: list[tuple[int, int, int, bytes]] = []  # (dir, seq, flags, payload)

    def send(self, ts: float, d: int, flags: int, payload: bytes = b"", seq: int | None = None
             ) -> None:  # fmt: skip
        """d=0: client->server, d=1: server->client."""
        s = self.seq[d] if seq is None else seq
        ack = self.seq[1 - d] if flags & ACK else 0
        src, sp, dst, dp = (self.c, self.cp, self.s, self.sp) if d == 0 else (
            self.s, self.sp, self.c, self.cp)  # fmt: skip
        seg = tcp(sp, dp, s & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, payload)
        l3 = ipv6(src, dst, 6, seg) if self.v6 else ipv4(src, dst, 6, seg)
        self.cap.add(ts, self.frame(l3))
        if seq is None:
            self.seq[d] = (s + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        self.history.append((d, s, flags, payload))

    def handshake(self, ts: float, step: float = 0.001) -> float:
        self.send(ts, 0, SYN)
        self.send(ts + step, 1, SYN | ACK)
        self.send(ts + 2 * step, 0, ACK)
        return ts + 3 * step

    def close(self, ts: float, step: float = 0.001) -> float:
        self.send(ts, 0, FIN | ACK)
        self.send(ts + step, 1, FIN | ACK)
        self.send(ts + 2 * step, 0, ACK)
        return ts + 3 * step


class Unseekable:
    """A read-only stream that refuses seek/tell and returns short reads."""

    def __init__(self, data: bytes, max_read: int = 7919) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._max = max_read

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = len(self._data) - self._pos
        n = min(n, self._max)
        out = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def seekable(self) -> bool:
        return False

    def seek(self, *_: object) -> int:
        raise OSError("not seekable")

    def tell(self) -> int:
        raise OSError("not seekable")


@dataclass
class Mixed:
    """A synthetic capture plus the ground truth the generator knows."""

    cap: Capture
    retransmissions: int
    surge: tuple[str, int, str, int]  # client, cport, server, sport of the surging flow
    surge_packets: tuple[int, int]  # its packets in the first and second half


def mixed(*, frame_v4=None, frame_v6=None) -> Mixed:  # type: ignore[no-untyped-def]
    """Many flows over 10 s: TCP (v4, v6, VLAN, QinQ) with retransmissions, resets,
    a SYN retransmission and a keep-alive; UDP, ICMP, ICMPv6, ARP; and one
    conversation that surges in the second half."""
    cap = Capture()
    fv4 = frame_v4 or (lambda l3: ether(l3))
    fv6 = frame_v6 or (lambda l3: ether(l3, v6=True))
    retrans = 0
    for i in range(60):
        client, server = f"10.0.{i // 50}.{i % 50 + 1}", f"10.9.0.{i % 7 + 1}"
        sport = (80, 443, 22)[i % 3]
        if i % 10 == 7 and frame_v4 is None:
            vl = (100,) if i % 20 == 7 else (10, 200)

            def frame(l3: bytes, vl: tuple[int, ...] = vl) -> bytes:
                return ether(l3, vlans=vl, qinq=len(vl) > 1)
        else:
            frame = fv4
        c = TcpConn(cap, client, 40000 + i, server, sport, frame=frame, isn=(i * 7919, i * 104729))
        t = 0.05 * i
        if i == 3:  # the SYN is lost once and sent again
            c.send(t, 0, SYN, seq=c.seq[0])
            t += 1.0
        t = c.handshake(t)
        for k in range(1 + i % 5):
            c.send(t, 0, PSH | ACK, b"GET /%d HTTP/1.1\r\n\r\n" % k)
            c.send(t + 0.002, 1, PSH | ACK, bytes(100 + 37 * k + i))
            c.send(t + 0.003, 0, ACK)
            t += 0.01
        if i % 6 == 1:  # the last response is sent again 200 ms later
            d, s, fl, pl = next(h for h in reversed(c.history) if h[3] and h[0] == 1)
            c.send(t + 0.2, d, fl, pl, seq=s)
            retrans += 1
            t += 0.21
        if i == 11:  # a keep-alive: one byte at next_seq - 1, not a retransmission
            c.send(t + 0.5, 0, ACK, b"\0", seq=c.seq[0] - 1)
            t += 0.51
        if i % 9 == 4:
            c.send(t, 1, RST | ACK)
        else:
            c.close(t)
    for i in range(15):
        c = TcpConn(cap, f"fd00::{i + 1}", 50000 + i, "fd09::1", 443, frame=fv6, isn=(i, 9 * i))
        t = c.handshake(0.3 * i + 0.01)
        for _ in range(3):
            c.send(t, 1, PSH | ACK, bytes(700))
            c.send(t + 0.001, 0, ACK)
            t += 0.02
        c.close(t)
    for i in range(40):
        src = f"10.0.3.{i % 20 + 1}"
        t = 0.2 * i + 0.003
        cap.add(t, fv4(ipv4(src, "10.9.9.53", 17, udp(33000 + i, 53, bytes(30 + i)))))
        cap.add(t + 0.001, fv4(ipv4("10.9.9.53", src, 17, udp(53, 33000 + i, bytes(90 + i)))))
    for i in range(8):
        cap.add(1.0 * i + 0.004, fv6(ipv6("fd00::99", "fd09::53", 17, udp(5353, 53, bytes(20)))))
    for i in range(10):
        cap.add(0.9 * i + 0.005, fv4(ipv4("10.0.0.1", "10.9.0.1", 1, icmp_echo(1, i))))
        cap.add(0.9 * i + 0.006, fv4(ipv4("10.9.0.1", "10.0.0.1", 1, icmp_echo(1, i))))
    for i in range(5):
        cap.add(1.9 * i + 0.007, fv6(ipv6("fd00::1", "fd09::1", 58, bytes((128, 0)) + bytes(10))))
    if frame_v4 is None:
        for i in range(5):
            arp = MAC_B + MAC_A + b"\x08\x06" + bytes(28)
            cap.add(2.0 * i + 0.008, arp)
    # The surge: quiet in the first half (10 packets), busy in the second (400).
    s = TcpConn(cap, "10.0.7.7", 45555, "10.9.0.200", 8443, frame=fv4, isn=(77, 88))
    t = s.handshake(0.5)
    for k in range(7):
        s.send(t + k * 0.5, 0, PSH | ACK, bytes(64))
    t = 5.6
    for k in range(400):
        s.send(t + k * 0.01, 0, PSH | ACK, bytes(1000))
    cap.packets.sort(key=lambda p: p.ts)
    return Mixed(cap, retrans, ("10.0.7.7", 45555, "10.9.0.200", 8443), (10, 400))


# -- application payloads (DNS, TLS ClientHello, HTTP) for the names tests ------


def dns_name(name: str) -> bytes:
    return b"".join(bytes((len(p),)) + p.encode() for p in name.split(".") if p) + b"\0"


def dns_query(qname: str, ident: int = 1, qtype: int = 1) -> bytes:
    return struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_name(qname) + struct.pack(
        ">HH", qtype, 1)  # fmt: skip


def dns_response(qname: str, *, rcode: int = 0, a: Iterable[str] = (), ident: int = 1,
                 cname: str | None = None) -> bytes:  # fmt: skip
    """A response with an optional CNAME, then A/AAAA records (compressed owner names)."""
    addrs = [ipaddress.ip_address(x) for x in a]
    answers = []
    owner = b"\xc0\x0c"  # pointer to the question name
    if cname:
        target = dns_name(cname)
        answers.append(owner + struct.pack(">HHIH", 5, 1, 60, len(target)) + target)
        owner = target
    for ad in addrs:
        rtype = 1 if ad.version == 4 else 28
        answers.append(owner + struct.pack(">HHIH", rtype, 1, 60, len(ad.packed)) + ad.packed)
    head = struct.pack(">HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0)
    return head + dns_name(qname) + struct.pack(">HH", 1, 1) + b"".join(answers)


def client_hello(sni: str | None) -> bytes:
    """A minimal TLS 1.2 ClientHello record, with a server_name extension if given."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack(">H", len(name)) + name
        sn = struct.pack(">H", len(entry)) + entry
        exts += struct.pack(">HH", 0, len(sn)) + sn
    exts += struct.pack(">HH", 0x000A, 4) + struct.pack(">HH", 2, 0x001D)  # supported_groups
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack(">H", 2) + b"\x13\x01"
            + b"\x01\x00" + struct.pack(">H", len(exts)) + exts)  # fmt: skip
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hs)) + hs


def http_get(host: str, path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: t\r\n\r\n".encode()


def icmp_unreachable(code: int, inner_ip: bytes) -> bytes:
    return struct.pack(">BBHI", 3, code, 0, 0) + inner_ip[:28]
