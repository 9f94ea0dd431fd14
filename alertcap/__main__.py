"""Command line: ``python -m alertcap doctor [--json] [--settings FILE]``.

Runs the doctor with the app's settings from the environment (or from a
local.settings.json-shaped FILE, whose ``Values`` are put into the environment first, so
the credential sees them too), prints a table (or the JSON report) and exits 0 when no
check failed, 1 when one did (warnings alone exit 0), 2 on bad arguments.

Boundary: argument parsing, output and exit codes only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from alertcap.doctor import run_from_env
from alertcap.doctor.model import render_text


def _load_settings_file(path: str) -> None:
    try:
        values = json.loads(Path(path).read_text()).get("Values")
    except (OSError, ValueError, AttributeError) as exc:
        raise SystemExit(f"--settings {path}: not a readable local.settings.json ({exc})") from None
    if not isinstance(values, dict):
        raise SystemExit(f"--settings {path}: no \"Values\" object")
    os.environ.update({str(k): str(v) for k, v in values.items() if not str(k).startswith("_")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alertcap")
    commands = parser.add_subparsers(dest="command", required=True)
    doctor = commands.add_parser("doctor", help="check everything a capture run would fail on")
    doctor.add_argument("--json", action="store_true", help="print the JSON report")
    doctor.add_argument("--settings", metavar="FILE",
                        help="a local.settings.json whose Values to use")
    args = parser.parse_args(argv)
    if args.settings:
        _load_settings_file(args.settings)
    report = run_from_env()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        sys.stdout.write(render_text(report))
    return 0 if report.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
