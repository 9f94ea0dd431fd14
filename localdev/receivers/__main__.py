"""``python -m localdev.receivers --state-dir DIR --port N``

HTTPS on 127.0.0.1:N (0 = a free port) with the local stack's certificate
(``certPath`` in the info file). Secrets come only from the environment and are
written nowhere but the URLs in ``DIR/receivers.json``:

- ``LOCALDEV_WEBHOOK_SECRET`` (required): the generic webhook's shared secret; several,
  comma-separated, while rotating.
- ``LOCALDEV_TEAMS_KEY`` (optional, base64): signs the Teams workflow URL's ``sig``;
  random per start when absent.
- ``LOCALDEV_PAGERDUTY_ROUTING_KEYS`` (optional, comma-separated): the only integration
  keys accepted; absent, any 32-character key is.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import logging
import os
import signal
import sys

from .runner import start


async def serve(args: argparse.Namespace, secrets: list[str], teams_key: bytes | None,
                pd_keys: frozenset[str] | None) -> None:
    running = await start(args.state_dir, webhook_secrets=secrets, port=args.port,
                          teams_key=teams_key, pagerduty_keys=pd_keys,
                          render_cards=not args.no_render)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await running.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m localdev.receivers", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--no-render", action="store_true",
                   help="skip the Chromium render of Teams cards (the envelope is still checked)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    secrets = [s for s in os.environ.get("LOCALDEV_WEBHOOK_SECRET", "").split(",") if s]
    if not secrets:
        sys.exit("LOCALDEV_WEBHOOK_SECRET must hold the webhook secret (comma-separated "
                 "while rotating)")
    teams_key = None
    if os.environ.get("LOCALDEV_TEAMS_KEY"):
        try:
            teams_key = base64.b64decode(os.environ["LOCALDEV_TEAMS_KEY"], validate=True)
        except binascii.Error:
            sys.exit("LOCALDEV_TEAMS_KEY must be base64")
    pd = os.environ.get("LOCALDEV_PAGERDUTY_ROUTING_KEYS")
    pd_keys = frozenset(k for k in pd.split(",") if k) if pd else None
    asyncio.run(serve(args, secrets, teams_key, pd_keys))


if __name__ == "__main__":
    main()
