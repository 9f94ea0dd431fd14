"""Run tshark/capinfos and parse their statistics, for cross-checking our summary.

Boundary: test support only.  ``stats`` runs tshark once for per-packet
fields plus the conversation and io,stat tables; ``capinfos`` parses
``capinfos -M -S``.  Byte counts that tshark prints with a
unit ("53 kB") come back as (value, tolerance); exact ones with tolerance 0.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}
_CONV = re.compile(
    r"^(?P<a>\S+)\s+<->\s+(?P<b>\S+)\s+"
    r"(?P<f_ba>\d+)\s+(?P<b_ba>\d+)\s+(?P<u_ba>bytes|kB|MB|GB)\s+"
    r"(?P<f_ab>\d+)\s+(?P<b_ab>\d+)\s+(?P<u_ab>bytes|kB|MB|GB)\s+"
    r"(?P<f>\d+)\s+(?P<b_t>\d+)\s+(?P<u_t>bytes|kB|MB|GB)"
)


def run(*argv: str | Path) -> str:
    out = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout


@dataclass(frozen=True)
class Bytes:
    value: int
    tolerance: int

    def matches(self, exact: int) -> bool:
        return abs(exact - self.value) <= self.tolerance


def _bytes(num: str, unit: str) -> Bytes:
    scale = _UNITS[unit]
    return Bytes(int(num) * scale, 0 if scale == 1 else scale)


@dataclass(frozen=True)
class Conv:
    a: str
    b: str
    frames_ab: int
    frames_ba: int
    bytes_ab: Bytes
    bytes_ba: Bytes
    frames: int
    bytes: Bytes


_SECTIONS = {"TCP": "tcp", "UDP": "udp", "IPv4": "ip", "IPv6": "ipv6"}


@dataclass
class Stats:
    conv: dict[str, list[Conv]]  # "tcp", "udp", "ip", "ipv6"
    io: tuple[int, int]  # frames, bytes
    rows: list[list[str]]  # the -T fields values, one list per packet


def stats(path: Path, *names: str) -> Stats:
    """One tshark pass: ``-T fields`` for ``names`` plus ``-z conv,{tcp,udp,ip,ipv6}``
    and ``-z io,stat,0`` (one interval: the whole capture).  Conversation columns
    "<-" are B->A and "->" A->B."""
    argv: list[str | Path] = ["tshark", "-r", path, "-T", "fields", "-E", "separator=\t"]
    for n in names:
        argv += ["-e", n]
    for kind in _SECTIONS.values():
        argv += ["-z", f"conv,{kind}"]
    argv += ["-z", "io,stat,0"]
    lines = run(*argv).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("====="))
    rows = [r for r in (line.split("\t") for line in lines[:start]) if len(r) == len(names)]
    conv: dict[str, list[Conv]] = {k: [] for k in _SECTIONS.values()}
    io = None
    section = None
    for line in lines[start:]:
        title = line.split(" ")[0]
        if line.endswith("Conversations") and title in _SECTIONS:
            section = _SECTIONS[title]
            continue
        m = _CONV.match(line.strip())
        if m and section:
            conv[section].append(
                Conv(
                    m["a"], m["b"], int(m["f_ab"]), int(m["f_ba"]),
                    _bytes(m["b_ab"], m["u_ab"]), _bytes(m["b_ba"], m["u_ba"]),
                    int(m["f"]), _bytes(m["b_t"], m["u_t"]),
                )
            )  # fmt: skip
        m = re.match(r"^\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", line)
        if m:
            io = (int(m[1]), int(m[2]))
    assert io is not None, "no io,stat interval line"
    return Stats(conv, io, rows)


def capinfos(path: Path) -> dict[str, str]:
    out = run("capinfos", "-M", "-S", "-c", "-d", "-u", "-a", "-e", path)
    info = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def endpoint(host: str, port: int | None) -> str:
    """Our (host, port) in tshark's conv notation."""
    return host if port is None else f"{host}:{port}"
