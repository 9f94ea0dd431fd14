"""HTTP fault injection: what the SDK's retry policy does with 429/5xx from us."""

from __future__ import annotations

import random

import pytest
from azure.core.exceptions import HttpResponseError

from .conftest import WATCHER, WATCHER_RG

WATCHER_PATH = f"/networkWatchers/{WATCHER}"


def _gets(log: list[dict]) -> list[dict]:
    return [r for r in log if r["method"] == "GET" and r["path"].endswith(WATCHER_PATH)]


def test_429_retry_after_is_honoured_by_sdk(network, local):
    local.fault(method="GET", pathContains=WATCHER_PATH, status=429, retryAfter=1, count=1)
    before = len(_gets(local.requests_log()))
    assert network.network_watchers.get(WATCHER_RG, WATCHER).name == WATCHER
    first, second = _gets(local.requests_log())[before:]
    assert (first["status"], second["status"]) == (429, 200)
    # azure-core waited for Retry-After before asking again.
    assert second["timestamp"] - first["timestamp"] >= 0.95


def test_503_then_success(network, local):
    local.fault(method="GET", pathContains=WATCHER_PATH, status=503, retryAfter=0, count=1)
    before = len(_gets(local.requests_log()))
    network.network_watchers.get(WATCHER_RG, WATCHER)
    assert [r["status"] for r in _gets(local.requests_log())[before:]] == [503, 200]


def test_500_surfaces_when_retries_are_off(network, local):
    local.fault(pathContains=WATCHER_PATH, status=500, count=1)
    with pytest.raises(HttpResponseError) as err:
        network.network_watchers.get(WATCHER_RG, WATCHER, retry_total=0)
    assert err.value.status_code == 500
    assert err.value.error.code == "InternalServerError"
    # count=1: the rule is spent.
    assert network.network_watchers.get(WATCHER_RG, WATCHER, retry_total=0).name == WATCHER


def test_probability_rule_is_seeded(network, local):
    local.fault(pathContains=WATCHER_PATH, status=500, probability=0.5, seed=7)
    rng = random.Random(7)  # noqa: S311 - same sequence as the server's seeded rule
    expected = [rng.random() < 0.5 for _ in range(12)]
    seen = []
    for _ in range(12):
        try:
            network.network_watchers.get(WATCHER_RG, WATCHER, retry_total=0)
            seen.append(False)
        except HttpResponseError as exc:
            assert exc.status_code == 500
            seen.append(True)
    assert seen == expected and any(seen) and not all(seen)


def test_faults_are_cleared_and_listed(local, arm):
    local.fault(status=503, pathContains="nothing-matches-this", count=2)
    rules = local.s.get(f"{local.base}/_localdev/faults", **local.kw).json()["rules"]
    assert rules[0]["status"] == 503 and rules[0]["remaining"] == 2
    local.clear()
    assert local.s.get(f"{local.base}/_localdev/faults", **local.kw).json()["rules"] == []


def test_localdev_routes_need_the_bearer_token(arm):
    import requests

    r = requests.get(f"{arm['armUrl']}/_localdev/requests", verify=arm["certPath"], timeout=5)
    assert r.status_code == 401


def test_bad_fault_rule_is_400(local):
    r = local.s.post(f"{local.base}/_localdev/faults", json={"status": 200}, **local.kw)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "InvalidFaultRule"
