"""The out-of-process protocol, checked against the SDK's own parsers.

The host's recorded histories are replayed through the real orchestrator functions with
`build_context` (the JSON the host sends): the SDK must parse it
(`DurableOrchestrationContext.from_json`) and, given the last episode as new events,
reach the very output the host recorded. A history with a wrong EventType, a missing
field or a task id out of step would make the replay diverge or raise.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from types import ModuleType
from typing import Any

import pytest
from azure.durable_functions.models.DurableOrchestrationContext import (
    DurableOrchestrationContext,
)
from azure.durable_functions.models.history.HistoryEventType import HistoryEventType

from localdev.host.loader import route_to_regex
from localdev.host.protocol import ORCHESTRATOR_STARTED, flatten
from localdev.host.replay import build_context
from localdev.host.store import Store

from .conftest import SAMPLE_APP, HostProcess


@pytest.fixture(scope="module")
def sample_module(host: HostProcess, monkeypatch_module: pytest.MonkeyPatch) -> ModuleType:
    # A private module name: never shadow the real `function_app` other suites import.
    monkeypatch_module.setenv("SAMPLE_STATE_DIR", str(host.sample_dir))
    spec = importlib.util.spec_from_file_location(
        "localdev_host_sample_app", SAMPLE_APP / "function_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def orchestrators(module: ModuleType) -> dict[str, Any]:
    return {
        fn.get_function_name(): fn.get_user_function()
        for fn in module.app.get_functions()
        if any('"orchestrationTrigger"' in b for b in fn.get_raw_bindings())
    }


CASES = [
    ("chain", 4),
    ("fan", 5),
    ("retrying", {"key": "proto", "fail_times": 1, "attempts": 3}),
    ("approval", 0.3),
    ("parent", None),
]


def test_recorded_histories_replay_to_the_recorded_output(
    host: HostProcess, sample_module: ModuleType
) -> None:
    for name, body in CASES:
        host.start_orchestration(name, f"proto-{name}", body)
    for name, _ in CASES:
        host.wait(f"proto-{name}")
    funcs = orchestrators(sample_module)
    store = Store(host.state_dir / "durable.sqlite3")
    try:
        for name, _ in CASES:
            inst = store.get_instance(f"proto-{name}")
            assert inst is not None
            history = store.history(inst.instance_id)
            last = max(i for i, e in enumerate(history)
                       if e["EventType"] == ORCHESTRATOR_STARTED)
            context = build_context(inst, history[:last], history[last:last + 2])
            text = json.dumps(context)

            parsed = DurableOrchestrationContext.from_json(text)
            assert parsed.instance_id == inst.instance_id
            assert parsed.histories[1].event_type == HistoryEventType.EXECUTION_STARTED
            assert parsed.histories[-2].event_type == HistoryEventType.ORCHESTRATOR_STARTED
            assert [h.is_played for h in parsed.histories][-2:] == [False, False]

            with warnings.catch_warnings():
                # The SDK nags the *app* (get_input without expected_type); not our concern.
                warnings.simplefilter("ignore", DeprecationWarning)
                state = json.loads(funcs[name](text))
            assert state["isDone"] is True, (name, state)
            assert state["schemaVersion"] == 2
            assert json.dumps(state["output"]) == inst.output, name
    finally:
        store.close()


def test_task_ids_match_the_sdk_numbering(host: HostProcess) -> None:
    host.start_orchestration("retrying", "proto-ids", {"key": "ids", "fail_times": 2,
                                                       "attempts": 3})
    host.wait("proto-ids")
    store = Store(host.state_dir / "durable.sqlite3")
    try:
        history = store.history("proto-ids")
    finally:
        store.close()
    numbered = [(e["EventType"], e["EventId"]) for e in history if e["EventId"] >= 0]
    # TaskScheduled 0, its retry timer 1, TaskScheduled 2, timer 3, TaskScheduled 4.
    assert numbered == [(4, 0), (10, 1), (4, 2), (10, 3), (4, 4)]
    played = [e for e in history if e["EventType"] in (5, 6)]
    assert [e["TaskScheduledId"] for e in played] == [0, 2, 4]


def test_flatten_keeps_compound_children_in_order() -> None:
    actions = [[
        {"actionType": 0, "functionName": "a"},
        {"actionType": 11, "compoundActions": [
            {"actionType": 6, "externalEventName": "e"},
            {"actionType": 12, "compoundActions": [{"actionType": 1, "functionName": "b"}]},
            {"actionType": 5, "fireAt": "2020-01-01T00:00:00.000000Z", "isCanceled": False},
        ]},
    ]]
    assert [a["actionType"] for a in flatten(actions)] == [0, 6, 1, 5]


@pytest.mark.parametrize(
    ("route", "path", "params"),
    [
        ("hello/{name}", "hello/ada", {"name": "ada"}),
        ("ops/{op}/{id?}", "ops/status", {"op": "status", "id": None}),
        ("ops/{op}/{id?}", "ops/status/x1", {"op": "status", "id": "x1"}),
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("files/{*rest}", "files/a/b/c", {"rest": "a/b/c"}),
        ("hello/{name}", "hello/a/b", None),
    ],
)
def test_route_templates(route: str, path: str, params: dict[str, Any] | None) -> None:
    match = route_to_regex(route).match(path)
    assert (match.groupdict() if match else None) == params
