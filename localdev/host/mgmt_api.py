"""The Durable Functions HTTP management API, shaped like the Durable extension's.

Boundary: translates HTTP requests under a base path into `Engine`/`Store` calls and
renders the extension's response shapes (HttpApiHandler, DurableOrchestrationStatus,
HttpManagementPayload). It does no authentication: `server` mounts it twice, on the
internal RPC listener (the `rpcBaseUrl` the Python SDK calls, loopback only, no key) and
on the public port under /runtime/webhooks/durabletask/ behind the system/master key.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .engine import (
    EXECUTION_COMPLETED,
    EXECUTION_STARTED,
    ORCHESTRATION_STATUS,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_FIRED,
    AlreadyExists,
    Engine,
    Gone,
    InvalidInstanceId,
    NotFound,
    UnknownOrchestrator,
    parse_iso,
)
from .store import Instance, Store

EVENT_NAMES = {
    0: "ExecutionStarted",
    1: "ExecutionCompleted",
    2: "ExecutionFailed",
    3: "ExecutionTerminated",
    4: "TaskScheduled",
    5: "TaskCompleted",
    6: "TaskFailed",
    7: "SubOrchestrationInstanceCreated",
    8: "SubOrchestrationInstanceCompleted",
    9: "SubOrchestrationInstanceFailed",
    10: "TimerCreated",
    11: "TimerFired",
    12: "OrchestratorStarted",
    13: "OrchestratorCompleted",
    14: "EventSent",
    15: "EventRaised",
    16: "ContinueAsNew",
    17: "GenericEvent",
    18: "HistoryState",
    19: "ExecutionSuspended",
    20: "ExecutionResumed",
}
STATUS_NAMES = {v: k for k, v in ORCHESTRATION_STATUS.items()}
RUNNING_LIKE = ("Running", "Pending", "ContinuedAsNew", "Suspended")

_START = re.compile(r"^orchestrators/(?P<name>[^/]+)(?:/(?P<id>[^/]+))?/?$")
_INSTANCES = re.compile(r"^instances/?(?P<id>[^/]+)?(?:/(?P<op>[^/]+))?/?$")
_RAISE = re.compile(r"^instances/(?P<id>[^/]+)/raiseEvent/(?P<event>[^/]+)/?$")


def parse_json_text(value: str | None) -> Any:
    """JSON text to a value; raw text when it is not JSON (ParseToJToken)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return ""
    try:
        return json.loads(value)
    except ValueError:
        return value


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


def _error(status: int, message: str, exc: Exception | None = None) -> web.Response:
    body: dict[str, Any] = {"Message": message}
    if exc is not None:
        body["ExceptionMessage"] = str(exc)
        body["ExceptionType"] = type(exc).__name__
    return _json(body, status)


