"""``python -m localdev.email --state-dir DIR --port N``

HTTPS on 127.0.0.1:N (0 = a free port) with the local certificate. The access key
comes only from env LOCALDEV_EMAIL_ACCESS_KEY (base64) and is written nowhere.
Writes ``DIR/email.json`` (port, endpoint, certificate path, inbox folder) once
listening. Messages land in ``DIR/inbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from ..tls import server_context
from .server import EmailServer
from .store import Inbox


async def serve(args: argparse.Namespace, key: bytes) -> None:
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    inbox = Inbox(state / "inbox")
    server = EmailServer(key, inbox, retry_after=args.retry_after)
    ssl_ctx, cert_path = server_context(state)
    runner = web.AppRunner(server.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, ssl_context=ssl_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    info = {
        "pid": os.getpid(),
        "port": port,
        "endpoint": f"https://127.0.0.1:{port}/",
        "certPath": cert_path,
        "inbox": str(inbox.root),
        "inboxUrl": f"https://127.0.0.1:{port}/inbox",
    }
    tmp = state / "email.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(state / "email.json")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m localdev.email", description=__doc__)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--retry-after", type=int, default=0, help="Retry-After seconds (0 = none)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        key = base64.b64decode(os.environ["LOCALDEV_EMAIL_ACCESS_KEY"], validate=True)
    except (KeyError, binascii.Error):
        sys.exit("LOCALDEV_EMAIL_ACCESS_KEY must hold the base64 access key")
    asyncio.run(serve(args, key))


if __name__ == "__main__":
    main()
