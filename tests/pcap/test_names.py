"""Names from the capture itself (DNS answers, TLS SNI, HTTP Host), checked
against tshark's own fields on a generated capture and on a tcpdump capture of
real TLS, DNS and HTTP traffic over loopback."""

from __future__ import annotations

import http.server
import io
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alertcap.pcap import summarise, summarise_path
from alertcap.pcap.names import parse_dns, parse_sni
from tests.pcap import pcapgen
from tests.pcap.pcapgen import ACK, PSH, Capture, TcpConn, dns_response, ether, ipv4, ipv6, udp
from tests.pcap.wireshark import run

FIELDS = ("dns.flags.response", "dns.qry.name", "dns.a", "dns.aaaa",
          "tls.handshake.extensions_server_name", "http.host", "ip.dst", "ipv6.dst")  # fmt: skip


def _tshark(path: Path, *decode_as: str) -> dict[str, set[tuple[str, str]]]:
    """tshark's view: (name, address) pairs from DNS answers, SNI and HTTP Host."""
    argv: list[str | Path] = ["tshark", "-r", path, "-T", "fields", "-E", "separator=\t",
                              "-E", "occurrence=a", "-E", "aggregator=,"]  # fmt: skip
    for d in decode_as:
        argv += ["-d", d]
    for f in FIELDS:
        argv += ["-e", f]
    out: dict[str, set[tuple[str, str]]] = {"dns": set(), "sni": set(), "http": set()}
    for line in run(*argv).splitlines():
        resp, qname, a, aaaa, sni, host, dst4, dst6 = (line.split("\t") + [""] * 8)[:8]
        dst = dst4 or dst6
        if resp in ("1", "True") and qname:
            for addr in filter(None, (a + "," + aaaa).split(",")):
                out["dns"].add((qname.lower(), addr))
        if sni:
            out["sni"].add((sni.lower(), dst))
        if host:
            out["http"].add((host.split(":")[0].lower(), dst))
    return out


def _ours(s: dict[str, Any]) -> dict[str, set[tuple[str, str]]]:
    return {
        "dns": {(n["name"], a) for n in s["dns"]["top_names"] for a in n["addresses"]},
        "sni": {(r["name"], r["server"]) for r in s["tls_http"]["sni"]},
        "http": {(r["name"], r["server"]) for r in s["tls_http"]["http_hosts"]},
    }


def _generated() -> Capture:
    cap = Capture()
    answers = [
        ("api.example.com", ("203.0.113.10", "203.0.113.11"), None),
        ("cdn.example.net", ("2001:db8::10",), None),
        ("www.example.org", ("198.51.100.7",), "edge.example-cdn.net"),
        ("missing.example", (), None),
    ]
    for i, (name, addrs, cname) in enumerate(answers):
        rcode = 0 if addrs else 3
        msg = dns_response(name, rcode=rcode, a=addrs, ident=i, cname=cname)
        cap.add(0.1 * i, ether(ipv4("10.0.0.2", "10.0.0.4", 17, udp(53, 40000 + i, msg))))
    servers = [("203.0.113.10", "api.example.com"), ("198.51.100.7", "www.example.org"),
               ("2001:db8::10", "cdn.example.net")]  # fmt: skip
    for i, (srv, sni) in enumerate(servers):
        client = "fd00::4" if ":" in srv else "10.0.0.4"
        c = TcpConn(cap, client, 41000 + i, srv, 443, isn=(i * 100, i * 900))
        t = c.handshake(1 + i)
        c.send(t, 0, PSH | ACK, pcapgen.client_hello(sni))
        c.send(t + 0.01, 1, PSH | ACK, bytes(1200))
        c.close(t + 0.02)
    c = TcpConn(cap, "10.0.0.4", 42000, "192.0.2.80", 80)
    t = c.handshake(5)
    c.send(t, 0, PSH | ACK, pcapgen.http_get("intranet.example.com:80"))
    c.close(t + 0.01)
    # a ClientHello without SNI names nothing
    c = TcpConn(cap, "10.0.0.4", 42001, "192.0.2.81", 443)
    t = c.handshake(6)
    c.send(t, 0, PSH | ACK, pcapgen.client_hello(None))
    cap.packets.sort(key=lambda p: p.ts)
    return cap


def test_generated_names_match_tshark(tmp_path: Path) -> None:
    path = tmp_path / "names.pcap"
    path.write_bytes(_generated().pcap())
    s = summarise_path(path, top=100).to_dict()
    theirs = _tshark(path)
    assert _ours(s) == theirs
    assert theirs["sni"] and theirs["http"] and len(theirs["dns"]) == 4
    named = {n["address"]: (n["name"], n["source"]) for n in s["names"]}
    # SNI wins over DNS for the same address, and top tables carry the names
    assert named["203.0.113.10"] == ("api.example.com", "sni")
    assert named["192.0.2.80"] == ("intranet.example.com", "http")
    conv = next(c for c in s["top_conversations_by_bytes"] if c["b"] == "198.51.100.7")
    assert conv["b_name"] == "www.example.org"
    assert s["dns"]["rcodes"] == {"NOERROR": 3, "NXDOMAIN": 1}