class ManagementApi:
    """Routes one request path (relative to the API base) to the right operation."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        links: Callable[[str], dict[str, str]],
    ):
        self.engine = engine
        self.store = store
        # instance id -> HttpManagementPayload (public URLs, with the system key).
        self.links = links

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        try:
            return await self._route(request, tail.lstrip("/"))
        except NotFound:
            return web.Response(status=404)
        except Gone:
            return web.Response(status=410)
        except (UnknownOrchestrator, InvalidInstanceId) as exc:
            return _error(400, "One or more of the arguments submitted is incorrect", exc)
        except AlreadyExists as exc:
            # The extension surfaces DTFx's OrchestrationAlreadyExistsException as a 500.
            return _error(500, "Something went wrong while processing your request", exc)

    async def _route(self, request: web.Request, path: str) -> web.StreamResponse:
        method = request.method
        query = request.query
        m = _START.match(path)
        if m:
            if method != "POST":
                return web.Response(status=404)
            input_text = await _json_body(request)
            if input_text is _INVALID:
                return _error(400, "Invalid JSON content")
            instance_id = self.engine.start_new(m["name"], m["id"], input_text)  # type: ignore[arg-type]
            return await self._check_status_or_wait(request, instance_id)
        m = _RAISE.match(path)
        if m:
            if method != "POST":
                return web.Response(status=404)
            input_text = await _json_body(request)
            if input_text is _INVALID:
                return _error(400, "Invalid JSON content")
            self.engine.raise_event(m["id"], m["event"], input_text)  # type: ignore[arg-type]
            return web.Response(status=202)
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
                if self.engine.purge(instance_id) == 0:
                    return web.Response(status=404)
                return _json({"instancesDeleted": 1})
            return web.Response(status=404)
        if method != "POST":
            return web.Response(status=404)
        reason = query.get("reason")
        op = op.lower()
        if op == "terminate":
            self.engine.terminate(instance_id, reason)
        elif op == "suspend":
            self.engine.suspend(instance_id, reason)
        elif op == "resume":
            self.engine.resume(instance_id, reason)
        elif op == "rewind":
            inst = self.store.get_instance(instance_id)
            if inst is None:
                raise NotFound(instance_id)
            if inst.status in ("Completed", "Terminated", "Canceled"):
                raise Gone(instance_id)
            if inst.status != "Failed":
                return _error(
                    400, "The rewind operation is only supported on failed orchestration instances."
                )
            self.engine.rewind(instance_id, reason)
        elif op == "restart":
            if self.store.get_instance(instance_id) is None:
                return _error(400, "InstanceId does not match a valid orchestration instance.")
            new_id = self.engine.restart(
                instance_id, _flag(query, "restartWithNewInstanceId", True)
            )
            return await self._check_status_or_wait(request, new_id)
        else:
            return web.Response(status=404)
        return web.Response(status=202)

    async def _check_status_or_wait(
        self, request: web.Request, instance_id: str
    ) -> web.Response:
        """`?timeout=&pollingInterval=` (seconds): wait for the output, else a 202."""
        try:
            timeout = float(request.query["timeout"])
            interval = float(request.query["pollingInterval"])
        except (KeyError, ValueError):
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
        links = self.links(instance_id)
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

    def _filters(self, query: Any) -> dict[str, Any]:
        statuses = [
            s
            for part in query.getall("runtimeStatus", [])
            for s in part.split(",")
            if s in ORCHESTRATION_STATUS
        ]
        return {
            "statuses": statuses or None,
            "created_from": _query_time(query.get("createdTimeFrom")),
            "created_to": _query_time(query.get("createdTimeTo")),
        }

    def _list(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            top = int(q["top"]) if "top" in q else None
            offset = int(request.headers.get("x-ms-continuation-token") or 0)
        except ValueError:
            return _error(400, "One or more of the arguments submitted is incorrect")
        instances = self.store.query_instances(
            **self._filters(q),
            prefix=q.get("instanceIdPrefix"),
            offset=offset,
            limit=top,
        )
        show_input = _flag(q, "showInput", True)
        results = [status_payload(self.store, i, show_input=show_input) for i in instances]
        headers = {}
        if top is not None and len(instances) == top:
            headers["x-ms-continuation-token"] = str(offset + top)
        return _json(results, 200, headers)

    def _purge_many(self, query: Any) -> web.Response:
        filters = self._filters(query)
        if filters["created_from"] is None:
            return _json("Please provide value for 'createdTimeFrom' parameter.", 400)
        instances = self.store.query_instances(**filters)
        deleted = self.engine.purge_many(instances)
        if deleted == 0:
            return web.Response(status=404)
        return _json({"instancesDeleted": deleted})


_INVALID = object()


async def _json_body(request: web.Request) -> str | object | None:
    return _body_as_json_text(await request.text())


def _body_as_json_text(body: str) -> str | object | None:
    """The body carries JSON; the SDK wraps its (already JSON) text in a JSON string."""
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return _INVALID
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


def _query_time(value: str | None) -> str | None:
    if not value:
        return None
    try:
        from .engine import iso

        return iso(parse_iso(value))
    except ValueError:
        return None


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
