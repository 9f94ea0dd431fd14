"""The doctor's two triggers (the checks themselves are `alertcap.doctor`):

    GET /api/doctor      function key; JSON report (schema alertcap.doctor/1), or a text
                         table with `Accept: text/plain` or `?format=text`. 200 when no
                         check failed, 503 when one did (so `curl -f` after a deployment
                         fails), 400 for an unknown `format`.
    doctor_timer         every 6 hours (DOCTOR_SCHEDULE): runs the doctor and emails new
                         problems and resolved ones, once each (alertcap.doctor.schedule).

Boundary: trigger plumbing and HTTP content negotiation only; settings that do not load
are a report (each problem a failed check), never a 500.
"""

from __future__ import annotations

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from alertcap import settings
from alertcap.doctor import run, run_from_env
from alertcap.doctor.model import Report, render_text
from alertcap.doctor.schedule import notify_changes
from alertcap.errors import ConfigError
from alertcap.sdk.clients import get_clients

log = logging.getLogger("alertcap.doctor")

bp = df.Blueprint()

# NCRONTAB (seconds first): 00:17, 06:17, 12:17, 18:17 UTC; off the hour, away from the
# crowd of jobs scheduled at :00.
DOCTOR_SCHEDULE = "0 17 */6 * * *"
FORMATS = {"json", "text"}


def _report() -> Report:
    try:
        settings.load()
    except ConfigError:
        return run_from_env()  # reports each settings problem as a failed check
    return run(get_clients())


def _wants_text(req: func.HttpRequest) -> bool | None:
    """True/False, or None for a format we do not serve."""
    fmt = (req.params.get("format") or "").strip().lower()
    if fmt:
        return None if fmt not in FORMATS else fmt == "text"
    accept = (req.headers.get("accept") or "").lower()
    return "text/plain" in accept and "application/json" not in accept


@bp.route(route="doctor", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def doctor(req: func.HttpRequest) -> func.HttpResponse:
    as_text = _wants_text(req)
    if as_text is None:
        body = {"error": {"code": "BadRequest",
                          "message": "format must be json or text",
                          "detail": {"format": (req.params.get("format") or "")[:40]}}}
        return func.HttpResponse(json.dumps(body), status_code=400,
                                 mimetype="application/json")
    report = _report()
    status = 200 if report.healthy else 503
    if as_text:
        return func.HttpResponse(render_text(report), status_code=status,
                                 mimetype="text/plain", charset="utf-8")
    return func.HttpResponse(json.dumps(report.to_json()), status_code=status,
                             mimetype="application/json")


@bp.timer_trigger(arg_name="timer", schedule=DOCTOR_SCHEDULE, run_on_startup=False)
def doctor_timer(timer: func.TimerRequest) -> None:
    report = _report()
    counts = report.counts()
    try:
        settings.load()
    except ConfigError:
        log.error("doctor: settings invalid, nothing can be notified: %s",
                  "; ".join(c.message for c in report.failures))
        return
    outcome = notify_changes(get_clients(), report)
    log.info("doctor: %d ok, %d warnings, %d failed; %d new, %d resolved; notified=%s (%s)",
             counts["ok"], counts["warn"], counts["fail"], outcome.new, outcome.resolved,
             outcome.notified, outcome.reason)
