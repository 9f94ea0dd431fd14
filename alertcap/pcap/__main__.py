"""Command line: ``python -m alertcap.pcap FILE|- [--top N] [--json]
[--alert-time T] [--png OUT.png] [--slices DIR]``.

Boundary: argument parsing, files and exit codes only.  Exit 0 with a summary
(also for a damaged capture: the warnings say so), 2 when the input is not a
capture or cannot be opened, or an option is invalid.  The text output starts
with the verdict and findings; ``--json`` prints the whole summary, findings
included.  ``--slices`` reads FILE a second time (not with ``-``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alertcap.pcap.chart import timeline_png
from alertcap.pcap.findings import parse_time
from alertcap.pcap.reader import NotACaptureError
from alertcap.pcap.render import render_text
from alertcap.pcap.slices import selectors, write_slices
from alertcap.pcap.summary import summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alertcap.pcap", description="Summarise a pcap/pcapng capture."
    )
    parser.add_argument("file", help="capture file, or - for standard input")
    parser.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    parser.add_argument("--json", action="store_true", help="print the JSON summary")
    parser.add_argument("--alert-time", help="alert firing time (ISO 8601 or UNIX seconds):"
                        " splits the capture into before/after")  # fmt: skip
    parser.add_argument("--pure-python", action="store_true",
                        help="leave the C accelerator out (the same summary, slower)")
    parser.add_argument("--png", help="write the timeline picture to this file")
    parser.add_argument("--slices", help="write evidence slices (pcap) into this directory")
    args = parser.parse_args(argv)
    alert_time = None
    if args.alert_time is not None:
        raw = args.alert_time
        alert_time = parse_time(float(raw) if raw.replace(".", "", 1).isdigit() else raw)
        if alert_time is None:
            print(f"--alert-time: not a time: {raw!r}", file=sys.stderr)
            return 2
    if args.slices and args.file == "-":
        print("--slices needs a file, not standard input", file=sys.stderr)
        return 2
    try:
        if args.file == "-":
            summary = summarise(sys.stdin.buffer, top=args.top, alert_time=alert_time,
                                native=not args.pure_python)
        else:
            with open(args.file, "rb") as f:
                summary = summarise(f, top=args.top, alert_time=alert_time,
                                    native=not args.pure_python)
    except NotACaptureError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    d = summary.to_dict()
    try:
        if args.png:
            Path(args.png).write_bytes(timeline_png(d))
        if args.slices:
            folder = Path(args.slices)
            folder.mkdir(parents=True, exist_ok=True)
            with open(args.file, "rb") as f:
                files, _info = write_slices(f, selectors(d))
            for name, data in files.items():
                (folder / f"{name}.pcap").write_bytes(data)
    except OSError as exc:
        print(f"{exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    out = json.dumps(d, indent=2) + "\n" if args.json else render_text(d, rows=args.top)
    try:
        sys.stdout.write(out)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
