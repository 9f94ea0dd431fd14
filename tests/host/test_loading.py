"""Loading an app like Core Tools: settings, host.json defaults, routes; and load."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import aiohttp

from .conftest import HostProcess, http

MINIMAL_APP = '''
import json
import os

import azure.durable_functions as df
import azure.functions as func

bp = df.Blueprint()


@bp.route(route="env", auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def env(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    links = client.create_http_management_payload("x")
    return func.HttpResponse(json.dumps({
        "FROM_LOCAL": os.environ.get("FROM_LOCAL"),
        "OVERRIDDEN": os.environ.get("OVERRIDDEN"),
        "status_url": links["statusQueryGetUri"],
    }))


@bp.orchestration_trigger(context_name="context")
def hello(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("say", context.get_input()))


@bp.activity_trigger(input_name="name")
def say(name: str) -> str:
    return f"hello {name}"


app = df.DFApp()
app.register_functions(bp)
'''


def write_app(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "function_app.py").write_text(textwrap.dedent(MINIMAL_APP))
    (app_dir / "local.settings.json").write_text(json.dumps(
        {"IsEncrypted": False, "Values": {"FROM_LOCAL": "local", "OVERRIDDEN": "local"}}))
    # No hubName: the default task hub is "TestHubName"; custom route prefix.
    (app_dir / "host.json").write_text(json.dumps(
        {"version": "2.0", "extensions": {"http": {"routePrefix": "fn"}}}))
    return app_dir


def test_settings_precedence_default_hub_and_route_prefix(
    tmp_path: Path, make_host: Callable[..., HostProcess]
) -> None:
    host = make_host(write_app(tmp_path), OVERRIDDEN="cli")
    body = http("GET", f"{host.base}/fn/env").json()
    # local.settings.json first, then --settings on top of it.
    assert (body["FROM_LOCAL"], body["OVERRIDDEN"]) == ("local", "cli")
    assert "taskHub=TestHubName" in body["status_url"]
    assert http("GET", f"{host.base}/api/env").status == 404
    # The app's own host.json has no durableTask section; its orchestrations still run.
    # The body the SDK client sends: a JSON string holding JSON (a raw "ada" would reach
    # the orchestrator as text its get_input() cannot decode, as in Azure).
    resp = host.webhook("POST", "orchestrators/hello/h1", body=json.dumps("ada"))
    assert resp.status == 202
    assert host.wait("h1")["output"] == "hello ada"


def test_start_and_wait_for_completion(host: HostProcess) -> None:
    done = host.webhook("POST", "orchestrators/chain/wait-1", "timeout=10&pollingInterval=0.05",
                        body=json.dumps(2))
    assert (done.status, done.json()) == (200, [0, 1])
    slow = host.webhook("POST", "orchestrators/sleepy/wait-2", "timeout=0.2&pollingInterval=0.05",
                        body=json.dumps(5))
    assert slow.status == 202
    assert slow.json()["id"] == "wait-2"
    host.op("terminate", "wait-2")


def test_invalid_instance_ids_are_rejected(host: HostProcess) -> None:
    assert host.webhook("POST", "orchestrators/chain/a%23b").status == 400
    assert host.webhook("POST", "orchestrators/chain/" + "x" * 300).status == 400


def test_burst_of_webhooks_has_no_server_errors(host: HostProcess) -> None:
    """A small alert storm: 400 concurrent starts for 20 instance ids."""

    async def storm() -> list[int]:
        connector = aiohttp.TCPConnector(limit=400)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def post(i: int) -> int:
                url = f"{host.base}/api/start/approval?id=storm-{i % 20}&code={host.function_key}"
                async with session.post(url, json=30) as resp:
                    await resp.read()
                    return resp.status

            return await asyncio.gather(*(post(i) for i in range(400)))

    codes = asyncio.run(storm())
    assert set(codes) <= {202, 409}  # refused (NonRunningStates) or accepted, never a 5xx
    # Creation is not atomic (check, then start message, then the row): starts that race
    # inside that window are all accepted, so a burst can see more than one 202 per id.
    assert codes.count(202) >= 20
    running = host.webhook("GET", "instances/", "instanceIdPrefix=storm-&runtimeStatus=Running,Pending")
    assert len(running.json()) == 20
    for i in range(20):
        host.op("terminate", f"storm-{i}")
