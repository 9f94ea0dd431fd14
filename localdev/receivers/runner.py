"""Start the receivers on https://127.0.0.1 and describe where each channel's URL is.

Boundary: process-level plumbing only (bind, info file, stop); the behaviour is in
``server`` and ``rules``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from ..tls import server_context
from .server import Config, Receivers, teams_path_and_query

INFO_FILE = "receivers.json"


@dataclass
class Running:
    receivers: Receivers
    runner: web.AppRunner
    info: dict[str, Any]

    @property
    def base_url(self) -> str:
        return str(self.info["endpoint"]).rstrip("/")

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start(state_dir: str | Path, *, webhook_secrets: list[str], port: int = 0,
                teams_key: bytes | None = None, pagerduty_keys: frozenset[str] | None = None,
                render_cards: bool = True, receivers: Receivers | None = None) -> Running:
    """Serve on 127.0.0.1:``port`` (0 = a free port) and write ``<state>/receivers.json``.

    The info file holds the Teams URL (its ``sig`` is the workflow's secret) and a Slack
    URL: both are local-only credentials, like the function keys in endpoints.json.
    """
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    if not webhook_secrets or not all(webhook_secrets):
        raise ValueError("the webhook receiver needs at least one non-empty secret")
    key = teams_key or secrets.token_bytes(32)
    rx = receivers or Receivers(Config(state_dir=state, webhook_secrets=list(webhook_secrets),
                                       teams_key=key, pagerduty_keys=pagerduty_keys,
                                       render_cards=render_cards))
    runner = web.AppRunner(rx.app(), access_log=None)
    await runner.setup()
    # HTTPS like every real service (PagerDuty's client refuses anything else), with the
    # local stack's certificate; clients trust certPath.
    ssl_ctx, cert_path = server_context(state)
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_ctx)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"https://127.0.0.1:{bound}"
    slack_token = secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")[:24]
    info = {
        "pid": os.getpid(),
        "port": bound,
        "endpoint": base + "/",
        "certPath": cert_path,
        "teams_url": base + teams_path_and_query(rx.config.teams_key, "alertcap"),
        "slack_url": f"{base}/services/TLOCAL0001/BLOCAL0001/{slack_token}",
        "pagerduty_url": base + "/v2/enqueue",
        "pagerduty_base_url": base,
        "webhook_url": base + "/hooks/alertcap",
        "deliveries_dir": str(rx.root),
    }
    tmp = state / (INFO_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    os.chmod(tmp, 0o600)
    tmp.replace(state / INFO_FILE)
    return Running(rx, runner, info)
