"""Every setting reaches the code that uses it.

Two settings were once validated, documented and deployed, yet changed nothing. These
tests fail when a setting is read nowhere, and follow two of them from the environment
through the starter, the orchestrator, the summary activity and the email.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activities import notify as notify_activity
from activities.summary import summarise_capture
from alertcap.domain.run import CaptureOptions, RunPolicy
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings
from orchestrators.capture import capture_run
from starters.http import Starter
from tests.app.orchestration_harness import FakeContext, drive
from tests.app.test_orchestrator import Scenario
from tests.app.test_starters import FakeClient, call, fixture, post
from tests.pcap.pcapgen import Capture, ether, ipv4, udp

ROOT = Path(__file__).parent.parent.parent
APP = ("alertcap", "activities", "orchestrators", "starters")
AZURITE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
           "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
           "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")


def _attributes_read(skip: Path) -> set[str]:
    names: set[str] = set()
    for package in APP:
        for path in (ROOT / package).rglob("*.py"):
            if path == skip:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute):
                    names.add(node.attr)
    return names


def test_every_settings_field_is_read_outside_the_settings_module() -> None:
    read = _attributes_read(skip=ROOT / "alertcap" / "settings.py")
    for cls in (Settings, RunPolicy, CaptureOptions):
        unread = [f.name for f in dataclasses.fields(cls) if f.name not in read]
        assert not unread, f"{cls.__name__} fields that no code reads: {unread}"


def test_every_environment_setting_is_parsed() -> None:
    source = (ROOT / "alertcap" / "settings.py").read_text()
    from alertcap.settings import ENV

    body = source.split("def from_env", 1)[1]
    for name in ENV:
        assert re.search(rf'"{name}"', body), f"{name} is listed but never parsed"


# --- ALERTCAP_LINK_TTL_HOURS and ALERTCAP_SUMMARY_TOP, from env to email --------------


def _capture_bytes() -> bytes:
    """Six conversations of different sizes: the top N is visible in the tables."""
    cap = Capture()
    for i in range(6):
        for k in range(i + 1):
            cap.add(i + k * 0.01, ether(ipv4(f"10.0.0.{i + 10}", "10.0.1.1", 17,
                                             udp(1000 + i, 53, b"x" * 20))))
    return cap.pcap()


class _Blob:
    account_name = "devstoreaccount1"
    container_name = "network-watcher-logs"
    blob_name = "x.cap"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def download_blob(self, max_concurrency: int = 1) -> Any:
        stream = io.BytesIO(self.data)
        stream.size = len(self.data)  # type: ignore[attr-defined]
        return stream


class _Poller:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class _Email:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def begin_send(self, message: dict[str, Any], **_: Any) -> _Poller:
        self.sent.append(message)
        return _Poller({"id": "op-1", "status": "Succeeded"})


class _LocalClients(Clients):
    """Real Clients (settings, SAS signing) with the blob download and email send faked."""

    def __init__(self, settings: Settings, data: bytes) -> None:
        super().__init__(settings)
        self.data = data
        self.mail = _Email()

    def blob(self, blob_url: str) -> Any:
        return _Blob(self.data)

    def email(self) -> Any:
        return self.mail


def test_link_ttl_and_summary_top_change_the_email() -> None:
    settings = Settings.from_env({
        "ALERTCAP_STORAGE_ACCOUNT_ID": "/subscriptions/x/sa",
        "ALERTCAP_LINK_TTL_HOURS": "2", "ALERTCAP_SUMMARY_TOP": "3",
        "ALERTCAP_WEBHOOK_AUTH": "functionKey",
        "ALERTCAP_BLOB_CONNECTION_STRING": AZURITE,
        "ALERTCAP_EMAIL_SENDER": "alertcap@example.com",
        "ALERTCAP_EMAIL_RECIPIENTS": "oncall@example.com"})
    starter_client = FakeClient()
    call(Starter(starter_client, settings).alert(post(fixture("common-metric-fired.json"))))
    run_input = starter_client.started[0][2]

    clients = _LocalClients(settings, _capture_bytes())
    scenario = Scenario(["Running", "Stopped"])
    scenario.handlers[summarise_capture.name] = lambda p: summarise_capture.run(p, clients)
    scenario.handlers[notify_activity.send.name] = lambda p: notify_activity.send.run(p, clients)
    ctx = FakeContext(run_input, scenario.handlers)
    before = datetime.now(UTC)
    output = drive(ctx, capture_run(ctx))

    assert output["outcome"] == "captured", output
    (message,) = clients.mail.sent
    text, html = message["content"]["plainText"], message["content"]["html"]
    # A read link that expires two hours from now, not the default day.
    expires = datetime.fromisoformat(output["summary"]["link_expires"].replace("Z", "+00:00"))
    assert timedelta(hours=1, minutes=59) < expires - before <= timedelta(hours=2, minutes=1)
    link = output["summary"]["link"]
    assert parse_qs(urlsplit(link).query)["se"][0].startswith(expires.strftime("%Y-%m-%dT%H"))
    assert output["summary"]["link_expires"] in text
    # Tables of the top three, not the top ten: three of the six senders, the busiest.
    senders = set(re.findall(r"10\.0\.0\.(\d+)", text))
    assert senders == {"13", "14", "15"}, senders
    assert "10.0.0.12" not in html and "10.0.0.15" in html
    assert json.dumps(output["summary"]["summary"]["top_talkers"]).count("10.0.0.1") == 3
