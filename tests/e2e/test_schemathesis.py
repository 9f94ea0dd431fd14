"""Schemathesis against the OpenAPI description the app publishes (GET /api/openapi.json),
over HTTP to the live host: data that fits the schema and data that breaks it. Whatever
arrives, the answer is never a 5xx, and every refusal is a JSON error."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from .stack import Stack, http

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROUTES = [("/alerts", "POST"), ("/captures", "POST"), ("/captures/{instanceId}/stop", "POST")]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
ROUTED = re.compile(r"^/api/(alerts|captures|captures/[^/]+/stop)$")


@pytest.fixture(scope="module")
def published(stack: Stack) -> Any:
    r = http("GET", f"{stack.base}/api/openapi.json?code={stack.function_key}")
    assert r.status == 200
    return schemathesis.openapi.from_dict(r.body)


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
@pytest.mark.parametrize(("path", "method"), ROUTES, ids=lambda v: str(v))
def test_published_routes_never_answer_5xx(published: Any, stack: Stack, path: str,
                                           method: str, mode: GenerationMode) -> None:
    operation = published[path][method]
    session = requests.Session()
    tried = []

    @settings(max_examples=40, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), key=st.just(stack.function_key))
    def check(case: Any, key: str) -> None:
        response = case.call(base_url=f"{stack.base}/api", session=session,
                             params={**(case.query or {}), "code": key}, timeout=30)
        tried.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text[:300])
        if response.status_code >= 400:
            if response.status_code == 404 and not ROUTED.match(urlsplit(response.request.url).path):
                return  # an id with "/" (or none) never reaches the app: the host's own 404
            body = json.loads(response.text)
            assert set(body["error"]) >= {"code", "message"}, body

    check()
    assert len(tried) >= 10  # the schema really produced cases for this route
