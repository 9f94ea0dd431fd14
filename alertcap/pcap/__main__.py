"""Command line: ``python -m alertcap.pcap FILE|- [--top N] [--json]``.

Boundary: argument parsing and exit codes only.  Exit 0 with a summary (also
for a damaged capture: the warnings say so), 2 when the input is not a capture
or cannot be opened.
"""

from __future__ import annotations

import argparse
import json
import sys

from alertcap.pcap.reader import NotACaptureError
from alertcap.pcap.render import render_text
from alertcap.pcap.summary import summarise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m alertcap.pcap", description="Summarise a pcap/pcapng capture."
    )
    parser.add_argument("file", help="capture file, or - for standard input")
    parser.add_argument("--top", type=int, default=10, help="rows per table (default 10)")
    parser.add_argument("--json", action="store_true", help="print the JSON summary")
    args = parser.parse_args(argv)
    try:
        if args.file == "-":
            summary = summarise(sys.stdin.buffer, top=args.top)
        else:
            with open(args.file, "rb") as f:
                summary = summarise(f, top=args.top)
    except NotACaptureError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    out = (
        json.dumps(summary.to_dict(), indent=2) + "\n"
        if args.json
        else render_text(summary.to_dict())
    )
    try:
        sys.stdout.write(out)
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
