"""A tiny libpcap reader for the tests: just enough to see IPv4 TCP/UDP endpoints."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    proto: int
    sport: int
    dport: int
    caplen: int
    length: int


def read_pcap(data: bytes) -> tuple[int, int, list[Packet]]:
    """(linktype, snaplen, IPv4 TCP/UDP packets) of a libpcap file."""
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    _, _, _, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", data[:24])
    off, packets = 24, []
    while off + 16 <= len(data):
        _, _, caplen, length = struct.unpack(order + "IIII", data[off : off + 16])
        frame = data[off + 16 : off + 16 + caplen]
        off += 16 + caplen
        if linktype == 1:  # Ethernet (Linux lo and veth)
            if len(frame) < 14 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
        elif linktype == 113:  # Linux cooked
            ip = frame[16:]
        else:
            ip = frame
        if len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl, proto = (ip[0] & 15) * 4, ip[9]
        sport = dport = 0
        if proto in (6, 17) and len(ip) >= ihl + 4:
            sport, dport = struct.unpack("!HH", ip[ihl : ihl + 4])
        packets.append(
            Packet(
                socket.inet_ntoa(ip[12:16]),
                socket.inet_ntoa(ip[16:20]),
                proto,
                sport,
                dport,
                caplen,
                length,
            )
        )
    return linktype, snaplen, packets


class EchoServer:
    """A TCP echo server on HOST and an ephemeral port, in a thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.host, self.port = host, self.sock.getsockname()[1]
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    def close(self) -> None:
        self.sock.close()


def talk(host: str, port: int, n: int = 3, payload: bytes = b"x" * 200) -> None:
    for _ in range(n):
        with socket.create_connection((host, port), timeout=5) as c:
            c.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += c.recv(65536)


def talk_from_netns(netns: str, host: str, port: int, n: int = 3) -> None:
    code = (
        "import socket\n"
        f"for _ in range({n}):\n"
        f"    c = socket.create_connection(({host!r}, {port}), timeout=5)\n"
        "    c.sendall(b'y' * 100); c.recv(100); c.close()\n"
    )
    subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code], check=True)
