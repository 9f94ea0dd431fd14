"""`python -m localdev up|down|status|restart-host|alert FILE|demo`: the local stack, from
one command.

    up      start Azurite, the ARM endpoint (with its identity endpoint), the email
            endpoint and the Functions host in the background; wait until healthy; write
            .localdev/endpoints.json  [--port N] [--arm-latency-ms MS]
    down    stop them all (and remove the VMs' network namespaces)
    status  what runs, where
    restart-host [--kill]   restart (or crash and restart) the Functions host only
    alert   post an alert payload with the function key and follow its status URL
    demo    up, make the demo VM send an unusual burst of TCP traffic, post a
            real-shaped alert, follow the run, print the capture, summary and email, down

Boundary: argument parsing only. Wiring is localdev.stack, processes localdev.supervise,
HTTP to the running stack localdev.client, the story localdev.demo.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localdev import demo, stack
from localdev.client import StackClient
from localdev.demo import demo_alert

__all__ = ["alert", "demo_alert", "main"]  # demo_alert: where the e2e tests import it from


def alert(path: str) -> int:
    client = StackClient.load(stack.STATE)
    r = client.post_alert(json.loads(Path(path).read_text()))
    print(json.dumps(r.body, indent=2))
    if r.status not in (200, 202) or not isinstance(r.body, dict) \
            or "statusQueryGetUri" not in r.body:
        return 1 if r.status >= 400 else 0
    final = client.follow(r.body["statusQueryGetUri"])
    print(json.dumps(final.get("output"), indent=2))
    return 0 if final.get("runtimeStatus") == "Completed" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up")
    p_up.add_argument("--port", type=int, default=7071)
    p_up.add_argument("--arm-latency-ms", type=float, default=0,
                      help="delay the local ARM adds to every ARM call (Azure: ~100-300 ms)")
    sub.add_parser("down")
    sub.add_parser("status")
    p_restart = sub.add_parser("restart-host", help="restart the Functions host only")
    p_restart.add_argument("--kill", action="store_true", help="SIGKILL it first (a crash)")
    p_alert = sub.add_parser("alert")
    p_alert.add_argument("file")
    p_demo = sub.add_parser("demo")
    p_demo.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.arm_latency_ms < 0:
            parser.error("--arm-latency-ms must be >= 0")
        stack.up(args.port, arm_latency_ms=args.arm_latency_ms)
        return 0
    if args.command == "down":
        stack.down()
        return 0
    if args.command == "status":
        return stack.status()
    if args.command == "restart-host":
        stack.restart_host(args.kill)
        return 0
    if args.command == "alert":
        return alert(args.file)
    return demo.run(args.keep)
