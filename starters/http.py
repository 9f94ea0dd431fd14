"""HTTP routes (function-key protected):

    POST /api/alerts                        Azure Monitor webhook: one run per target VM
    POST /api/captures                      manual start: {"vmId", "location"?, "capture"?}
    POST /api/captures/{instanceId}/stop    end a running capture early (raises "stop")
    POST /api/runs/{instanceId}/notify      send a finished run's notification again

They validate, start or find the VM's orchestration, and answer. Least privilege: the
webhook's key sits in the action group's URL, so the webhook answers with instance ids and
status URLs *without* the Durable system key (an operator adds their own `code=`); the
operator's manual start answers with the standard Durable payload, keys included. Any
AlertcapError becomes its JSON error body and status here, in `_error_response`; nothing is
started when a request is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import azure.durable_functions as df
import azure.functions as func

from alertcap import settings
from alertcap.domain import validation
from alertcap.domain.alerts import parse_alert
from alertcap.domain.run import CURRENT_VERSION, AlertInfo, CaptureRequest, RunInput, RunResult
from alertcap.domain.standby import keeper_instance_id
from alertcap.domain.targets import instance_id_for_target
from alertcap.domain.vm import VmRef, is_instance_id
from alertcap.errors import (
    AlertcapError,
    BodyTooLarge,
    InstanceNotFound,
    InstanceNotRunning,
    MalformedJson,
    Unauthenticated,
)
from alertcap.settings import Settings
from orchestrators.capture import ORCHESTRATOR, STOP_EVENT
from orchestrators.deliver import (
    NOTIFY_AGAIN_ORCHESTRATOR,
    RESOLVE_ORCHESTRATOR,
    NotifyAgainInput,
    ResolveRunInput,
)
from orchestrators.fanout import FANOUT_ORCHESTRATOR, FanoutInput, FanoutTarget
from orchestrators.steps import decoded

log = logging.getLogger("alertcap.http")

bp = df.Blueprint()

_LIVE = {"Running", "Pending", "ContinuedAsNew", "Suspended"}


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status,
                             mimetype="application/json", headers=headers)


def _error_response(error: AlertcapError, route: str) -> func.HttpResponse:
    log.warning("%s refused: %s %s: %s", route, error.status, error.code, error.message)
    return _json(error.to_body(), error.status)


def _without_key(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "code"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _status_name(status: Any) -> str | None:
    runtime = getattr(status, "runtime_status", None)
    return getattr(runtime, "value", runtime) if runtime is not None else None


def read_json(req: func.HttpRequest, limit: int) -> Any:
    body = req.get_body() or b""
    if len(body) > limit:
        raise BodyTooLarge(f"body is {len(body)} bytes; the limit is {limit}")
    if not body.strip():
        raise MalformedJson("the body is empty; send the alert as JSON")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"the body is not valid JSON: {str(exc)[:120]}") from None


@dataclass
class Starter:
    """The route logic, over a DurableOrchestrationClient (tests pass a fake)."""

    client: Any
    settings: Settings

    def _request(self, vm: VmRef, **fields: Any) -> CaptureRequest:
        s = self.settings
        return CaptureRequest(vm=vm, options=fields.pop("options", s.capture),
                              policy=s.policy, **fields)

    async def start_or_attach(self, req: func.HttpRequest, request: CaptureRequest,
                              vm: VmRef) -> dict[str, Any]:
        """One live run per VM: start it, or point at the one already running.

        "started" only when the instance's recorded input carries this request's own token:
        Azure Storage's create is not atomic, so two racing deliveries of one alert can both
        be told their start succeeded while only one of them runs.
        """
        instance_id = instance_id_for_target(vm, request.scope)
        links = self.client.get_client_response_links(req, instance_id)
        entry = {"vmId": vm.id, **links}
        if request.scope is not None:
            entry["scope"] = request.scope.to_dict()
        if _status_name(await self.client.get_status(instance_id)) in _LIVE:
            return {**entry, "state": "running"}
        token = uuid.uuid4().hex
        # A standby VM (its keeper is live) has a ring to harvest from before the alert.
        standby = not vm.is_scale_set and _status_name(
            await self.client.get_status(keeper_instance_id(vm))) in _LIVE
        request = replace(request, status_url=_without_key(links["statusQueryGetUri"]),
                          start_token=token, standby=standby)
        try:
            await self.client.start_new(ORCHESTRATOR, instance_id,
                                        RunInput(request, version=CURRENT_VERSION).to_dict())
        except Exception:
            # Lost a race with a concurrent delivery of the same alert: the host refused
            # to replace the live instance. Anything else is a real failure.
            if _status_name(await self.client.get_status(instance_id)) in _LIVE:
                return {**entry, "state": "running"}
            raise
        if not await self._started_by(instance_id, token):
            log.info("a concurrent start of %s won; attaching to it", instance_id)
            return {**entry, "state": "running"}
        log.info("started %s for %s", instance_id, vm.id)
        return {**entry, "state": "started"}

    async def _started_by(self, instance_id: str, token: str) -> bool:
        status = await self.client.get_status(instance_id, show_input=True)
        try:
            recorded = decoded(getattr(status, "input_", None))
            return bool(recorded["request"]["start_token"] == token)
        except (ValueError, TypeError, KeyError):
            return False

    def _reply(self, entries: list[dict[str, Any]], extra: dict[str, Any]) -> func.HttpResponse:
        """The operator's answer: the standard Durable payload of the first run, keys included."""
        started = any(e["state"] == "started" for e in entries)
        first = entries[0]
        body = {**{k: v for k, v in first.items() if k != "vmId"}, **extra,
                "instances": entries}
        headers = {"Location": first["statusQueryGetUri"], "Retry-After": "10"}
        return _json(body, 202 if started else 200, headers)

    def _keyless_reply(self, entries: list[dict[str, Any]],
                       extra: dict[str, Any]) -> func.HttpResponse:
        """The webhook's answer: ids and status URLs without the system key."""
        started = any(e["state"] == "started" for e in entries)
        instances = [{"vmId": e["vmId"], "instanceId": e["id"], "state": e["state"],
                      "statusQueryGetUri": _without_key(e["statusQueryGetUri"])}
                     for e in entries]
        # The first run's id and status URL at the top, as the Durable payload has them,
        # so a script written for a one-VM alert reads the same fields.
        body = {"id": instances[0]["instanceId"],
                "statusQueryGetUri": instances[0]["statusQueryGetUri"],
                "accepted": len(instances), **extra, "instances": instances}
        headers = {"Location": instances[0]["statusQueryGetUri"], "Retry-After": "10"}
        return _json(body, 202 if started else 200, headers)

    async def alert(self, req: func.HttpRequest) -> func.HttpResponse:
        if self.settings.webhook_auth == "entra":
            _require_entra_principal(req)
        parsed = parse_alert(read_json(req, self.settings.max_body_bytes))
        info = parsed.info
        if not parsed.active and info.alert_id and self.settings.pagerduty_routing_key:
            # The PagerDuty alert its firing opened closes with it (orchestrators/deliver.py).
            instance = await self.client.start_new(RESOLVE_ORCHESTRATOR, None, ResolveRunInput(
                info.alert_id, self.settings.policy).to_dict())
            log.info("alert %s is %s: resolving its PagerDuty alert (%s)", info.alert_rule,
                     info.condition, instance)
            return _json({"status": "resolving", "reason": f"alert is {info.condition}: "
                          "nothing to capture; its PagerDuty alert is being resolved",
                          "alert": info.to_dict(), "id": instance}, 202)
        if not parsed.active:
            log.info("alert %s is %s: nothing to capture", info.alert_rule, info.condition)
            return _json({"status": "ignored", "reason": f"alert is {info.condition}: "
                          "nothing to capture", "alert": info.to_dict()}, 200)
        cap = self.settings.max_targets_per_alert
        runs, refused = parsed.runs[:cap], len(parsed.runs) - min(len(parsed.runs), cap)
        extra: dict[str, Any] = {"alert": info.to_dict(),
                                 "ignoredTargets": list(parsed.ignored_targets[:20])}
        if refused:
            extra["refusedTargets"] = refused
            extra["refusedReason"] = (f"the alert names {len(parsed.runs)} targets; "
                                      f"ALERTCAP_MAX_TARGETS_PER_ALERT is {cap}: the first "
                                      f"{cap} are captured, the rest are not")
        if len(runs) > 1:
            return await self._fan_out(req, runs, parsed.location, info, extra)
        (target,) = runs
        entries = [await self.start_or_attach(req, self._request(
            target.vm, location=parsed.location, alert=info, requested_by="alert",
            scope=target.scope), target.vm)]
        return self._keyless_reply(entries, extra)

    async def _fan_out(self, req: func.HttpRequest, runs: Any, location: str | None,
                       info: AlertInfo, extra: dict[str, Any]) -> func.HttpResponse:
        """Many targets: one fan-out orchestration for the alert, answered at once and
        small (a count, not a URL per target). Its id derives from the alert and its
        targets, so the action group's retries attach to it."""
        s = self.settings
        ident = "|".join([info.alert_id or "", info.alert_rule or "", info.fired_at or "",
                          *sorted(t.key for t in runs)])
        instance_id = f"alertcap-fanout-{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
        links = self.client.get_client_response_links(req, instance_id)
        status_url = _without_key(links["statusQueryGetUri"])
        state = "running"
        if _status_name(await self.client.get_status(instance_id)) not in _LIVE:
            fan = FanoutInput(targets=tuple(FanoutTarget(t.vm, t.scope) for t in runs),
                              alert=info, options=s.capture, policy=s.policy,
                              location=location, concurrency=s.fanout_concurrency,
                              status_url=status_url)
            try:
                await self.client.start_new(FANOUT_ORCHESTRATOR, instance_id, fan.to_dict())
                state = "started"
            except Exception:
                if _status_name(await self.client.get_status(instance_id)) not in _LIVE:
                    raise
        log.info("alert %s: %d targets handed to %s (%s)", info.alert_rule, len(runs),
                 instance_id, state)
        body = {"id": instance_id, "statusQueryGetUri": status_url, "state": state,
                "accepted": len(runs), "concurrency": s.fanout_concurrency, **extra}
        return _json(body, 202 if state == "started" else 200,
                     {"Location": status_url, "Retry-After": "10"})

    async def manual(self, req: func.HttpRequest) -> func.HttpResponse:
        body = validation.manual_start(read_json(req, self.settings.max_body_bytes),
                                       self.settings.capture)
        info = AlertInfo(schema="manual", alert_rule=None, description=body.reason)
        entry = await self.start_or_attach(req, self._request(
            body.vm, location=body.location, alert=info, requested_by="manual",
            options=body.options), body.vm)
        return self._reply([entry], {})

    async def stop(self, req: func.HttpRequest, instance_id: str) -> func.HttpResponse:
        # Only our own ids reach the management API: anything else names no run of ours,
        # and a raw "?" or "/" must never become part of the SDK's request URL.
        if not is_instance_id(instance_id):
            raise InstanceNotFound(f"no capture run with id {instance_id[:100]!r}")
        status = _status_name(await self.client.get_status(instance_id))
        if status is None:
            raise InstanceNotFound(f"no capture run with id {instance_id[:100]!r}")
        if status not in _LIVE:
            raise InstanceNotRunning(f"run {instance_id} is {status}; nothing to stop")
        await self.client.raise_event(instance_id, STOP_EVENT, {"by": "operator"})
        log.info("stop requested for %s", instance_id)
        links = self.client.get_client_response_links(req, instance_id)
        return _json({**links, "state": "stopping"}, 202,
                     {"Location": links["statusQueryGetUri"], "Retry-After": "5"})


    async def notify_again(self, req: func.HttpRequest, instance_id: str) -> func.HttpResponse:
        """Start a small orchestration that sends a finished run's notification again."""
        if not is_instance_id(instance_id):
            raise InstanceNotFound(f"no capture run with id {instance_id[:100]!r}")
        status = await self.client.get_status(instance_id)
        name = _status_name(status)
        if name is None:
            raise InstanceNotFound(f"no capture run with id {instance_id}")
        output = decoded(getattr(status, "output", None))
        if name != "Completed" or not isinstance(output, dict) or "vm_id" not in output:
            raise InstanceNotRunning(f"run {instance_id} is {name}: only a completed run's "
                                     "notification can be sent again")
        result = RunResult.from_dict(output)
        # A fresh key per request: the operator asked for a new email, once.
        key = f"{instance_id}/{result.started_at}/again/{uuid.uuid4().hex}"
        again_id = f"{instance_id}-notify-{uuid.uuid4().hex[:12]}"
        await self.client.start_new(NOTIFY_AGAIN_ORCHESTRATOR, again_id, NotifyAgainInput(
            result, key, self.settings.policy).to_dict())
        log.info("notification of %s is being sent again as %s", instance_id, again_id)
        links = self.client.get_client_response_links(req, again_id)
        return _json({**links, "of": instance_id}, 202,
                     {"Location": links["statusQueryGetUri"], "Retry-After": "5"})


