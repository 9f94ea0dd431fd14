"""Benchmark: alertcap.pcap.summarise vs tshark on the same generated capture.

Boundary: a script, not a test.  It generates a 1,000,000-packet capture of
mixed, realistic-looking VM traffic (TCP bulk and request/response flows with
handshakes, teardowns, retransmissions and resets, a surge in the second half;
DNS over UDP, ICMP, ARP, some IPv6 and VLAN-tagged frames), then times

* ours:   ``python -m alertcap.pcap FILE --json --alert-time T`` in a child
  process -- everything on: findings, names (DNS/SNI/HTTP), timeline,
  before/after the alert -- and
* tshark: ``tshark -q -z conv,tcp -r FILE``,
* ours again on the same packets converted to pcapng (if editcap is there),
* ours on a port scan from random sources (the memory worst case),

several runs each, alternating (median wall time, peak RSS of the child from
``resource.getrusage(RUSAGE_CHILDREN)`` measured in a fresh helper process per
run), and finally our peak RSS on a ~1 GB capture.  It also times the
timeline PNG on the 1M-packet summary and, given ``--chart-python`` (a Python
with Pillow and matplotlib installed, never the app's venv), the import time
and installed size of those libraries against our stdlib writer.  Files live
in /tmp and are deleted afterwards.  Results go to bench/results/pcap.json and
pcap.md.

    .venv/bin/python bench/pcap_bench.py [--packets N] [--runs N] [--gb-size BYTES]
        [--chart-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

_REC = struct.Struct("<IIII")
_ZERO = bytes(1500)


def _mac(i: int) -> bytes:
    return bytes((0x00, 0x0D, 0x3A, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))


def _ip4(i: int, net: int) -> bytes:
    return bytes((10, net, (i >> 8) & 0xFF, i & 0xFF))


class _Flow:
    """Header templates for both directions of one TCP/UDP flow."""

    __slots__ = ("hdr", "l3", "proto", "seq", "v6")

    def __init__(self, rnd: random.Random, n: int, proto: int, v6: bool, sport: int,
                 dport: int, vlan: bool) -> None:  # fmt: skip
        self.proto, self.v6 = proto, v6
        cli, srv = (_ip4(n, 0), _ip4(n % 97, 1)) if not v6 else (
            b"\xfd\x00" + bytes(10) + n.to_bytes(4, "big"),
            b"\xfd\x01" + bytes(13) + bytes((n % 97,)),
        )
        self.hdr = []
        self.l3 = []
        for src, dst, sp, dp, sm, dm in ((cli, srv, sport, dport, n, 1), (srv, cli, dport, sport,
                                                                          1, n)):
            eth = _mac(dm) + _mac(sm)
            if vlan:
                eth += b"\x81\x00\x00\x64"
            if v6:
                eth += b"\x86\xdd"
                ip = struct.pack(">IHBB", 0x60000000, 0, proto, 64) + src + dst
            else:
                eth += b"\x08\x00"
                ip = struct.pack(">BBHHHBBH", 0x45, 0, 0, 0, 0x4000, 64, proto, 0) + src + dst
            if proto == 6:
                l4 = struct.pack(">HHIIBBHHH", sp, dp, 0, 0, 0x50, 0, 65535, 0, 0)
            else:
                l4 = struct.pack(">HHHH", sp, dp, 0, 0)
            self.hdr.append(bytearray(eth + ip + l4))
            self.l3.append(len(eth))
        self.seq = [rnd.getrandbits(32), rnd.getrandbits(32)]

    def packet(self, d: int, flags: int, payload: int, seq: int | None = None) -> bytes:
        h = self.hdr[d]
        q = self.l3[d]
        if self.v6:
            l4 = q + 40
            struct.pack_into(">H", h, q + 4, len(h) - l4 + payload)
        else:
            l4 = q + 20
            struct.pack_into(">H", h, q + 2, len(h) - q + payload)
        if self.proto == 6:
            s = self.seq[d] if seq is None else seq
            struct.pack_into(">IIBB", h, l4 + 4, s, self.seq[1 - d], 0x50, flags)
            if seq is None:
                self.seq[d] = (s + payload + (1 if flags & 3 else 0)) & 0xFFFFFFFF
        else:
            struct.pack_into(">H", h, l4 + 4, 8 + payload)
        return bytes(h) + _ZERO[:payload]


def generate(path: Path, packets: int, seed: int = 5, duration: float = 120.0) -> int:
    """Write a classic little-endian microsecond pcap; return its size in bytes."""
    rnd = random.Random(seed)
    services = [(443, 50), (80, 10), (22, 3), (5432, 8), (1433, 5), (6379, 6), (8080, 4)]
    ports = [p for p, w in services for _ in range(w)]
    flows: list[_Flow] = []
    weights: list[float] = []
    for n in range(1, 4001):
        f = _Flow(rnd, n, 6, rnd.random() < 0.1, rnd.randint(32768, 60999), rnd.choice(ports),
                  rnd.random() < 0.03)  # fmt: skip
        flows.append(f)
        weights.append(1.0 / n**0.8)  # a few heavy flows, a long tail
    dns = [_Flow(rnd, n, 17, False, rnd.randint(32768, 60999), 53, False) for n in range(1, 301)]
    arp = _mac(0xFFFFFF) + _mac(1) + b"\x08\x06" + bytes(28)
    icmp = _mac(2) + _mac(1) + b"\x08\x00" + struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 84, 0, 0, 64, 1, 0, bytes((10, 0, 0, 1)), bytes((10, 1, 0, 1))
    ) + bytes(64)  # fmt: skip
    surge = _Flow(rnd, 9999, 6, False, 45000, 443, False)

    out = bytearray(b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 262144, 1))
    t0 = 1_760_000_000.0
    step = duration / packets
    written = 0
    size = 0
    cum = [0.0]
    for w in weights:
        cum.append(cum[-1] + w)
    choices = rnd.choices
    with open(path, "wb") as fh:

        def emit(frame: bytes) -> None:
            nonlocal written
            t = t0 + written * step
            sec = int(t)
            out.extend(_REC.pack(sec, int((t - sec) * 1e6), len(frame), len(frame)))
            out.extend(frame)
            written += 1

        while written < packets:
            r = rnd.random()
            if written > packets // 2 and r < 0.25:
                # the alert: one conversation starts pushing far more segments
                emit(surge.packet(0, 0x18, 1448))
                if r < 0.08:
                    emit(surge.packet(1, 0x10, 0))
            elif r < 0.015:
                f = dns[rnd.randrange(len(dns))]
                emit(f.packet(0, 0, 40))
                emit(f.packet(1, 0, 120))
            elif r < 0.017:
                emit(icmp)
            elif r < 0.018:
                emit(arp)
            else:
                f = choices(flows, cum_weights=cum[1:])[0]
                kind = rnd.random()
                if kind < 0.03:  # new connection
                    emit(f.packet(0, 0x02, 0))
                    emit(f.packet(1, 0x12, 0))
                    emit(f.packet(0, 0x10, 0))
                elif kind < 0.035:
                    emit(f.packet(0, 0x11, 0))
                    emit(f.packet(1, 0x11, 0))
                elif kind < 0.037:
                    emit(f.packet(1, 0x04, 0))
                elif kind < 0.047:  # retransmission of the last data segment
                    emit(f.packet(1, 0x18, 1448, seq=(f.seq[1] - 1448) & 0xFFFFFFFF))
                elif kind < 0.5:  # request/response
                    emit(f.packet(0, 0x18, rnd.randint(60, 600)))
                    emit(f.packet(1, 0x18, rnd.randint(100, 1448)))
                    emit(f.packet(0, 0x10, 0))
                else:  # bulk download with delayed ACKs
                    emit(f.packet(1, 0x10, 1448))
                    emit(f.packet(1, 0x18, 1448))
                    emit(f.packet(0, 0x10, 0))
            if len(out) > 4 << 20:
                fh.write(out)
                size += len(out)
                out.clear()
        fh.write(out)
        size += len(out)
    return size


def generate_scan(path: Path, packets: int, seed: int = 9) -> int:
    """The memory worst case: every packet a SYN from a random source and port
    to a random port, so every packet is a new flow."""
    rnd = random.Random(seed)
    frame = bytearray(_mac(2) + _mac(1) + b"\x08\x00" + struct.pack(
        ">BBHHHBBH4s4sHHIIBBHHH", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, bytes(4), bytes(4),
        1, 1, 1, 0, 0x50, 0x02, 1024, 0, 0,
    ))  # fmt: skip
    out = bytearray(b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 262144, 1))
    size = 0
    with open(path, "wb") as fh:
        for i in range(packets):
            struct.pack_into(">I", frame, 26, rnd.getrandbits(32))
            struct.pack_into(">IHH", frame, 30, 0x0A000001 + i % 7, rnd.getrandbits(16),
                             rnd.getrandbits(16))  # fmt: skip
            out += _REC.pack(1_760_000_000 + i // 10_000, i % 10_000 * 100, 54, 54)
            out += frame
            if len(out) > 4 << 20:
                fh.write(out)
                size += len(out)
                out.clear()
        fh.write(out)
        size += len(out)
    return size


_MEASURE = r"""
import json, resource, subprocess, sys, time
argv = json.loads(sys.argv[1])
t = time.perf_counter()
subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": wall, "maxrss_kb": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime}))
"""


def measure(argv: list[str]) -> dict[str, float]:
    """Run argv in a fresh helper so RUSAGE_CHILDREN's peak RSS is this run's alone."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(argv)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def summarise_samples(label: str, argv: list[str], samples: list[dict[str, float]],
                      packets: int) -> dict[str, object]:  # fmt: skip
    wall = statistics.median(s["wall"] for s in samples)
    cpu = statistics.median(s["cpu"] for s in samples)
    rss = max(s["maxrss_kb"] for s in samples) / 1024
    print(f"  {label:<9} median {wall:7.2f} s  {packets / wall:12,.0f} packets/s  "
          f"peak RSS {rss:7.1f} MB  runs {[round(s['wall'], 2) for s in samples]}")  # fmt: skip
    return {
        "argv": argv,
        "runs": [round(s["wall"], 3) for s in samples],
        "median_s": round(wall, 3),
        "median_cpu_s": round(cpu, 3),
        "packets_per_s": round(packets / wall),
        "peak_rss_mb": round(rss, 1),
    }


