"""Loading a Functions app the way the Functions host and Python worker do.

Boundary: everything that touches the user's app lives here: settings into `os.environ`,
host.json, importing `function_app.py`, reading the functions' binding metadata, and
calling a function with its bindings filled in (HTTP request, activity input, durable
client JSON, `context`). The rest of the host only sees `FunctionInfo` and `invoke`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import os
import re
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

DEFAULT_HUB = "TestHubName"


# Flex Consumption's default functionTimeout (the plan alertcap deploys to).
DEFAULT_FUNCTION_TIMEOUT = "00:30:00"
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d+))?$")


def parse_timespan(text: str) -> float | None:
    """A .NET TimeSpan string (`[d.]hh:mm:ss[.fff]`) in seconds; "-1" means unbounded."""
    if text.strip() == "-1":
        return None
    m = _TIMESPAN.match(text.strip())
    if m is None:
        raise ValueError(f"host.json functionTimeout {text!r} is not a TimeSpan (hh:mm:ss)")
    days, hours, minutes, seconds, frac = m.groups()
    return (
        int(days or 0) * 86400
        + int(hours) * 3600
        + int(minutes) * 60
        + int(seconds)
        + (float(f"0.{frac}") if frac else 0.0)
    )


@dataclass(frozen=True)
class HostConfig:
    """The parts of host.json this host honours."""

    hub_name: str = DEFAULT_HUB
    route_prefix: str = "api"
    max_activities: int = 10
    max_orchestrators: int = 10
    # DurableTaskOptions.OverridableExistingInstanceStates; the extension's default.
    overridable_states: str = "AnyState"
    function_timeout_text: str = DEFAULT_FUNCTION_TIMEOUT
    function_timeout_s: float | None = 1800.0

    @classmethod
    def from_file(cls, path: Path) -> HostConfig:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        ext = data.get("extensions") or {}
        durable = ext.get("durableTask") or {}
        http = ext.get("http") or {}
        timeout = str(data.get("functionTimeout") or DEFAULT_FUNCTION_TIMEOUT)
        overridable = str(durable.get("overridableExistingInstanceStates") or "AnyState")
        # The option is an enum: Json.NET matches its names case-insensitively.
        overridable = (
            "NonRunningStates" if overridable.lower() == "nonrunningstates" else "AnyState"
        )
        return cls(
            hub_name=str(durable.get("hubName") or DEFAULT_HUB),
            route_prefix=str(http.get("routePrefix", "api")).strip("/"),
            max_activities=int(durable.get("maxConcurrentActivityFunctions") or 10),
            max_orchestrators=int(durable.get("maxConcurrentOrchestratorFunctions") or 10),
            overridable_states=overridable,
            function_timeout_text=timeout,
            function_timeout_s=parse_timespan(timeout),
        )


def apply_settings(app_dir: Path, settings_file: Path | None) -> list[str]:
    """Put `Values` into os.environ like Core Tools: local.settings.json, then --settings.

    Returns the names (never the values) of the settings applied.
    """
    applied: list[str] = []
    for path in (app_dir / "local.settings.json", settings_file):
        if path is None or not path.exists():
            continue
        values = json.loads(path.read_text()).get("Values") or {}
        for name, value in values.items():
            os.environ[str(name)] = "" if value is None else str(value)
            applied.append(str(name))
    return applied


@dataclass
class FunctionInfo:
    name: str
    kind: str  # "http", "orchestrator", "activity", "other"
    func: Callable[..., Any]
    bindings: list[dict[str, Any]]
    route: str = ""
    methods: list[str] = field(default_factory=list)
    auth_level: str = "function"
    route_regex: re.Pattern[str] | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def binding(self, type_: str) -> dict[str, Any] | None:
        return next((b for b in self.bindings if b.get("type") == type_), None)


class HostContext(func.Context):
    """The `context` argument the Python worker passes to functions that ask for it."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str):
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None

    @property
    def thread_local_storage(self) -> Any:
        return None


_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}")


def route_to_regex(route: str) -> re.Pattern[str]:
    """Compile an ASP.NET-style route (`a/{id}`, `{id?}`, `{id:int}`, `{*rest}`)."""
    out, pos = "", 0
    for m in _PARAM.finditer(route):
        literal = route[pos : m.start()]
        catch_all, name, optional = m.group(1), m.group(2), m.group(3)
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        if optional and literal.endswith("/"):
            out += re.escape(literal[:-1]) + f"(?:/{body})?"
        else:
            out += re.escape(literal) + (f"{body}?" if optional else body)
        pos = m.end()
    out += re.escape(route[pos:])
    return re.compile(f"^{out}/?$", re.IGNORECASE)


def load_app(app_dir: Path) -> tuple[Any, dict[str, FunctionInfo]]:
    """Import `function_app.py` and index its functions by name."""
    app_dir = app_dir.resolve()
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    spec = importlib.util.spec_from_file_location("function_app", app_dir / "function_app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {app_dir / 'function_app.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    app = next((v for v in vars(module).values() if isinstance(v, func.FunctionRegister)), None)
    if app is None:
        raise RuntimeError("function_app.py defines no FunctionApp / DFApp instance")
    functions: dict[str, FunctionInfo] = {}
    # get_functions() builds the functions and is not idempotent: call it exactly once.
    for fn in app.get_functions():
        bindings = [json.loads(b) for b in fn.get_raw_bindings()]
        name = str(fn.get_function_name())
        info = FunctionInfo(name=name, kind="other", func=fn.get_user_function(), bindings=bindings)
        http = info.binding("httpTrigger")
        if http is not None:
            info.kind = "http"
            info.route = str(http.get("route") or name).strip("/")
            info.methods = [m.upper() for m in http.get("methods") or []]
            info.auth_level = str(http.get("authLevel") or "FUNCTION").lower()
            info.route_regex = route_to_regex(info.route)
        elif info.binding("orchestrationTrigger") is not None:
            info.kind = "orchestrator"
        elif info.binding("activityTrigger") is not None:
            info.kind = "activity"
        functions[name] = info
    return app, functions


def _accepts_context(fn: Callable[..., Any]) -> bool:
    try:
        return "context" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


async def call(
    info: FunctionInfo,
    kwargs: dict[str, Any],
    invocation_id: str,
    app_dir: Path,
    executor: Executor,
) -> Any:
    """Call a function: async ones on the loop, sync ones on the worker's thread pool."""
    if _accepts_context(info.func) and "context" not in kwargs:
        kwargs["context"] = HostContext(invocation_id, info.name, str(app_dir))
    if info.is_async:
        return await info.func(**kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, lambda: info.func(**kwargs))


def activity_kwargs(info: FunctionInfo, input_json: str | None) -> dict[str, Any]:
    trigger = info.binding("activityTrigger") or {}
    value = ActivityTriggerConverter.decode(
        meta.Datum(type="json", value=input_json if input_json is not None else "null"),
        trigger_metadata=None,
    )
    return {str(trigger.get("name")): value}


def encode_activity_result(result: Any) -> str:
    datum = ActivityTriggerConverter.encode(result, expected_type=None)
    return str(datum.value)


def new_invocation_id() -> str:
    return str(uuid.uuid4())
