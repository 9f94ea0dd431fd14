"""One local HTTP receiver standing in for Teams Workflows, Slack, PagerDuty and a webhook.

Boundary: an aiohttp application on 127.0.0.1, HTTPS (see ``runner``); never deployed,
never imported by the app.
Routes look like the real ones so the app only changes a base URL:

- Teams Workflows trigger: ``POST /workflows/{id}/triggers/manual/paths/invoke`` and
  ``POST /powerautomate/automations/direct/workflows/{id}/triggers/manual/paths/invoke``
  with the SAS query ``api-version``, ``sp``, ``sv``, ``sig`` (``teams_url()`` makes one).
- Slack incoming webhook: ``POST /services/T…/B…/<24 characters>``.
- PagerDuty Events API v2: ``POST /v2/enqueue``.
- Generic webhook: ``POST`` to any other path, verified with the configured secret(s).
- ``GET|DELETE /_localdev/deliveries`` (``?channel=``), ``GET /_localdev/pagerduty`` (the
  alerts by dedup key), ``GET|POST|DELETE /_localdev/faults``.

Every attempt is listed; an accepted one is also written as JSON under
``<state>/deliveries/`` and, for Teams, rendered to PNG beside it. What each service
refuses is in ``rules``; faults (status, Retry-After, delay; per channel, with a count,
optionally only for bodies holding a given text) answer in that service's own error shape.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from alertcap.channels import webhook as webhook_channel

from . import rules
from .cardrender import CardRenderer

CHANNELS = ("teams", "slack", "pagerduty", "webhook")
TEAMS_API_VERSION = "2016-06-01"
TEAMS_SP = "/triggers/manual/run"
TEAMS_SV = "1.0"


def teams_signature(key: bytes, workflow_id: str, sp: str = TEAMS_SP, sv: str = TEAMS_SV) -> str:
    mac = hmac.new(key, f"{workflow_id}|{sp}|{sv}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def teams_path_and_query(key: bytes, workflow_id: str) -> str:
    query = urlencode({"api-version": TEAMS_API_VERSION, "sp": TEAMS_SP, "sv": TEAMS_SV,
                       "sig": teams_signature(key, workflow_id)})
    return f"/workflows/{workflow_id}/triggers/manual/paths/invoke?{query}"


# --------------------------------------------------------------------------- faults


def validate_fault(spec: object) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ValueError("a fault rule is a JSON object")
    channel = spec.get("channel", "*")
    if channel != "*" and channel not in CHANNELS:
        raise ValueError(f"channel must be one of {[*CHANNELS, '*']}")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise ValueError("status must be an integer 400-599")
    delay = spec.get("delay", 0)
    if not isinstance(delay, int | float) or not 0 <= delay <= 30:
        raise ValueError("delay must be a number of seconds within [0, 30]")
    retry_after = spec.get("retryAfter")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise ValueError("retryAfter must be a non-negative integer")
    count = spec.get("count")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ValueError("count must be a positive integer")
    if status is None and not delay:
        raise ValueError("a fault needs a status, a delay, or both")
    # Test door only (no real service has it): fail just the requests whose body holds
    # this text (a run's instance id), so one test's outage leaves other runs alone.
    contains = spec.get("bodyContains")
    if contains is not None and (not isinstance(contains, str) or not 0 < len(contains) <= 200):
        raise ValueError("bodyContains must be a string of 1-200 characters")
    return {"channel": channel, "status": status, "delay": delay, "retryAfter": retry_after,
            "count": count, "bodyContains": contains}


@dataclass
class Fault:
    spec: dict[str, Any]
    remaining: int | None
    hits: int = 0


@dataclass
class Faults:
    rules: list[Fault] = field(default_factory=list)

    def add(self, spec: object) -> Fault:
        clean = validate_fault(spec)
        fault = Fault(clean, clean["count"])
        self.rules.append(fault)
        return fault

    def take(self, channel: str, body: bytes = b"") -> dict[str, Any] | None:
        for f in self.rules:
            if f.spec["channel"] not in ("*", channel):
                continue
            needle = f.spec.get("bodyContains")
            if needle and needle.encode() not in body:
                continue
            if f.remaining is not None:
                if f.remaining <= 0:
                    continue
                f.remaining -= 1
            f.hits += 1
            return f.spec
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [{**f.spec, "hits": f.hits, "remaining": f.remaining} for f in self.rules]


_FAULT_CODES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                503: "ServiceUnavailable", 504: "GatewayTimeout"}


def fault_answer(channel: str, status: int) -> rules.Answer:
    if channel == "slack":
        # Slack answers in plain text; a 5xx is its catch-all "rollup_error".
        return rules.Answer.text(status, "rate_limited" if status == 429 else
                                 "rollup_error" if status >= 500 else "invalid_payload")
    if channel == "pagerduty":
        # PagerDuty's 429 and 5xx carry no event-shaped body; clients go by the status.
        return rules.Answer(status, b"", "text/plain")
    if channel == "teams":
        code = _FAULT_CODES.get(status, "InjectedFault")
        return rules.teams_error(status, code, f"Injected fault ({status}).")
    return rules.Answer.json(status, {"error": f"injected fault ({status})"})


# --------------------------------------------------------------------------- server


@dataclass
class Config:
    state_dir: Path
    webhook_secrets: list[str]
    teams_key: bytes
    pagerduty_keys: frozenset[str] | None = None  # None: any 32-character key
    render_cards: bool = True
    webhook_tolerance: int = webhook_channel.TOLERANCE_SECONDS


class Receivers:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time,
                 renderer: CardRenderer | None = None) -> None:
        self.config = config
        self.clock = clock
        self.renderer = renderer or CardRenderer()
        self.faults = Faults()
        self.deliveries: list[dict[str, Any]] = []
        self.pd_alerts: dict[str, dict[str, Any]] = {}
        self.seen_signatures: dict[str, float] = {}
        self.seen_events: set[str] = set()
        self._seq = 0  # never reset: clearing the listing must not reuse file names
        self.root = config.state_dir / "deliveries"
        self.root.mkdir(parents=True, exist_ok=True)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        r = app.router
        r.add_get("/_localdev/deliveries", self.list_deliveries)
        r.add_delete("/_localdev/deliveries", self.clear_deliveries)
        r.add_get("/_localdev/pagerduty", self.list_pd_alerts)
        r.add_route("*", "/_localdev/faults", self.faults_route)
        r.add_post("/workflows/{workflow}/triggers/manual/paths/invoke", self.teams)
        r.add_post("/powerautomate/automations/direct/workflows/{workflow}/triggers/manual"
                   "/paths/invoke", self.teams)
        r.add_post("/services/{tail:.*}", self.slack)
        r.add_post("/v2/enqueue", self.pagerduty)
        r.add_post("/{tail:.*}", self.webhook)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, _app: web.Application) -> None:
        await self.renderer.close()

    # -- bookkeeping

    def _record(self, channel: str, request: web.Request, answer: rules.Answer,
                body: Any = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        self._seq += 1
        seq = self._seq
        rec: dict[str, Any] = {
            "seq": seq, "channel": channel, "status": answer.status,
            "accepted": answer.status < 300, "received_at": self.clock(),
            # The query holds the Teams SAS signature: the listing never repeats it.
            "path": request.path, **(extra or {}),
        }
        if rec["accepted"]:
            path = self.root / f"{seq:05d}-{channel}.json"
            rec["file"] = str(path)
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() in ("content-type", "user-agent",
                                        webhook_channel.EVENT_ID_HEADER.lower())}
            path.write_text(json.dumps({**rec, "headers": headers, "body": body}, indent=2))
        self.deliveries.append(rec)
        return rec

    @staticmethod
    def _respond(answer: rules.Answer, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=answer.status, body=answer.body,
                            content_type=answer.content_type, headers=headers)

    async def _fault(self, channel: str, request: web.Request) -> web.Response | None:
        # aiohttp keeps the body read here for the handler's own read().
        spec = self.faults.take(channel, await request.read())
        if spec is None:
            return None
        if spec["delay"]:
            await asyncio.sleep(float(spec["delay"]))
        if spec["status"] is None:
            return None
        headers = {"Retry-After": str(spec["retryAfter"])} if spec["retryAfter"] is not None \
            else None
        answer = fault_answer(channel, spec["status"])
        self._seq += 1
        self.deliveries.append({"seq": self._seq, "channel": channel,
                                "status": answer.status, "accepted": False, "fault": True,
                                "received_at": self.clock()})
        return self._respond(answer, headers)

    # -- channels

    async def teams(self, request: web.Request) -> web.Response:
        if (fault := await self._fault("teams", request)) is not None:
            return fault
        q = request.query
        workflow = request.match_info["workflow"]
        if not q.get("api-version"):
            answer = rules.teams_error(400, "MissingApiVersionParameter",
                                       "The api-version query parameter is required.")
        elif not (q.get("sp") and q.get("sv") and q.get("sig")):
            answer = rules.teams_error(401, "DirectApiAuthorizationRequired",
                                       "The request must be authenticated by the Shared "
                                       "Access scheme (sp, sv and sig).")
        elif not hmac.compare_digest(
                q["sig"], teams_signature(self.config.teams_key, workflow, q["sp"], q["sv"])):
            answer = rules.teams_error(401, "DirectApiInvalidAuthorizationSignature",
                                       "The provided authorization signature is not valid.")
        else:
            answer = None
        raw = await request.read()
        if answer is not None:
            self._record("teams", request, answer)
            return self._respond(answer)
        answer, cards = rules.check_teams_envelope(raw)
        if answer is not None:
            self._record("teams", request, answer)
            return self._respond(answer)
        # Named apart from the sequence: other deliveries may be recorded while this renders.
        stem = f"teams-{uuid.uuid4().hex[:12]}"
        problems: list[str] = []
        pngs: list[str] = []
        texts: list[str] = []
        links = 0
        if self.config.render_cards:
            for i, card in enumerate(cards):
                png = self.root / f"{stem}-{i}.png"
                try:
                    rendered = await self.renderer.render(card, png)
                except Exception as exc:  # Chromium itself failed, not the card
                    await self.renderer.close()  # the next delivery starts a fresh browser
                    answer = rules.teams_error(500, "LocalRendererFailed",
                                               f"The local card renderer failed: {exc}")
                    self._record("teams", request, answer)
                    return self._respond(answer)
                problems += rendered.problems
                texts.append(rendered.text)
                links += rendered.links
                pngs.append(str(png))
        if problems:
            for p in pngs:
                Path(p).unlink(missing_ok=True)
            answer = rules.teams_error(400, "InvalidAdaptiveCard",
                                       "The Adaptive Card did not render cleanly: "
                                       + "; ".join(problems))
            self._record("teams", request, answer, extra={"problems": problems})
            return self._respond(answer)
        accepted = rules.Answer(202, b"", "text/plain")
        self._record("teams", request, accepted, json.loads(raw),
                     {"workflow": workflow, "png": pngs, "rendered_text": texts,
                      "rendered_links": links})
        return self._respond(accepted)

    async def slack(self, request: web.Request) -> web.Response:
        if (fault := await self._fault("slack", request)) is not None:
            return fault
        raw = await request.read()
        answer, doc = rules.check_slack(request.match_info["tail"], raw,
                                        request.headers.get("Content-Type", ""))
        if answer is not None:
            self._record("slack", request, answer, extra={"error": answer.body.decode()})
            return self._respond(answer)
        ok = rules.Answer.text(200, "ok")
        self._record("slack", request, ok, doc)
        return self._respond(ok)

    async def pagerduty(self, request: web.Request) -> web.Response:
        if (fault := await self._fault("pagerduty", request)) is not None:
            return fault
        raw = await request.read()
        answer, event = rules.check_pagerduty(raw, self.config.pagerduty_keys)
        if answer is not None:
            self._record("pagerduty", request, answer,
                         extra={"errors": json.loads(answer.body)["errors"]})
            return self._respond(answer)
        key = event.get("dedup_key") or uuid.uuid4().hex
        action = event["event_action"]
        alert = self.pd_alerts.get(key)
        # PagerDuty: acknowledge/resolve for no open alert are dropped; a trigger after
        # a resolve opens a new alert (02-Trigger-Events.md, "Alert De-Duplication").
        if action == "trigger":
            if alert is None or alert["status"] == "resolved":
                alert = self.pd_alerts[key] = {"status": "triggered", "triggers": 0,
                                               "summary": event["payload"]["summary"]}
            alert["triggers"] += 1
        elif alert is not None and alert["status"] != "resolved":
            alert["status"] = "acknowledged" if action == "acknowledge" else "resolved"
        ok = rules.Answer.json(202, {"status": "success", "message": "Event processed",
                                     "dedup_key": key})
        # The routing key is the integration's secret: never written to disk here.
        stored = {k: v for k, v in event.items() if k != "routing_key"}
        self._record("pagerduty", request, ok, stored,
                     {"dedup_key": key, "event_action": action})
        return self._respond(ok)

    async def webhook(self, request: web.Request) -> web.Response:
        if (fault := await self._fault("webhook", request)) is not None:
            return fault
        raw = await request.read()
        header = request.headers.get(webhook_channel.SIGNATURE_HEADER)
        now = self.clock()
        try:
            webhook_channel.verify(raw, header, self.config.webhook_secrets, now=now,
                                   tolerance=self.config.webhook_tolerance)
        except webhook_channel.SignatureError as exc:
            answer = rules.Answer.json(401, {"error": exc.reason})
            self._record("webhook", request, answer, extra={"error": exc.reason})
            return self._respond(answer)
        # Forget signatures older than the tolerance: those fail the timestamp check anyway.
        horizon = now - 2 * self.config.webhook_tolerance
        self.seen_signatures = {s: t for s, t in self.seen_signatures.items() if t > horizon}
        if header in self.seen_signatures:
            answer = rules.Answer.json(409, {"error": "replayed delivery: this signature "
                                                      "was already accepted"})
            self._record("webhook", request, answer, extra={"error": "replay"})
            return self._respond(answer)
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            answer = rules.Answer.json(400, {"error": "body is not JSON"})
            self._record("webhook", request, answer)
            return self._respond(answer)
        self.seen_signatures[str(header)] = now
        event_id = request.headers.get(webhook_channel.EVENT_ID_HEADER, "")
        duplicate = event_id in self.seen_events
        self.seen_events.add(event_id)
        ok = rules.Answer.json(200, {"ok": True, "duplicate": duplicate})
        self._record("webhook", request, ok, doc,
                     {"event_id": event_id, "duplicate": duplicate})
        return self._respond(ok)

    # -- the /_localdev door

    async def list_deliveries(self, request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        items = [d for d in self.deliveries if channel in (None, d["channel"])]
        return web.json_response({"deliveries": items})

    async def clear_deliveries(self, _request: web.Request) -> web.Response:
        self.deliveries.clear()
        return web.Response(status=204)

    async def list_pd_alerts(self, _request: web.Request) -> web.Response:
        return web.json_response({"alerts": self.pd_alerts})

    async def faults_route(self, request: web.Request) -> web.Response:
        if request.method == "GET":
            return web.json_response({"rules": self.faults.describe()})
        if request.method == "DELETE":
            self.faults.rules.clear()
            return web.Response(status=204)
        if request.method == "POST":
            try:
                fault = self.faults.add(json.loads(await request.read()))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                return web.json_response({"error": {"code": "BadFault", "message": str(exc)}},
                                         status=400)
            return web.json_response({"rule": fault.spec}, status=201)
        return web.json_response({"error": {"code": "MethodNotAllowed",
                                            "message": "GET, POST or DELETE"}}, status=405)
