"""The on-call person's first screen: the alert's email, opened as a mail client would (the
local inbox resolves cid: images as webmail does), in headless Chromium. It opens with a
finding that names the culprit, the timeline picture is displayed, the evidence slices are
real pcaps, and the page logs no errors."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from .scenarios import Observed
from .stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def alerted(runs: Any) -> Observed:
    return runs.get("alert_with_duplicate")


def test_the_email_opens_with_the_culprit_and_shows_the_timeline(
        stack: Stack, alerted: Observed, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    output = alerted["final"]["output"]
    (message,) = stack.emails_for(output)
    stats = output["summary"]["summary"]
    findings = [f for f in stats["findings"] if f["severity"] != "info"]
    assert findings, stats["findings"]
    culprit = findings[0]["culprit"]
    assert culprit, findings[0]
    url = f"{stack.endpoints['email_url'].rstrip('/')}/inbox/{message['id']}"

    def through_python(route: Any) -> None:
        """The browser's requests go through Python, which trusts the local CA (the
        browser's own store does not know it); TLS is verified either way."""
        request = route.request
        with urllib.request.urlopen(urllib.request.Request(request.url), timeout=30,
                                    context=stack.tls) as r:
            route.fulfill(status=r.status, body=r.read(),
                          headers={"content-type": r.headers.get("content-type", "")})

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 1400})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("https://127.0.0.1*/**", through_python)
        page.goto(url)
        page.wait_for_load_state("load")
        image = page.locator('img[alt*="imeline"], img[src*="/cid/"]').first
        width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
        first_text = page.locator("body").inner_text()[:600]
        page.screenshot(path=str(tmp_path / "email.png"), full_page=True)
        browser.close()
    assert width >= 300, "the inline timeline image is not displayed"
    assert culprit in first_text, (culprit, first_text)
    assert not errors, errors


def test_the_evidence_slices_are_small_pcaps_of_the_culprits_packets(
        stack: Stack, alerted: Observed, tmp_path: Path) -> None:
    slices = alerted["final"]["output"]["summary"]["slices"]
    assert slices, "no evidence slices"
    first = slices[0]
    with urllib.request.urlopen(first["link"], timeout=30) as r:  # the read link works
        data = r.read()
    assert len(data) == first["size_bytes"] < alerted["final"]["output"]["summary"]["size_bytes"]
    path = tmp_path / "slice.pcap"
    path.write_bytes(data)
    seen = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True,
                          check=True)
    assert len(seen.stdout.splitlines()) == first["packets"] > 0