def test_names_need_the_first_data_after_a_syn() -> None:
    """A connection seen mid-stream (no SYN) is not inspected: only the first
    client data segment of a connection is looked at, for speed."""
    cap = Capture()
    c = TcpConn(cap, "10.0.0.4", 41000, "203.0.113.10", 443)
    c.send(0.0, 0, PSH | ACK, pcapgen.client_hello("late.example.com"))
    s = summarise(io.BytesIO(cap.pcap())).to_dict()
    assert s["tls_http"]["sni"] == []


@pytest.mark.parametrize(
    "data",
    [b"", b"\x16\x03\x01", pcapgen.client_hello("a.example")[:60], b"\x16" + bytes(100),
     bytes(12) + b"\xc0\x0c" * 50],
)  # fmt: skip
def test_parsers_survive_garbage(data: bytes) -> None:
    parse_sni(data)
    parse_dns(data)


def test_dns_compression_loop_is_bounded() -> None:
    loop = b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    assert parse_dns(loop) == (0, None, [])
    assert parse_dns(loop[:5]) is None


def test_ipv6_dns_answer_over_ipv6() -> None:
    cap = Capture()
    msg = dns_response("six.example", a=("2001:db8::6",))
    cap.add(0, ether(ipv6("fd00::53", "fd00::4", 17, udp(53, 5000, msg)), v6=True))
    s = summarise(io.BytesIO(cap.pcap())).to_dict()
    assert s["dns"]["top_names"][0]["addresses"] == ["2001:db8::6"]


# -- a real capture: tcpdump on loopback --------------------------------------


@pytest.fixture()
def tcpdump(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    path = tmp_path / "lo.pcap"
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-w", str(path), "host 127.0.0.77"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "listening on lo, ..." once the capture is live
    assert b"listening" in line, line
    try:
        yield path, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        proc.stderr.close()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=local.test",
         "-addext", "subjectAltName=DNS:api.internal.test,DNS:db.internal.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_real_loopback_tls_dns_http_match_tshark(
    tmp_path: Path, tcpdump: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    path, proc = tcpdump
    cert, key = _self_signed(tmp_path)
    # DNS: a tiny responder on 127.0.0.77:53 answering every query with one A record
    dns_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns_sock.bind(("127.0.0.77", 53))
    dns_sock.settimeout(5)

    def dns_server() -> None:
        for _ in range(3):
            try:
                q, peer = dns_sock.recvfrom(512)
            except TimeoutError:
                return
            qname = parse_name(q)
            dns_sock.sendto(dns_response(qname, a=("127.0.0.77",), ident=q[0] << 8 | q[1]),
                            peer)  # fmt: skip

    def parse_name(q: bytes) -> str:
        labels, pos = [], 12
        while q[pos]:
            labels.append(q[pos + 1 : pos + 1 + q[pos]].decode())
            pos += 1 + q[pos]
        return ".".join(labels)

    # TLS: a real handshake (Python's ssl = OpenSSL) with SNI
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tls_sock = socket.socket()
    tls_sock.bind(("127.0.0.77", 0))
    tls_sock.listen(4)
    tls_sock.settimeout(5)
    tls_port = tls_sock.getsockname()[1]

    def tls_server() -> None:
        for _ in range(2):
            try:
                conn, _peer = tls_sock.accept()
            except TimeoutError:
                return
            with ctx.wrap_socket(conn, server_side=True) as s:
                s.recv(100)
                s.sendall(b"pong")

    httpd = http.server.HTTPServer(("127.0.0.77", 0), http.server.SimpleHTTPRequestHandler)
    http_port = httpd.server_address[1]
    threads = [threading.Thread(target=f, daemon=True)
               for f in (dns_server, tls_server, httpd.handle_request)]  # fmt: skip
    for t in threads:
        t.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(5)
    for i, name in enumerate(("db.internal.test", "api.internal.test")):
        client.sendto(pcapgen.dns_query(name, ident=i + 1), ("127.0.0.77", 53))
        client.recvfrom(512)
    cctx = ssl.create_default_context(cafile=str(cert))  # trust the throwaway certificate
    for sni in ("api.internal.test", "db.internal.test"):
        with socket.create_connection(("127.0.0.77", tls_port), timeout=5) as raw, \
                cctx.wrap_socket(raw, server_hostname=sni) as tls:  # fmt: skip
            tls.sendall(b"ping")
            tls.recv(10)
    with socket.create_connection(("127.0.0.77", http_port), timeout=5) as h:
        h.sendall(pcapgen.http_get(f"web.internal.test:{http_port}"))
        h.recv(100)
    for t in threads:
        t.join(timeout=10)
    for sock in (dns_sock, tls_sock, client):
        sock.close()
    httpd.server_close()
    time.sleep(0.3)  # let tcpdump write the last packets (-U: per packet)
    proc.terminate()
    proc.wait(timeout=10)

    s = summarise_path(path, top=100).to_dict()
    theirs = _tshark(path, f"tcp.port=={tls_port},tls", f"tcp.port=={http_port},http")
    assert theirs["dns"] == {("db.internal.test", "127.0.0.77"),
                             ("api.internal.test", "127.0.0.77")}  # fmt: skip
    assert theirs["sni"] == {("api.internal.test", "127.0.0.77"),
                             ("db.internal.test", "127.0.0.77")}  # fmt: skip
    assert theirs["http"] == {("web.internal.test", "127.0.0.77")}
    assert _ours(s) == theirs
