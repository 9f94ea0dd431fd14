"""Azure Monitor webhook payloads in, target VMs out.

Recognised shapes (what an action group can post):
- common alert schema (`schemaId: azureMonitorCommonAlertSchema`): metric, log search,
  activity log; targets in `data.essentials.alertTargetIDs` (lower-cased by Azure), and for
  log search alerts on a workspace, `_ResourceId` dimensions that name a VM;
- non-common metric alert (`schemaId: AzureMonitorMetricAlert`): `data.context.resourceId`;
- non-common activity log alert (`schemaId: Microsoft.Insights/activityLogs`):
  `data.context.activityLog.resourceId`;
- classic metric alert (retired; what the 2017 sample parsed): top-level `status` and
  `context.resourceId`, `context.resourceRegion`.

Scale sets and their instances are targets too (`alertcap.domain.targets`: the grouping
rules and the custom properties `alertcap.include` / `alertcap.exclude` that narrow a
scale set's scope).

`parse_alert` never starts anything; it raises Unprocessable (422) when it cannot find a
VM or scale set to act on, and reports alerts that are resolved as `active=False`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alertcap.domain.run import AlertInfo
from alertcap.domain.targets import Target, group_targets, parse_target
from alertcap.domain.vm import VmRef
from alertcap.errors import NoVmTarget, UnknownAlertSchema

_ACTIVE = {"fired", "activated"}
_INACTIVE = {"resolved", "deactivated"}


@dataclass(frozen=True)
class ParsedAlert:
    info: AlertInfo
    runs: tuple[Target, ...]  # one run each: a VM, or a scale set with its scope
    ignored_targets: tuple[str, ...]  # named by the alert but neither VMs nor scale sets
    location: str | None
    active: bool

    @property
    def targets(self) -> tuple[VmRef, ...]:
        return tuple(t.vm for t in self.runs)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value[:500] if isinstance(value, str) and value else None


def _split_targets(ids: list[Any], properties: Any = None
                   ) -> tuple[tuple[Target, ...], tuple[str, ...]]:
    return group_targets(ids, properties)


def _is_target(raw: Any) -> bool:
    return parse_target(raw) is not None


def _condition(raw: Any) -> tuple[str, bool]:
    """Normalised to the common schema's words: Fired or Resolved."""
    text = _str(raw) or "Fired"
    low = text.lower()
    if low in _INACTIVE:
        return "Resolved", False
    if low in _ACTIVE:
        return "Fired", True
    raise UnknownAlertSchema(f"unknown alert condition {text[:40]!r} "
                             "(expected Fired/Activated or Resolved/Deactivated)")


def _severity(raw: Any) -> str | None:
    # The common schema says "Sev2"; the non-common metric schema says "2".
    text = _str(raw) if not isinstance(raw, int) else str(raw)
    if text and text.isdigit():
        return f"Sev{text}"
    return text


def _log_dimension_targets(context: dict[str, Any]) -> list[Any]:
    # Log search alerts on a workspace name the VM in a _ResourceId dimension.
    found: list[Any] = []
    for criterion in _obj(context.get("condition")).get("allOf") or []:
        for dim in _obj(criterion).get("dimensions") or []:
            dim = _obj(dim)
            if str(dim.get("name", "")).lower() in ("_resourceid", "resourceid"):
                found.append(dim.get("value"))
    return found


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    try:
        return float(raw) if isinstance(raw, str) and len(raw) < 40 else None
    except ValueError:
        return None


def _signal(condition: Any) -> dict[str, Any]:
    """The metric the alert fired on, from a criterion list (allOf) or a classic condition:
    what the capture is then asked to explain. Azure sends a dynamic threshold's computed
    value as a string."""
    cond = _obj(condition)
    first = _obj((cond.get("allOf") or [None])[0]) if isinstance(cond.get("allOf"), list) \
        else cond
    return {"metric_name": _str(first.get("metricName")),
            "metric_value": _number(first.get("metricValue")),
            "threshold": _number(first.get("threshold")),
            "operator": _str(first.get("operator"))}


