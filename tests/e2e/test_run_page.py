"""Issue 16: the run page, used as a person does, in headless Chromium at phone width: the
list shows a live run, its page shows the stop button, pressing it ends the capture, and
the finished run's page shows its verdict, its timeline picture and its files, with no
console errors. The functions host is plain HTTP on 127.0.0.1; the page works with the
function key it was opened with (`?code=`), no JavaScript of ours involved.

The run is storm013's (see reliability.EXTRA_VMS): no other scenario uses that VM.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest

from .stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _exclusive(exclusive_stack: Stack) -> None:
    """This module starts runs: no background scenario's fault may meet them."""

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]
PHONE = {"width": 390, "height": 844}


def test_the_run_page_lists_stops_and_shows_a_run(stack: Stack, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    r = stack.start_capture(stack.vm("storm013"), seconds=90)
    assert r.status == 202, (r.status, r.body)
    instance, status_url = r.body["id"], r.body["statusQueryGetUri"]
    stack.wait_phase(status_url, "capturing", timeout=60)
    code = urllib.parse.quote(stack.function_key)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=PHONE)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("response", lambda x: errors.append(f"{x.status} {x.url.split('?')[0]}")
                if x.status >= 400 else None)
        with stack.traffic("vm2", seconds=4):  # loopback: storm013 captures on lo
            page.goto(f"{stack.base}/api/runs?code={code}")
            row = page.locator("#runs tr", has_text=instance)
            assert row.count() == 1, page.locator("body").inner_text()[:2000]
            assert "storm013" in row.inner_text()
            row.locator("a").click()
            page.wait_for_load_state("load")
            assert page.locator("#status").inner_text() in ("Running", "Pending")
            time.sleep(4)  # the burst is in the capture before it is stopped
        started_stop = time.monotonic()
        page.locator("#stop").click()  # a plain form post, answered 303 to the run page
        page.wait_for_load_state("load")
        assert page.url.split("?")[0].endswith(f"/api/runs/{instance}"), page.url
        final = stack.wait(status_url, timeout=60)
        stop_to_done = time.monotonic() - started_stop
        page.reload()
        text = page.locator("body").inner_text()
        width = page.locator("#timeline").evaluate(
            "img => img.complete ? img.naturalWidth : 0")
        overflow = page.evaluate("document.documentElement.scrollWidth")
        files = page.locator("#files a").count()
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
        browser.close()
    out = final["output"]
    assert final["runtimeStatus"] == "Completed" and out["stopped_by"] == "operator", out
    assert stop_to_done < 40, stop_to_done  # the time limit was 90 s
    assert "Completed" in text and "captured" in text
    assert out["summary"]["summary"]["verdict"]["headline"] in text, text[:2000]
    assert width >= 300, "the timeline picture is not displayed"
    assert files >= 1, "no capture link on the page"
    assert overflow <= PHONE["width"], f"the page is {overflow}px wide at phone width"
    assert not errors, errors


def test_bad_run_ids_get_json_errors(stack: Stack) -> None:
    from .stack import http

    for path, method in (("runs/nope", "GET"), ("runs/alertcap-vm9-000000000000", "GET"),
                         ("runs/nope/timeline.png", "GET"), ("runs/nope/stop", "POST")):
        r = http(method, f"{stack.base}/api/{path}?code={stack.function_key}")
        assert r.status == 404 and r.body["error"]["code"] == "InstanceNotFound", (path, r)
