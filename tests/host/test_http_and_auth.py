"""HTTP triggers, auth levels, host endpoints and what the host logs."""

from __future__ import annotations

from .conftest import HostProcess, http


def test_anonymous_route_params_query_and_headers(host: HostProcess) -> None:
    resp = host.api("GET", "hello/ada?q=x", key=None)
    assert resp.status == 200
    assert resp.json() == {"hello": "ada", "q": "x"}
    assert resp.headers["X-Sample"] == "yes"
    assert resp.headers["Content-Type"].startswith("application/json")


def test_async_function_body_and_status(host: HostProcess) -> None:
    resp = host.api("POST", "echo", key=None, raw=b"raw bytes")
    assert (resp.status, resp.body) == (201, b"raw bytes")


def test_unhandled_exception_is_500_and_logged_as_failed(host: HostProcess) -> None:
    assert host.api("GET", "boom", key=None).status == 500
    assert "Executed 'Functions.boom' (Failed" in host.stderr()


def test_unknown_route_and_wrong_method_are_404(host: HostProcess) -> None:
    assert host.api("GET", "nope", key=None).status == 404
    assert host.api("GET", "echo", key=None).status == 404


def test_function_level_auth(host: HostProcess) -> None:
    path = "ops/status_all"
    assert host.api("GET", path, key=None).status == 401
    assert http("GET", f"{host.base}/api/{path}?code=wrong").status == 401
    assert host.api("GET", path, key="function").status == 200
    assert host.api("GET", path, key="master").status == 200
    header = http("GET", f"{host.base}/api/{path}", headers={"x-functions-key": host.function_key})
    assert header.status == 200


def test_admin_level_needs_the_master_key(host: HostProcess) -> None:
    assert host.api("GET", "adminonly", key="function").status == 401
    assert host.api("GET", "adminonly", key=None).status == 401
    resp = host.api("GET", "adminonly", key="master")
    assert (resp.status, resp.body) == (200, b"admin ok")


def test_readiness_and_host_status(host: HostProcess) -> None:
    assert http("GET", host.base + "/").status == 200
    assert http("GET", host.base + "/admin/host/status").status == 401
    fkey = http("GET", f"{host.base}/admin/host/status?code={host.function_key}")
    assert fkey.status == 401
    resp = http("GET", f"{host.base}/admin/host/status?code={host.master_key}")
    assert resp.status == 200
    assert resp.json()["state"] == "Running"


def test_webhooks_need_system_or_master_key(host: HostProcess) -> None:
    assert host.webhook("GET", "instances/", key=None).status == 401
    assert host.webhook("GET", "instances/", key="function").status == 401
    assert host.webhook("GET", "instances/", key="system").status == 200
    assert host.webhook("GET", "instances/", key="master").status == 200


def test_keys_file_shape(host: HostProcess) -> None:
    keys = host.keys
    assert set(keys) == {"masterKey", "functionKeys", "systemKeys"}
    assert set(keys["functionKeys"]) == {"default"}
    assert set(keys["systemKeys"]) == {"durabletask_extension"}
    assert len({keys["masterKey"], host.function_key, host.system_key}) == 3
    assert (host.state_dir / "host-keys.json").stat().st_mode & 0o077 == 0


def test_logs_name_urls_and_keys_file_but_never_secrets(host: HostProcess) -> None:
    host.api("GET", "ops/status_all", key="function")
    http("GET", f"{host.base}/api/ops/status_all", headers={"x-functions-key": host.master_key})
    host.webhook("GET", "instances/", key="system")
    resp = host.start_orchestration("chain", "logcheck", 1)
    assert resp.status == 202
    host.wait("logcheck")
    logs = host.stderr() + (host.state_dir / "host.log").read_text()
    for secret in (host.function_key, host.master_key, host.system_key):
        assert secret not in logs
    assert "host-keys.json" in logs
    assert f"{host.base}/api/hello/{{name}}" in logs
    assert "Executing 'Functions.chain' (Reason=" in logs
    assert "Executed 'Functions.noop' (Succeeded, Id=" in logs


def test_client_binding_urls_point_at_this_host(host: HostProcess) -> None:
    payload = host.op("payload", "some-id")
    assert payload["id"] == "some-id"
    status_url = payload["statusQueryGetUri"]
    assert status_url.startswith(f"{host.base}/runtime/webhooks/durabletask/instances/some-id?")
    assert "taskHub=SampleHub" in status_url
    # The URL works as handed out: it carries the system key, like the extension's.
    assert http("GET", status_url).status == 404
    assert http("GET", status_url.replace("code=", "code=x")).status == 401
