"""CLI: `python -m localdev.host --app-dir DIR [--port 7071] [--rpc-port N] [--state-dir D]`.

Boundary: argument parsing and start-up order only. Settings go into the environment
before the app is imported (as Core Tools does), then keys, store, engine and listeners
start; the function URLs and the keys file path are printed, never key values. When
ready it writes `<state-dir>/host-runtime.json` (URLs and pid, no secrets) so scripts and
tests that asked for port 0 can find the host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import logs
from .keys import load_or_create
from .loader import HostConfig, apply_settings, load_app
from .server import WEBHOOK_PATH, Host
from .store import Store
from .workers import Engine


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localdev.host", description=__doc__)
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    parser.add_argument("--port", type=int, default=7071, help="0 picks a free port")
    parser.add_argument(
        "--rpc-port",
        type=int,
        default=-1,
        help="internal Durable RPC port (default: port+10000; 0 picks a free port)",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="default: <app-dir>/.localdev")
    parser.add_argument(
        "--settings",
        type=Path,
        default=None,
        help='JSON file {"Values": {...}} applied after local.settings.json',
    )
    return parser.parse_args(argv)


def lock_state_dir(state_dir: Path) -> Any:
    """One host per state dir: two would run every activity twice. Freed by the OS on exit."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "host.lock", "w")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SystemExit(f"another localdev host is already using {state_dir}") from None
    return handle


async def main_async(args: argparse.Namespace) -> None:
    app_dir: Path = args.app_dir.resolve()
    state_dir: Path = (args.state_dir or app_dir / ".localdev").resolve()
    lock = lock_state_dir(state_dir)
    logs.setup(state_dir)
    applied = apply_settings(app_dir, args.settings)
    if applied:
        logs.log.info("Settings applied: %s", ", ".join(sorted(applied)))
    config = HostConfig.from_file(app_dir / "host.json")
    _, functions = load_app(app_dir)
    keys = load_or_create(state_dir)
    store = Store(state_dir / "durable.sqlite3")
    engine = Engine(store, functions, config, app_dir)
    host = Host(
        app_dir=app_dir, config=config, functions=functions, keys=keys, store=store, engine=engine
    )
    await host.start(args.port, args.rpc_port)
    await engine.start()

    logs.log.info("Task hub: %s; state: %s", config.hub_name, state_dir)
    logs.log.info("Functions:")
    prefix = f"/{config.route_prefix}" if config.route_prefix else ""
    for info in functions.values():
        if info.kind == "http":
            methods = ",".join(info.methods) or "*"
            logs.log.info(
                "  %s: [%s] %s%s/%s (auth: %s)",
                info.name,
                methods,
                host.urls.base,
                prefix,
                info.route,
                info.auth_level,
            )
        else:
            logs.log.info("  %s: %sTrigger", info.name, info.kind)
    logs.log.info("Durable management API: %s%s/", host.urls.base, WEBHOOK_PATH)
    logs.log.info("Durable RPC endpoint (internal): %s", host.urls.rpc_base)
    logs.log.info(
        "Keys (master, function 'default', system 'durabletask_extension'): %s", keys.path
    )
    runtime = state_dir / "host-runtime.json"
    runtime.write_text(
        json.dumps(
            {
                "baseUrl": host.urls.base,
                "rpcBaseUrl": host.urls.rpc_base,
                "webhookBaseUrl": host.urls.webhook,
                "keysFile": str(keys.path),
                "pid": os.getpid(),
                "taskHub": config.hub_name,
            },
            indent=2,
        )
    )
    logs.log.info("Host started: %s", host.urls.base)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logs.log.info("Host stopping")
    await host.stop()
    await engine.stop()
    store.close()
    with contextlib.suppress(FileNotFoundError):
        runtime.unlink()
    lock.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
