"""The demo's "unusual burst": a TCP sink and a client that floods it for a while.

    python -m localdev.traffic --listen HOST [--port N] --seconds S [--netns NS] [--no-bulk]
    python -m localdev.traffic --trickle HOST:PORT --seconds S [--netns NS]

Runs the sink on HOST (the host side of the VM's link, or 127.0.0.1) and the client in
the VM's network namespace when one is given, so the capture on the VM sees a realistic
mix: many short connections (new flows per second) and one bulk upload (``--no-bulk``: the
short connections only, a burst small enough to sit in a few standby ring files).
``--trickle`` sends two small UDP datagrams a second, a VM that is never quite silent.
Bounded in time and rate; only addresses on this machine or in our own namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import threading
import time

PAYLOAD = b"x" * 4096


def sink(host: str, port: int) -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(512)

    def drain(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server


def client(host: str, port: int, seconds: float, rate: int, bulk_upload: bool = True) -> None:
    end = time.monotonic() + seconds
    if bulk_upload:
        bulk = socket.create_connection((host, port), timeout=5)

        def upload() -> None:
            with bulk:
                while time.monotonic() < end:
                    bulk.sendall(PAYLOAD)
                    time.sleep(0.002)

        threading.Thread(target=upload, daemon=True).start()
    while time.monotonic() < end:
        tick = time.monotonic()
        for _ in range(rate // 10):
            try:
                with socket.create_connection((host, port), timeout=2) as s:
                    s.sendall(PAYLOAD[:512])
            except OSError:
                pass
        time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))


def trickle(host: str, port: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while time.monotonic() < end:
            with contextlib.suppress(OSError):  # nobody listening is fine: it is on the wire
                s.sendto(b"tick", (host, port))
            time.sleep(0.5)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m localdev.traffic", description=__doc__)
    p.add_argument("--listen", help="run the sink on this address and drive a client")
    p.add_argument("--connect", help="client only: HOST:PORT")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--rate", type=int, default=200, help="new connections per second")
    p.add_argument("--netns", help="run the client inside this network namespace")
    p.add_argument("--no-bulk", dest="bulk", action="store_false",
                   help="short connections only, no bulk upload")
    p.add_argument("--trickle", help="HOST:PORT: two small UDP datagrams a second")
    args = p.parse_args()
    if args.trickle:
        host, port = args.trickle.rsplit(":", 1)
        if not args.netns:
            trickle(host, int(port), args.seconds)
            return 0
        return subprocess.run(["ip", "netns", "exec", args.netns, sys.executable, "-m",
                               "localdev.traffic", "--trickle", args.trickle, "--seconds",
                               str(args.seconds)], check=False).returncode
    if args.connect:
        host, port = args.connect.rsplit(":", 1)
        client(host, int(port), args.seconds, args.rate, args.bulk)
        return 0
    server = sink(args.listen, args.port)
    port = server.getsockname()[1]
    argv = [sys.executable, "-m", "localdev.traffic", "--connect", f"{args.listen}:{port}",
            "--seconds", str(args.seconds), "--rate", str(args.rate)]
    if not args.bulk:
        argv.append("--no-bulk")
    if args.netns:
        argv = ["ip", "netns", "exec", args.netns, *argv]
    result = subprocess.run(argv, check=False)
    server.close()
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
