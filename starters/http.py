"""HTTP routes (function-key protected):

    POST /api/alerts                        Azure Monitor webhook: one run per target VM
    POST /api/captures                      manual start: {"vmId", "location"?, "capture"?}
    POST /api/captures/{instanceId}/stop    end a running capture early (raises "stop")

They validate, start or find the VM's orchestration, and answer with the Durable
status-query payload. Any AlertcapError becomes its JSON error body and status here, in
`_error_response`; nothing is started when a request is refused.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import azure.durable_functions as df
import azure.functions as func

from alertcap import names, settings
from alertcap.alerts import parse_alert
from alertcap.errors import (
    AlertcapError,
    BodyTooLarge,
    InstanceNotFound,
    InstanceNotRunning,
    MalformedJson,
    Unprocessable,
)
from alertcap.model import AlertInfo, CaptureRequest, RunInput
from alertcap.naming import VmRef, instance_id_for
from alertcap.settings import Settings
from alertcap.validation import options_from_json

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
        return CaptureRequest(vm_id=vm.id, options=fields.pop("options", s.capture),
                              policy=s.policy, **fields)

    async def start_or_attach(self, req: func.HttpRequest, request: CaptureRequest,
                              vm: VmRef) -> dict[str, Any]:
        """One live run per VM: start it, or point at the one already running."""
        instance_id = instance_id_for(vm)
        links = self.client.get_client_response_links(req, instance_id)
        entry = {"vmId": vm.id, **links}
        if _status_name(await self.client.get_status(instance_id)) in _LIVE:
            return {**entry, "state": "running"}
        request = replace(request, status_url=_without_key(links["statusQueryGetUri"]))
        try:
            await self.client.start_new(names.ORCHESTRATOR, instance_id,
                                        RunInput(request).to_dict())
        except Exception:
            # Lost a race with a concurrent delivery of the same alert: the host refused
            # to replace the live instance. Anything else is a real failure.
            if _status_name(await self.client.get_status(instance_id)) in _LIVE:
                return {**entry, "state": "running"}
            raise
        log.info("started %s for %s", instance_id, vm.id)
        return {**entry, "state": "started"}

    def _reply(self, entries: list[dict[str, Any]], extra: dict[str, Any]) -> func.HttpResponse:
        started = any(e["state"] == "started" for e in entries)
        first = entries[0]
        body = {**{k: v for k, v in first.items() if k != "vmId"}, **extra,
                "instances": entries}
        headers = {"Location": first["statusQueryGetUri"], "Retry-After": "10"}
        return _json(body, 202 if started else 200, headers)

    async def alert(self, req: func.HttpRequest) -> func.HttpResponse:
        parsed = parse_alert(read_json(req, self.settings.max_body_bytes))
        info = parsed.info
        if not parsed.active:
            log.info("alert %s is %s: nothing to capture", info.alert_rule, info.condition)
            return _json({"status": "ignored", "reason": f"alert is {info.condition}: "
                          "nothing to capture", "alert": info.to_dict()}, 200)
        entries = [await self.start_or_attach(req, self._request(
            vm, location=parsed.location, alert=info, requested_by="alert"), vm)
            for vm in parsed.targets]
        return self._reply(entries, {"alert": info.to_dict(),
                                     "ignoredTargets": list(parsed.ignored_targets)})

    async def manual(self, req: func.HttpRequest) -> func.HttpResponse:
        body = read_json(req, self.settings.max_body_bytes)
        if not isinstance(body, dict):
            raise Unprocessable("send a JSON object: {\"vmId\": ..., \"capture\": {...}}")
        unknown = set(body) - {"vmId", "location", "capture", "reason"}
        if unknown:
            raise Unprocessable(f"unknown fields {sorted(unknown)[:5]}")
        vm = VmRef.parse(body.get("vmId"))
        location = body.get("location")
        if location is not None and (not isinstance(location, str) or not location.isalnum()
                                     or len(location) > 40):
            raise Unprocessable("location must be an Azure region name such as eastus")
        reason = body.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise Unprocessable("reason must be a string of at most 500 characters")
        options = options_from_json(body.get("capture"), self.settings.capture)
        info = AlertInfo(schema="manual", alert_rule=None, description=reason)
        entry = await self.start_or_attach(req, self._request(
            vm, location=location.lower() if location else None, alert=info,
            requested_by="manual", options=options), vm)
        return self._reply([entry], {})

    async def stop(self, req: func.HttpRequest, instance_id: str) -> func.HttpResponse:
        status = _status_name(await self.client.get_status(instance_id))
        if status is None:
            raise InstanceNotFound(f"no capture run with id {instance_id[:100]!r}")
        if status not in _LIVE:
            raise InstanceNotRunning(f"run {instance_id} is {status}; nothing to stop")
        await self.client.raise_event(instance_id, names.STOP_EVENT, {"by": "operator"})
        log.info("stop requested for %s", instance_id)
        links = self.client.get_client_response_links(req, instance_id)
        return _json({**links, "state": "stopping"}, 202,
                     {"Location": links["statusQueryGetUri"], "Retry-After": "5"})


async def _handle(route: str, call: Any) -> func.HttpResponse:
    try:
        return await call()
    except AlertcapError as exc:  # ConfigError included: a 500 that says what to fix
        return _error_response(exc, route)


@bp.route(route="alerts", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
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


def _starter(client: Any) -> Starter:
    return Starter(client, settings.load())


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The routes above, described for tools and fuzzers (starters/openapi.py)."""
    from starters.openapi import document

    return _json(document(), 200)
