"""Type stub of the optional C accelerator (_fastscan.c)."""

from typing import Any

def run(
    buf: bytes | bytearray, off: int, n: int, little: bool, max_caplen: int, fast_min: int,
    be_sec: int, be_frac: int, tcp: dict[bytes, list[Any]], udp: dict[bytes, list[Any]],
    cur: int, /,
) -> tuple[int, int, int, int]: ...
