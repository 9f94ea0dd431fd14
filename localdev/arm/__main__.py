"""``python -m localdev.arm --state-dir DIR --config FILE --port N --identity-port M``

Serves ARM over HTTPS on 127.0.0.1:N and the managed identity token endpoint over
plain HTTP on 127.0.0.1:M (0 = pick a free port). Writes ``DIR/arm.json`` with the
chosen ports, URLs and certificate path once both listen. Secrets come from the config
file or env (LOCALDEV_IDENTITY_HEADER), never from argv, and are never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from ..tls import server_context
from .config import load
from .server import ArmServer


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    if not isinstance(server, asyncio.Server):
        raise RuntimeError("the ARM site is not listening")
    port: int = server.sockets[0].getsockname()[1]
    return port


async def serve(args: argparse.Namespace) -> None:
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    config = load(args.config)
    arm = ArmServer(config, state)
    ssl_ctx, cert_path = server_context(state)

    arm_runner = web.AppRunner(arm.app(), access_log=None)
    id_runner = web.AppRunner(arm.tokens.app(), access_log=None)
    await arm_runner.setup()
    await id_runner.setup()
    arm_site = web.TCPSite(arm_runner, "127.0.0.1", args.port, ssl_context=ssl_ctx)
    id_site = web.TCPSite(id_runner, "127.0.0.1", args.identity_port)
    await arm_site.start()
    await id_site.start()
    port, id_port = _bound_port(arm_site), _bound_port(id_site)
    info = {
        "pid": os.getpid(),
        "port": port,
        "identityPort": id_port,
        "armUrl": f"https://127.0.0.1:{port}",
        "identityEndpoint": f"http://127.0.0.1:{id_port}/msi/token",
        "certPath": cert_path,
    }
    tmp = state / "arm.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(state / "arm.json")  # readers never see a half-written file
    logging.getLogger("localdev.arm").info("ARM on %s, identity on %s", port, id_port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await arm.shutdown()  # no tcpdump outlives us
    await arm_runner.cleanup()
    await id_runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m localdev.arm", description=__doc__)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--identity-port", type=int, default=0)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
