"""The run page: server-rendered HTML for people (function key; no JavaScript needed).

    GET  /api/runs                          recent runs: records + live capture instances
    GET  /api/runs/{instanceId}             one run: verdict, findings, timeline, tables,
                                            capture files and slices, steps, stop form
    GET  /api/runs/{instanceId}/timeline.png  the run's timeline picture
    POST /api/runs/{instanceId}/stop        the stop form's target: JSON or form body;
                                            303 back to the run page (JSON errors)

Boundary: reads the Durable status (with history) and the run records
(`activities.records`); renders with `alertcap.pcap.render_html`/`timeline_png`. Every
value is escaped here (`html.escape`); links carry the caller's own `code` so the page
works with the function key it was opened with, and nothing else secret is rendered.
Bad input is a JSON error with its status (404 unknown run, 409 not running), never a 500.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from typing import Any
from urllib.parse import quote, urlencode

import azure.durable_functions as df
import azure.functions as func

from activities.records import list_records
from alertcap import settings
from alertcap.domain.vm import is_instance_id
from alertcap.errors import AlertcapError, InstanceNotFound
from alertcap.pcap import render_html, timeline_png
from alertcap.sdk.clients import get_clients
from orchestrators.capture import ORCHESTRATOR
from orchestrators.steps import decoded
from starters.http import Starter, _error_response, _status_name

log = logging.getLogger("alertcap.runs")

bp = df.Blueprint()

RECENT = 50  # records read whole for the list: bounded
_LIVE = ["Running", "Pending", "ContinuedAsNew", "Suspended"]
e = html.escape

_STYLE = """
body{font-family:Arial,sans-serif;margin:0;padding:8px;color:#222;max-width:960px}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border:1px solid #ccc;padding:4px;text-align:left;vertical-align:top;word-break:break-word}
.wide{overflow-x:auto} img{max-width:100%;height:auto}
button{font-size:16px;padding:8px 16px}
"""


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            # No favicon request (the host has none: a 404 in every browser console).
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>{body}"
            "</body></html>")


def _html(text: str, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(text, status_code=status, mimetype="text/html", charset="utf-8",
                             headers={"Cache-Control": "no-store",
                                      "Content-Security-Policy": "default-src 'none'; "
                                      "img-src 'self' data:; style-src 'unsafe-inline'; "
                                      "form-action 'self'"})


def _key_query(req: func.HttpRequest) -> str:
    """`?code=...` as the page was opened (a browser has no other way to send the key)."""
    code = req.params.get("code")
    return "?" + urlencode({"code": code}) if code else ""


def _seconds(start: str | None, end: str | None) -> str:
    from datetime import datetime

    try:
        a = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        b = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    except ValueError:
        return ""
    return f"{(b - a).total_seconds():.0f} s"


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


# --- list ------------------------------------------------------------------------------


def run_rows(records: list[dict[str, Any]], live: list[Any]) -> list[dict[str, str]]:
    """One row per run, live ones first; a live instance hides its own older record only
    when it is the same run (same start)."""
    rows: list[dict[str, str]] = []
    for st in live:
        custom = st.custom_status if isinstance(st.custom_status, dict) else {}
        rows.append({"instance": st.instance_id, "vm": str(custom.get("vm") or ""),
                     "alert": "", "phase": str(custom.get("phase") or "starting"),
                     "outcome": str(getattr(st.runtime_status, "value", st.runtime_status)),
                     "started": _iso(st.created_time), "duration": ""})
    for r in records:
        alert = r.get("alert") or {}
        rows.append({"instance": str(r.get("instance_id") or ""),
                     "vm": str(r.get("vm_id") or "").rsplit("/", 1)[-1],
                     "alert": str(alert.get("alert_rule") or alert.get("schema") or ""),
                     "phase": "done", "outcome": str(r.get("outcome") or ""),
                     "started": str(r.get("started_at") or ""),
                     "duration": _seconds(r.get("started_at"), r.get("finished_at"))})
    return rows


def render_list(rows: list[dict[str, str]], key: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Run", "VM", "Alert", "Phase", "Outcome",
                                             "Started", "Duration"))
    body = "".join(
        f"<tr><td><a href=\"runs/{quote(r['instance'], safe='')}{e(key)}\">"
        f"{e(r['instance'])}</a></td><td>{e(r['vm'])}</td><td>{e(r['alert'])}</td>"
        f"<td>{e(r['phase'])}</td><td>{e(r['outcome'])}</td><td>{e(r['started'])}</td>"
        f"<td>{e(r['duration'])}</td></tr>" for r in rows)
    empty = "" if rows else "<p>No runs yet.</p>"
    return _page("alertcap runs", f"<h1>Runs</h1>{empty}<div class=\"wide\"><table "
                 f"id=\"runs\"><tr>{head}</tr>{body}</table></div>")


async def _records(prefix: str = "", limit: int = RECENT) -> list[dict[str, Any]]:
    try:
        return await asyncio.to_thread(list_records, get_clients(), prefix, limit)
    except Exception as exc:  # no container yet, or records not configured: no rows
        log.warning("run records unavailable: %s", str(exc).splitlines()[0][:200])
        return []


# --- one run ---------------------------------------------------------------------------


def _links(summary: dict[str, Any]) -> str:
    items = []
    if summary.get("link"):
        items.append(f"<li><a href=\"{e(summary['link'])}\">the whole capture</a> "
                     f"({e(str(summary.get('size_bytes') or '?'))} bytes; link expires "
                     f"{e(str(summary.get('link_expires') or ''))})</li>")
    for inst in summary.get("instances") or []:
        if inst.get("link"):
            items.append(f"<li><a href=\"{e(inst['link'])}\">instance "
                         f"{e(str(inst.get('instance_id')))}</a></li>")
    for s in summary.get("slices") or []:
        label = f"evidence: {s.get('name')} ({s.get('packets', 0)} packets)"
        items.append(f"<li><a href=\"{e(s['link'])}\">{e(label)}</a></li>" if s.get("link")
                     else f"<li>{e(label)}</li>")
    return "<ul id=\"files\">" + "".join(items) + "</ul>" if items else "<p>No files.</p>"


def _steps(history: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{e(str(h.get('Timestamp', '')))}</td><td>{e(str(h.get('EventType', '')))}"
        f"</td><td>{e(str(h.get('FunctionName') or h.get('Name') or ''))}</td></tr>"
        for h in history if isinstance(h, dict))
    return ("<div class=\"wide\"><table id=\"steps\"><tr><th>When</th><th>Step</th>"
            f"<th>Name</th></tr>{rows}</table></div>") if rows else "<p>No steps recorded.</p>"


def render_run(instance_id: str, status: str, custom: dict[str, Any],
               result: dict[str, Any] | None, history: list[dict[str, Any]], key: str) -> str:
    vm = str((result or {}).get("vm_id") or custom.get("vm") or "")
    parts = [f"<p><a href=\"../runs{e(key)}\">All runs</a></p>",
             f"<h1>{e(vm.rsplit('/', 1)[-1] or instance_id)}</h1>",
             f"<p>Run <code>{e(instance_id)}</code>: <b id=\"status\">{e(status)}</b>"
             f" (phase {e(str(custom.get('phase') or 'done'))})</p>"]
    if status in _LIVE:
        parts.append(f"<form method=\"post\" action=\"{e(quote(instance_id, safe=''))}/stop"
                     f"{e(key)}\"><button type=\"submit\" id=\"stop\">Stop the capture now"
                     "</button></form>")
    if result:
        alert = result.get("alert") or {}
        parts.append(f"<p>Outcome: <b id=\"outcome\">{e(str(result.get('outcome')))}</b>; "
                     f"alert {e(str(alert.get('alert_rule') or 'none (manual)'))}; started "
                     f"{e(str(result.get('started_at')))}, finished "
                     f"{e(str(result.get('finished_at')))}"
                     + (f"; stopped by {e(str(result['stopped_by']))}"
                        if result.get("stopped_by") else "") + "</p>")
        if result.get("reason"):
            parts.append(f"<p>{e(str(result['reason']))}</p>")
        summary = result.get("summary") or {}
        traffic = summary.get("summary")
        if isinstance(traffic, dict):
            parts.append(f"<p><img id=\"timeline\" alt=\"traffic timeline\" "
                         f"src=\"{e(quote(instance_id, safe=''))}/timeline.png{e(key)}\"></p>")
            # render_html escapes every value itself (alertcap/pcap/render.py).
            parts.append("<div class=\"wide\" id=\"summary\">"
                         + render_html(traffic, image_cid=None) + "</div>")
        parts.append("<h2>Files</h2>" + _links(summary))
        delivered = [f"email: {(result.get('notification') or {}).get('status', '?')}",
                     *(f"{c.get('channel')}: {c.get('status')}"
                       for c in result.get("channels") or [])]
        parts.append("<h2>Notifications</h2><ul>"
                     + "".join(f"<li>{e(str(d))}</li>" for d in delivered) + "</ul>")
    parts.append("<h2>Steps</h2>" + _steps(history))
    return _page(f"alertcap run {instance_id}", "".join(parts))


async def _one(client: Any, instance_id: str) -> tuple[str, dict[str, Any], dict[str, Any] |
                                                         None, list[dict[str, Any]]]:
    """(runtime status, custom status, result, history); the record when the instance is
    gone (the VM's next run replaced it)."""
    if not is_instance_id(instance_id):
        raise InstanceNotFound(f"no capture run with id {instance_id[:100]!r}")
    st = await client.get_status(instance_id, show_history=True)
    name = _status_name(st)
    if name is not None:
        custom = st.custom_status if isinstance(st.custom_status, dict) else {}
        output = decoded(st.output)
        result = output if isinstance(output, dict) and "vm_id" in output else None
        # The extension's JSON names it historyEvents; the SDK keeps unknown keys as is.
        events = getattr(st, "historyEvents", None) or st.history or []
        history = [h for h in events if isinstance(h, dict)]
        return str(name), custom, result, history
    records = await _records(instance_id + "/", 1)
    if not records:
        raise InstanceNotFound(f"no capture run with id {instance_id}")
    return "Completed", {}, records[0], []


async def _handle(route: str, call: Any) -> func.HttpResponse:
    try:
        return await call()
    except AlertcapError as exc:
        return _error_response(exc, route)


@bp.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def runs_list(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    async def go() -> func.HttpResponse:
        live = [s for s in await client.get_status_by(runtime_status=[
            df.OrchestrationRuntimeStatus(n) for n in _LIVE]) if s.name == ORCHESTRATOR]
        live.sort(key=lambda s: _iso(s.created_time), reverse=True)
        return _html(render_list(run_rows(await _records(), live), _key_query(req)))
    return await _handle("runs", go)


@bp.route(route="runs/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def run_page(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")

    async def go() -> func.HttpResponse:
        status, custom, result, history = await _one(client, instance_id)
        return _html(render_run(instance_id, status, custom, result, history,
                                _key_query(req)))
    return await _handle("run page", go)


@bp.route(route="runs/{instance_id}/timeline.png", methods=["GET"],
          auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def run_timeline(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    instance_id = req.route_params.get("instance_id", "")

    async def go() -> func.HttpResponse:
        _status, _custom, result, _history = await _one(client, instance_id)
        traffic = ((result or {}).get("summary") or {}).get("summary")
        if not isinstance(traffic, dict):
            raise InstanceNotFound(f"run {instance_id} has no traffic summary (yet)")
        png = await asyncio.to_thread(timeline_png, traffic)
        return func.HttpResponse(png, status_code=200, mimetype="image/png",
                                 headers={"Cache-Control": "no-store"})
    return await _handle("timeline", go)


@bp.route(route="runs/{instance_id}/stop", methods=["POST"],
          auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
async def run_stop(req: func.HttpRequest, client: Any) -> func.HttpResponse:
    """The page's stop button: a form post (or JSON) raises the same "stop" event as
    POST /api/captures/{id}/stop, then sends the browser back to the run page."""
    instance_id = req.route_params.get("instance_id", "")

    async def go() -> func.HttpResponse:
        answer = await Starter(client, settings.load()).stop(req, instance_id)
        if "application/json" in (req.headers.get("accept") or "").lower():
            return answer
        location = f"../{quote(instance_id, safe='')}{_key_query(req)}"
        return func.HttpResponse(json.dumps({"state": "stopping"}), status_code=303,
                                 mimetype="application/json", headers={"Location": location})
    return await _handle("run stop", go)