def bench(label: str, argv: list[str], runs: int, packets: int) -> dict[str, object]:
    return summarise_samples(label, argv, [measure(argv) for _ in range(runs)], packets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gb-size", type=int, default=1 << 30, help="size of the large file")
    ap.add_argument("--chart-python", help="a python with Pillow and matplotlib, to compare")
    args = ap.parse_args()
    tshark = shutil.which("tshark")
    # the generated captures start at 1_760_000_000; the alert fires mid-capture
    ours = [sys.executable, "-m", "alertcap.pcap", "--json", "--alert-time", "1760000060"]
    env_path = str(ROOT)
    os.environ["PYTHONPATH"] = env_path + os.pathsep + os.environ.get("PYTHONPATH", "")
    probe = "from alertcap.pcap import decode; print(decode._fastscan is not None)"
    accelerated = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                 text=True, check=True).stdout.strip() == "True"
    result: dict[str, object] = {
        "accelerator": accelerated,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with tempfile.TemporaryDirectory(prefix="pcapbench-", dir="/tmp") as tmp:
        small = Path(tmp) / "bench-1m.pcap"
        t = time.perf_counter()
        size = generate(small, args.packets)
        print(f"generated {args.packets:,} packets, {size / 1e6:.0f} MB "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        result["file"] = {"packets": args.packets, "bytes": size}
        ours_argv = [*ours, str(small)]
        if tshark:
            version = subprocess.run([tshark, "--version"], capture_output=True, text=True)
            result["tshark_version"] = version.stdout.splitlines()[0]
            result["tshark_short"] = "tshark " + version.stdout.split()[2]
            tshark_argv = [tshark, "-q", "-z", "conv,tcp", "-r", str(small)]
            # Alternate the two so that a busy neighbour slows both alike.
            pure_argv = [*ours, "--pure-python", str(small)]
            # Alternate the three so that a busy neighbour slows all alike.
            runs = [(measure(ours_argv), measure(tshark_argv), measure(pure_argv))
                    for _ in range(args.runs)]
            result["ours"] = summarise_samples("ours", ours_argv, [o for o, _, _ in runs],
                                               args.packets)  # fmt: skip
            result["tshark"] = summarise_samples("tshark", tshark_argv,
                                                 [t for _, t, _ in runs], args.packets)
            result["ours_pure"] = summarise_samples("ours pure", pure_argv,
                                                    [p for _, _, p in runs], args.packets)
            ratios = [t["wall"] / o["wall"] for o, t, _ in runs]
            result["speedup_vs_tshark"] = round(statistics.median(ratios), 2)
            result["speedup_runs"] = [round(r, 2) for r in ratios]
            pure = [t["wall"] / p["wall"] for _, t, p in runs]
            result["speedup_pure_vs_tshark"] = round(statistics.median(pure), 2)
        else:
            result["ours"] = bench("ours", ours_argv, args.runs, args.packets)
        editcap = shutil.which("editcap")
        if editcap:  # the same packets as pcapng, as tcpdump/dumpcap may write them
            ng = Path(tmp) / "bench-1m.pcapng"
            subprocess.run([editcap, "-F", "pcapng", str(small), str(ng)], check=True)
            result["ours_pcapng"] = bench("ours ng", [*ours, str(ng)], args.runs, args.packets)
            ng.unlink()
        result["chart"] = chart(small, args.chart_python)
        small.unlink()

        big = Path(tmp) / "bench-1g.pcap"
        big_packets = int(args.packets * args.gb_size / size)
        t = time.perf_counter()
        big_size = generate(big, big_packets, seed=7, duration=600.0)
        print(f"generated {big_packets:,} packets, {big_size / 1e6:.0f} MB "
              f"in {time.perf_counter() - t:.1f} s")  # fmt: skip
        result["large_file"] = {"packets": big_packets, "bytes": big_size}
        result["ours_large"] = bench("ours 1GB", [*ours, str(big)], 1, big_packets)
        big.unlink()

        scan = Path(tmp) / "bench-scan.pcap"
        scan_size = generate_scan(scan, args.packets)
        result["scan_file"] = {"packets": args.packets, "bytes": scan_size}
        result["ours_scan"] = bench("ours scan", [*ours, str(scan)], 1, args.packets)
        scan.unlink()

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pcap.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "pcap.md").write_text(markdown(result))
    print(markdown(result))
    return 0


_CHART = r"""
import io, json, sys, time, zlib
t = time.perf_counter()
from alertcap.pcap import summarise_path
from alertcap.pcap.chart import timeline_png
s = summarise_path(sys.argv[1], alert_time=1760000060).to_dict()
times = []
for _ in range(5):
    t = time.perf_counter()
    png = timeline_png(s)
    times.append(time.perf_counter() - t)
print(json.dumps({"png_s": sorted(times)[2], "png_bytes": len(png),
                  "findings": [f["kind"] for f in s["findings"]],
                  "verdict": s["verdict"]["lines"]}))
"""


def _import_time(python: str, stmt: str, runs: int = 5) -> float:
    """Median wall time of a fresh interpreter running ``stmt``, minus an empty one."""
    def once(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - t

    base = statistics.median(once("pass") for _ in range(runs))
    return max(statistics.median(once(stmt) for _ in range(runs)) - base, 0.0)


def _installed_mb(python: str, modules: list[str]) -> float:
    code = ("import importlib.util, os, sys, json\n"
            "total = 0\n"
            "for m in sys.argv[1:]:\n"
            "    spec = importlib.util.find_spec(m)\n"
            "    d = os.path.dirname(spec.origin)\n"
            "    for root, _, files in os.walk(d):\n"
            "        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)\n"
            "    libs = d + '.libs'\n"
            "    for root, _, files in os.walk(libs):\n"
            "        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)\n"
            "print(total)")  # fmt: skip
    out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return int(out.stdout) / 1e6


def chart(capture: Path, chart_python: str | None) -> dict[str, object]:
    """PNG render time on the bench summary; chart libraries' weight and import time."""
    out = subprocess.run([sys.executable, "-c", _CHART, str(capture)], capture_output=True,
                         text=True, check=True)  # fmt: skip
    r: dict[str, object] = json.loads(out.stdout)
    ours_mb = sum(p.stat().st_size for p in (ROOT / "alertcap" / "pcap").glob("chart.py")) / 1e6
    libs = {"stdlib zlib + 5x7 font (alertcap.pcap.chart)": {
        # the module alone, loaded by path: what it adds to an app that has the package
        "import_s": round(_import_time(sys.executable, (
            "import importlib.util as u; s = u.spec_from_file_location('chart', "
            f"{str(ROOT / 'alertcap' / 'pcap' / 'chart.py')!r}); "
            "s.loader.exec_module(u.module_from_spec(s))")), 3),
        "installed_mb": round(ours_mb, 3)}}  # fmt: skip
    if chart_python:
        libs["Pillow"] = {"import_s": round(_import_time(chart_python, "import PIL.Image, "
                                                         "PIL.ImageDraw"), 3),
                          "installed_mb": round(_installed_mb(chart_python, ["PIL"]), 1)}
        libs["matplotlib (Agg)"] = {
            "import_s": round(_import_time(chart_python, "import matplotlib; "
                                           "matplotlib.use('Agg'); import matplotlib.pyplot"), 3),
            "installed_mb": round(_installed_mb(
                chart_python, ["matplotlib", "numpy", "PIL", "fontTools", "kiwisolver",
                               "contourpy", "cycler", "pyparsing", "dateutil"]), 1)}  # fmt: skip
    r["libraries"] = libs
    print(f"  png {r['png_s']:.3f} s, {r['png_bytes']} bytes; findings {r['findings']}")
    for name, v in libs.items():
        print(f"  {name}: import {v['import_s']} s, {v['installed_mb']} MB")
    return r


def markdown(r: dict) -> str:  # type: ignore[type-arg]
    f = r["file"]
    lines = [
        "# pcap summary benchmark",
        "",
        f"{f['packets']:,}-packet capture ({f['bytes'] / 1e6:,.0f} MB), median of "
        f"{len(r['ours']['runs'])} runs; {r['machine']['python']} on {r['machine']['platform']}"
        f" ({r['machine']['cpus']} CPUs), {r['date']}. Generated by `bench/pcap_bench.py`.",
        "",
        "Everything is on in our runs: findings, names (DNS/SNI/HTTP), the timeline and the "
        "before/after split at an alert time. "
        "Traffic: Ethernet, ~4,000 TCP flows (10% IPv6, 3% VLAN-tagged; handshakes, "
        "request/response and bulk transfers, ~1% retransmissions, resets), DNS over UDP, "
        "ICMP, ARP, and one conversation surging in the second half. Peak RSS is the "
        "child process's maximum resident set (getrusage). The host is a shared VM: single "
        "runs of either tool vary by up to about 25% (all runs are in pcap.json).",
        "",
        "| tool | seconds (wall) | CPU seconds | packets/s | peak RSS |",
        "|---|---:|---:|---:|---:|",
        f"| alertcap.pcap (`python -m alertcap.pcap --json FILE`) | {r['ours']['median_s']:.2f} | "
        f"{r['ours']['median_cpu_s']:.2f} | {r['ours']['packets_per_s']:,} | "
        f"{r['ours']['peak_rss_mb']:.0f} MB |",
    ]
    if "ours_pure" in r:
        pu = r["ours_pure"]
        lines.append(
            f"| alertcap.pcap without its C accelerator (`--pure-python`) | "
            f"{pu['median_s']:.2f} | {pu['median_cpu_s']:.2f} | {pu['packets_per_s']:,} | "
            f"{pu['peak_rss_mb']:.0f} MB |")
    if "tshark" in r:
        lines.append(
            f"| {r.get('tshark_short', 'tshark')} (`-q -z conv,tcp -r FILE`) | "
            f"{r['tshark']['median_s']:.2f} | {r['tshark']['median_cpu_s']:.2f} | "
            f"{r['tshark']['packets_per_s']:,} | "
            f"{r['tshark']['peak_rss_mb']:.0f} MB |"
        )
        lines += ["", f"Speed-up vs tshark (runs alternate ours/tshark on the same file; "
                  f"median of the per-pair ratios {r['speedup_runs']}): "
                  f"**{r['speedup_vs_tshark']}x** (ratio of the medians: "
                  f"{r['tshark']['median_s'] / r['ours']['median_s']:.2f}x)"
                  + ("" if r.get("accelerator", True) else
                     " -- the C accelerator was NOT built for this run") + "."]  # fmt: skip
        if "speedup_pure_vs_tshark" in r:
            lines += ["", f"Without the C accelerator (alertcap/pcap/_fastscan.c, built by "
                      f"`make`): **{r['speedup_pure_vs_tshark']}x**."]
    if "ours_pcapng" in r:
        ng = r["ours_pcapng"]
        lines += ["", f"The same packets as pcapng (converted by editcap): ours "
                  f"{ng['median_s']:.2f} s, {ng['packets_per_s']:,} packets/s, "
                  f"peak RSS {ng['peak_rss_mb']:.0f} MB."]  # fmt: skip
    if "chart" in r:
        c = r["chart"]
        lines += ["", f"Timeline PNG on this capture's summary: {c['png_s'] * 1000:.0f} ms, "
                  f"{c['png_bytes']:,} bytes. Findings: {', '.join(c['findings'])}.", "",
                  "| chart option | import time (cold, s) | installed size (MB) |",
                  "|---|---:|---:|"]  # fmt: skip
        for name, v in c["libraries"].items():
            lines.append(f"| {name} | {v['import_s']:.3f} | {v['installed_mb']:.3f} |")
    lg = r["large_file"]
    lines += [
        "",
        f"Large file: {lg['packets']:,} packets, {lg['bytes'] / 1e9:.2f} GB: "
        f"{r['ours_large']['median_s']:.1f} s, "
        f"peak RSS **{r['ours_large']['peak_rss_mb']:.0f} MB**.",
        "",
    ]
    if "ours_scan" in r:
        sc = r["ours_scan"]
        lines += [
            f"Memory worst case, {r['scan_file']['packets']:,} SYNs from random sources to "
            f"random ports (every packet a new flow; flow tables at their limits): "
            f"{sc['median_s']:.1f} s, peak RSS **{sc['peak_rss_mb']:.0f} MB**.",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