async def _handle(route: str, call: Any) -> func.HttpResponse:
    try:
        return await call()
    except AlertcapError as exc:  # ConfigError included: a 500 that says what to fix
        return _error_response(exc, route)


def _require_entra_principal(req: func.HttpRequest) -> None:
    """Azure Monitor's secure webhook: App Service Authentication validated the action
    group's Entra token (audience, issuer, the allowed client) before the request got here,
    and put the validated principal in these headers; it strips them from what clients send,
    so they cannot be forged while it is on (WEBSITE_AUTH_ENABLED, set by the platform)."""
    enabled = os.environ.get("WEBSITE_AUTH_ENABLED", "").lower() == "true"
    idp = (req.headers.get("X-MS-CLIENT-PRINCIPAL-IDP") or "").lower()
    principal = req.headers.get("X-MS-CLIENT-PRINCIPAL-ID") or ""
    if not (enabled and idp == "aad" and principal):
        raise Unauthenticated("this webhook takes Azure Monitor's secure webhook token "
                              "(ALERTCAP_WEBHOOK_AUTH=entra)")


# With the secure webhook the host asks for no key on this route (the action group sends a
# token, not a key); the route itself requires App Service Authentication's principal.
_ALERTS_AUTH = (func.AuthLevel.ANONYMOUS if settings.webhook_auth_from_env() == "entra"
                else func.AuthLevel.FUNCTION)


@bp.route(route="alerts", methods=["POST"], auth_level=_ALERTS_AUTH)
@bp.durable_client_input(client_name="client")
async def alert_webhook(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    return await _handle("alerts", lambda: _starter(client).alert(req))


@bp.route(route="captures", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def manual_start(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    return await _handle("captures", lambda: _starter(client).manual(req))


@bp.route(route="captures/{instance_id}/stop", methods=["POST"],
          auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def manual_stop(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    return await _handle("stop", lambda: _starter(client).stop(req, instance_id))


@bp.route(route="runs/{instance_id}/notify", methods=["POST"],
          auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def resend_notification(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")
    return await _handle("notify", lambda: _starter(client).notify_again(req, instance_id))


def _starter(client: Any) -> Starter:
    return Starter(client, settings.load())


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The routes above, described for tools and fuzzers (starters/openapi.py)."""
    from starters.openapi import document

    return _json(document(), 200)
