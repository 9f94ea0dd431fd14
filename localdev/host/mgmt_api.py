"""The Durable Functions HTTP management API, shaped like the Durable extension's.

Boundary: translates HTTP requests under a base path into `Engine`/`Store` calls and
renders the extension's response shapes (HttpApiHandler, DurableOrchestrationStatus,
HttpManagementPayload). It does no authentication: `server` mounts it twice, on the
internal RPC listener (the `rpcBaseUrl` the Python SDK calls, loopback only, no key) and
on the public port under /runtime/webhooks/durabletask/ behind the system/master key.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .protocol import (
    EVENT_NAMES,
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    RUNNING_LIKE,
    STATUS_NAMES,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_FIRED,
    BadArgument,
    Gone,
    HostError,
    NotFound,
    iso,
    json_token,
    parse_dotnet_datetime,
    utcnow,
)
from .store import Instance, Store
from .workers import Engine

# OrchestrationStatusQueryCondition.PageSize's default.
DEFAULT_PAGE_SIZE = 100

_START = re.compile(r"^orchestrators/(?P<name>[^/]+)(?:/(?P<id>[^/]+))?/?$", re.IGNORECASE)
_INSTANCES = re.compile(r"^instances/?(?P<id>[^/]+)?(?:/(?P<op>[^/]+))?/?$", re.IGNORECASE)
_RAISE = re.compile(
    r"^instances/(?P<id>[^/]+)/raiseEvent/(?P<event>[^/]+)/?$", re.IGNORECASE
)

parse_json_text = json_token


def status_time(iso_text: str) -> str:
    return iso_text[:19] + "Z"


def _flag(query: Any, name: str, default: bool) -> bool:
    # The SDK sends Python's `True`; the extension parses booleans case-insensitively.
    for key, value in query.items():
        text = str(value).lower()
        if str(key).lower() == name.lower() and text in ("true", "false"):
            return text == "true"
    return default


def history_events(
    history: list[dict[str, Any]], show_output: bool, show_input: bool
) -> list[dict[str, Any]]:
    """The extension's showHistory rendering (DurableClient.GetDurableOrchestrationStatus)."""
    scheduled: dict[tuple[int, int], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for raw in history:
        etype = raw["EventType"]
        if etype in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        item = {k: v for k, v in raw.items() if k not in ("EventId", "IsPlayed")}
        item["EventType"] = EVENT_NAMES.get(etype, str(etype))
        if etype in (TASK_SCHEDULED, SUB_CREATED):
            scheduled[(etype, raw["EventId"])] = raw
            item.pop("Version", None)
            item["_merged"] = (etype, raw["EventId"])
        elif etype in (TASK_COMPLETED, TASK_FAILED, SUB_COMPLETED, SUB_FAILED):
            kind = TASK_SCHEDULED if etype in (TASK_COMPLETED, TASK_FAILED) else SUB_CREATED
            source = scheduled.pop((kind, int(raw.get("TaskScheduledId", -1))), None)
            if source is not None:
                item["ScheduledTime"] = source["Timestamp"]
                item["FunctionName"] = source.get("Name")
                if show_input:
                    item["Input"] = source.get("Input")
            item.pop("TaskScheduledId", None)
            if etype in (TASK_COMPLETED, SUB_COMPLETED):
                if show_output:
                    item["Result"] = parse_json_text(item.get("Result"))
                else:
                    item.pop("Result", None)
        elif etype == EXECUTION_STARTED:
            item["FunctionName"] = item.pop("Name", None)
            for key in ("OrchestrationInstance", "ParentInstance", "Version", "Tags"):
                item.pop(key, None)
        elif etype == EXECUTION_COMPLETED:
            item["OrchestrationStatus"] = STATUS_NAMES.get(
                item.get("OrchestrationStatus", -1), item.get("OrchestrationStatus")
            )
            if show_output:
                item["Result"] = parse_json_text(item.get("Result"))
            else:
                item.pop("Result", None)
        elif etype == TIMER_FIRED:
            item.pop("TimerId", None)
        if not show_input:
            item.pop("Input", None)
        out.append(item)
    # A TaskScheduled that completed is merged into its completion and not listed.
    merged_open = set(scheduled)
    return [
        {k: v for k, v in e.items() if k != "_merged"}
        for e in out
        if "_merged" not in e or e["_merged"] in merged_open
    ]


def status_payload(
    store: Store,
    inst: Instance,
    *,
    show_input: bool = True,
    show_history: bool = False,
    show_history_output: bool = False,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": inst.name,
        "instanceId": inst.instance_id,
        "runtimeStatus": inst.status,
        "input": parse_json_text(inst.input) if show_input else None,
        "customStatus": parse_json_text(inst.custom_status),
        "output": parse_json_text(inst.output),
        "createdTime": status_time(inst.created_at),
        "lastUpdatedTime": status_time(inst.updated_at),
    }
    if show_history and inst.status != "Pending":
        payload["historyEvents"] = history_events(
            store.history(inst.instance_id), show_history_output, show_input
        )
    return payload


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _error(status: int, message: str, exc: HostError | None = None) -> web.Response:
    """ASP.NET's HttpError body (request.CreateErrorResponse(status, message, exception))."""
    body: dict[str, Any] = {"Message": message}
    if exc is not None:
        body["ExceptionMessage"] = str(exc)
        body["ExceptionType"] = exc.dotnet_type
        body["StackTrace"] = None
    return _json(body, status)


def _enum_values(query: Any, name: str, names: dict[int, str]) -> list[str]:
    """TryGetIEnumerableQueryParameterValue: comma lists, `Enum.TryParse` (case-sensitive
    names, numbers allowed); values it cannot parse are skipped."""
    out: list[str] = []
    by_name = set(names.values())
    for part in _getall(query, name):
        for raw in part.split(","):
            value = raw.strip()
            if value in by_name:
                out.append(value)
            elif value.lstrip("-").isdigit() and int(value) in names:
                out.append(names[int(value)])
    return out


def _getall(query: Any, name: str) -> list[str]:
    # NameValueCollection keys are case-insensitive.
    return [str(v) for k, v in query.items() if str(k).lower() == name.lower()]


def _get(query: Any, name: str) -> str | None:
    values = _getall(query, name)
    return ",".join(values) if values else None


def _token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.b64decode(token, validate=True))["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise BadArgument(f"The continuation token '{token}' is not valid.") from exc
    if offset < 0:
        raise BadArgument(f"The continuation token '{token}' is not valid.")
    return offset


class ManagementApi:
    """Routes one request path (relative to the API base) to the right operation.

    Follows HttpApiHandler.HandleRequestAsync: ArgumentException -> 400 "One or more of
    the arguments submitted is incorrect", any other exception -> 500 "Something went
    wrong while processing your request".
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        links: Callable[[str], dict[str, str]],
        hub_name: str,
    ):
        self.engine = engine
        self.client = engine.client
        self.store = store
        # instance id -> HttpManagementPayload (public URLs, with the system key).
        self.links = links
        self.hub_name = hub_name

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        try:
            return await self._route(request, tail.strip("/"))
        except NotFound:
            return web.Response(status=404)
        except Gone:
            return web.Response(status=410)
        except BadArgument as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", exc)
        except HostError as exc:
            return _error(500, "Something went wrong while processing your request", exc)

    def _other_hub(self, request: web.Request) -> bool:
        """A `taskHub` that is not this app's: the client would read another hub's tables."""
        hub = _get(request.query, "taskHub")
        return hub is not None and hub.lower() != self.hub_name.lower()

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        method = request.method
        query = request.query
        if self._other_hub(request):
            listing = _INSTANCES.match(path)
            if method == "GET" and listing is not None and listing["id"] is None:
                return _json([], 200, {"x-ms-continuation-token": ""})
            return web.Response(status=404)
        m = _START.match(path)
        if m:
            if method != "POST":
                return web.Response(status=404)
            body = await request.text()
            try:
                value = json.loads(body) if body else None
            except ValueError:
                return _error(400, "Invalid JSON content")
            instance_id = await self.client.start_new(m["name"], m["id"], value)
            return await self._check_status_or_wait(request, instance_id)
        m = _RAISE.match(path)
        if m:
            if method != "POST":
                return web.Response(status=404)
            return await self._raise_event(request, m["id"], m["event"])
        m = _INSTANCES.match(path)
        if not m:
            return web.Response(status=404)
        instance_id, op = m["id"], m["op"]
        if instance_id is None:
            if method == "GET":
                return self._list(request)
            if method == "DELETE":
                return self._purge_many(query)
            return web.Response(status=404)
        if op is None:
            if method == "GET":
                return self._status(request, instance_id)
            if method == "DELETE":
                if self.client.purge(instance_id) == 0:
                    return web.Response(status=404)
                return _json({"instancesDeleted": 1})
            return web.Response(status=404)
        if method != "POST":
            return web.Response(status=404)
        reason = _get(query, "reason")
        op = op.lower()
        if op == "terminate":
            self.client.terminate(instance_id, reason)
        elif op == "suspend":
            self.client.suspend(instance_id, reason)
        elif op == "resume":
            self.client.resume(instance_id, reason)
        elif op == "rewind":
            self.client.rewind(instance_id, reason)
        elif op == "restart":
            flag = (_get(query, "restartWithNewInstanceId") or "").lower()
            try:
                new_id = await self.client.restart(
                    instance_id, flag != "false"
                )
            except BadArgument as exc:
                return _error(400, "InstanceId does not match a valid orchestration instance.", exc)
            return await self._check_status_or_wait(request, new_id)
        else:
            # HandleRequestAsync falls through to the end of its route checks.
            return web.Response(status=404)
        return web.Response(status=202)

    async def _raise_event(
        self, request: web.Request, instance_id: str, event_name: str
    ) -> web.Response:
        """HandleRaiseEventRequestAsync: status first, then the media type, then JSON."""
        inst = self.store.get_instance(instance_id)
        if inst is None:
            return web.Response(status=404)
        if inst.status in ("Failed", "Canceled", "Terminated", "Completed"):
            return web.Response(status=410)
        if request.content_type.lower() != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            data = json.loads(await request.text())
        except ValueError:
            return _error(400, "Invalid JSON content")
        self.client.raise_event(instance_id, event_name, data)
        return web.Response(status=202)

    async def _check_status_or_wait(
        self, request: web.Request, instance_id: str
    ) -> web.Response:
        """`?timeout=&pollingInterval=` (seconds): wait for the output, else a 202."""
        try:
            timeout = float(_get(request.query, "timeout") or "")
            interval = float(_get(request.query, "pollingInterval") or "")
        except ValueError:
            return self._check_status(instance_id)
        deadline = time.monotonic() + timeout
        while True:
            inst = self.store.get_instance(instance_id)
            if inst is not None and inst.status not in RUNNING_LIKE:
                if inst.status == "Completed":
                    return web.Response(text=inst.output or "null", status=200,
                                        content_type="application/json")
                return _json(status_payload(self.store, inst), 200)
            if time.monotonic() >= deadline:
                return self._check_status(instance_id)
            await asyncio.sleep(min(max(interval, 0.01), max(deadline - time.monotonic(), 0)))

    def _check_status(self, instance_id: str) -> web.Response:
        """CreateCheckStatusResponseMessage: the payload without rewindPostUri."""
        links = {k: v for k, v in self.links(instance_id).items() if k != "rewindPostUri"}
        return _json(
            links,
            202,
            {
                "Location": links["statusQueryGetUri"],
                "Retry-After": "10",
            },
        )

    def _status(self, request: web.Request, instance_id: str) -> web.Response:
        inst = self.store.get_instance(instance_id)
        if inst is None:
            return web.Response(status=404)
        q = request.query
        payload = status_payload(
            self.store,
            inst,
            show_input=_flag(q, "showInput", True),
            show_history=_flag(q, "showHistory", False),
            show_history_output=_flag(q, "showHistoryOutput", False),
        )
        if inst.status in RUNNING_LIKE:
            # Location: the request's own URL, as the extension does (it carries the key
            # only if the caller put it there).
            return _json(payload, 202, {"Location": str(request.url), "Retry-After": "5"})
        if inst.status == "Failed" and _flag(q, "returnInternalServerErrorOnFailure", False):
            return _json(payload, 500)
        return _json(payload, 200)

    def _list(self, request: web.Request) -> web.Response:
        """HandleGetStatusRequestAsync: filters it cannot parse are ignored, not refused."""
        q = request.query
        top_text = (_get(q, "top") or "").strip()
        top = int(top_text) if top_text.lstrip("-").isdigit() else DEFAULT_PAGE_SIZE
        if top <= 0:
            top = DEFAULT_PAGE_SIZE
        offset = _offset(request.headers.get("x-ms-continuation-token"))
        created_from = parse_dotnet_datetime(_get(q, "createdTimeFrom"))
        created_to = parse_dotnet_datetime(_get(q, "createdTimeTo"))
        instances = self.store.query_instances(
            statuses=_enum_values(q, "runtimeStatus", STATUS_NAMES) or None,
            created_from=None if created_from is None else iso(created_from),
            created_to=None if created_to is None else iso(created_to),
            prefix=_get(q, "instanceIdPrefix"),
            offset=offset,
            limit=top + 1,
        )
        show_input = _flag(q, "showInput", True)
        page = instances[:top]
        results = [status_payload(self.store, i, show_input=show_input) for i in page]
        more = len(instances) > top
        # The header is always there; empty (a null token) on the last page.
        token = _token(offset + top) if more else ""
        return _json(results, 200, {"x-ms-continuation-token": token})

    def _purge_many(self, query: Any) -> web.Response:
        """HandleDeleteHistoryWithFiltersRequestAsync."""
        created_from = parse_dotnet_datetime(_get(query, "createdTimeFrom"))
        if created_from is None:
            return _json("Please provide value for 'createdTimeFrom' parameter.", 400)
        created_to = parse_dotnet_datetime(_get(query, "createdTimeTo")) or utcnow()
        statuses = _enum_values(query, "runtimeStatus", STATUS_NAMES)
        deleted = self.client.purge_by_filter(created_from, created_to, statuses)
        if deleted == 0:
            return web.Response(status=404)
        return _json({"instancesDeleted": deleted})


def management_links(
    base_url: str, hub: str, connection: str, system_key: str, instance_id: str
) -> dict[str, str]:
    """HttpManagementPayload for one instance (GetClientResponseLinks)."""
    prefix = f"{base_url}/instances/{quote(instance_id, safe='')}"
    suffix = f"taskHub={quote(hub)}&connection={quote(connection)}&code={system_key}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{prefix}?{suffix}",
        "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{suffix}",
        "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{suffix}",
        "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{suffix}",
        "purgeHistoryDeleteUri": f"{prefix}?{suffix}",
        "restartPostUri": f"{prefix}/restart?{suffix}",
        "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{suffix}",
        "resumePostUri": f"{prefix}/resume?reason={{text}}&{suffix}",
    }