def _common(payload: dict[str, Any]) -> ParsedAlert:
    data = _obj(payload.get("data"))
    ess = _obj(data.get("essentials"))
    if not ess:
        raise UnknownAlertSchema("common alert schema without data.essentials")
    condition, active = _condition(ess.get("monitorCondition"))
    ids = ess.get("alertTargetIDs")
    ids = list(ids) if isinstance(ids, list) else []
    if not any(_is_target(i) for i in ids):
        ids += _log_dimension_targets(_obj(data.get("alertContext")))
    targets, ignored = _split_targets(ids, data.get("customProperties"))
    info = AlertInfo(
        schema="common",
        alert_id=_str(ess.get("alertId")),
        alert_rule=_str(ess.get("alertRule")),
        severity=_severity(ess.get("severity")),
        condition=condition,
        fired_at=_str(ess.get("firedDateTime")),
        description=_str(ess.get("description")),
        signal_type=_str(ess.get("signalType")),
        **_signal(_obj(data.get("alertContext")).get("condition")),
    )
    return ParsedAlert(info, targets, ignored, None, active)


def _metric(payload: dict[str, Any]) -> ParsedAlert:
    data = _obj(payload.get("data"))
    ctx = _obj(data.get("context"))
    condition, active = _condition(data.get("status"))
    targets, ignored = _split_targets([ctx.get("resourceId")], data.get("properties"))
    info = AlertInfo(
        schema="metric", alert_id=_str(ctx.get("id")), alert_rule=_str(ctx.get("name")),
        severity=_severity(ctx.get("severity")), condition=condition,
        fired_at=_str(ctx.get("timestamp")), description=_str(ctx.get("description")),
        signal_type="Metric", **_signal(ctx.get("condition")),
    )
    return ParsedAlert(info, targets, ignored, None, active)


def _activity_log(payload: dict[str, Any]) -> ParsedAlert:
    data = _obj(payload.get("data"))
    log = _obj(_obj(data.get("context")).get("activityLog"))
    condition, active = _condition(data.get("status"))
    targets, ignored = _split_targets([log.get("resourceId")], data.get("properties"))
    info = AlertInfo(
        # This schema names neither the rule nor the alert; level is the event's, not a severity.
        schema="activityLog", alert_id=None, alert_rule=None, severity=None,
        condition=condition, fired_at=_str(log.get("eventTimestamp")),
        description=_str(log.get("description")), signal_type="Activity Log",
    )
    return ParsedAlert(info, targets, ignored, None, active)


def _classic(payload: dict[str, Any]) -> ParsedAlert:
    ctx = _obj(payload.get("context"))
    condition, active = _condition(payload.get("status"))
    targets, ignored = _split_targets([ctx.get("resourceId")])
    info = AlertInfo(
        schema="classic", alert_id=_str(ctx.get("id")), alert_rule=_str(ctx.get("name")),
        severity=None, condition=condition, fired_at=_str(ctx.get("timestamp")),
        description=_str(ctx.get("description")), signal_type="Metric",
        **_signal(ctx.get("condition")),
    )
    region = _str(ctx.get("resourceRegion"))
    return ParsedAlert(info, targets, ignored, region.lower() if region else None, active)


_BY_SCHEMA = {
    "azuremonitorcommonalertschema": _common,
    "azuremonitormetricalert": _metric,
    "microsoft.insights/activitylogs": _activity_log,
}


def parse_alert(payload: Any) -> ParsedAlert:
    if not isinstance(payload, dict):
        raise UnknownAlertSchema("an alert payload is a JSON object")
    schema = payload.get("schemaId")
    if isinstance(schema, str) and schema.lower() in _BY_SCHEMA:
        parsed = _BY_SCHEMA[schema.lower()](payload)
    elif schema is None and isinstance(payload.get("context"), dict) and "status" in payload:
        parsed = _classic(payload)
    else:
        raise UnknownAlertSchema(
            "not an Azure Monitor alert webhook: expected the common alert schema, "
            "AzureMonitorMetricAlert, Microsoft.Insights/activityLogs or a classic metric "
            "alert", detail={"schemaId": str(schema)[:100]})
    if parsed.active and not parsed.targets:
        raise NoVmTarget(
            "the alert names no virtual machine or scale set; alertcap captures on "
            "Microsoft.Compute/virtualMachines and virtualMachineScaleSets targets only",
            detail={"targets": list(parsed.ignored_targets[:10])})
    return parsed
