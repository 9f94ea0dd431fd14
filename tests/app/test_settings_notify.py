"""Settings validation and the notification email's content."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alertcap.domain import email as notify
from alertcap.domain.run import RunResult
from alertcap.errors import ConfigError
from alertcap.settings import ENV, Settings

ROOT = Path(__file__).parent.parent.parent


def test_defaults_with_a_storage_account() -> None:
    s = Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": "/subscriptions/x/sa"})
    assert s.arm_endpoint == "https://management.azure.com"
    assert s.arm_scope == "https://management.azure.com/.default"
    assert s.policy.capture_limit == 10000
    assert s.capture.time_limit_seconds == 300 and s.capture.to_storage


def test_sovereign_cloud_scope_follows_the_endpoint() -> None:
    s = Settings.from_env({"ALERTCAP_ARM_ENDPOINT": "https://management.chinacloudapi.cn/",
                           "ALERTCAP_STORAGE_ACCOUNT_ID": "/sa"})
    assert s.arm_scope == "https://management.chinacloudapi.cn/.default"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"ALERTCAP_ARM_ENDPOINT": "http://insecure", "ALERTCAP_CAPTURE_LIMIT": "x",
                           "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS": "99999",
                           "ALERTCAP_EMAIL_RECIPIENTS": "ops@example.com, nobody",
                           "ALERTCAP_CAPTURE_FILTERS": "[{\"protocol\": \"ICMP\"}]"})
    problems = info.value.detail["problems"]
    text = " ".join(problems)
    for name in ("ALERTCAP_ARM_ENDPOINT", "ALERTCAP_CAPTURE_LIMIT",
                 "ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS", "ALERTCAP_EMAIL_RECIPIENTS",
                 "ALERTCAP_CAPTURE_FILTERS"):
        assert name in text


def test_repr_never_shows_connection_strings() -> None:
    s = Settings.from_env({"ALERTCAP_STORAGE_ACCOUNT_ID": "/sa",
                           "ALERTCAP_EMAIL_CONNECTION_STRING": "endpoint=https://x/;accesskey=SECRETKEY"})
    assert "SECRETKEY" not in repr(s) and "SECRETKEY" not in str(s)


def test_example_settings_document_every_setting_the_app_reads() -> None:
    example = (ROOT / "local.settings.json.example").read_text()
    for name in ENV:
        assert f'"{name}"' in example, name
    read = set(re.findall(r'"((?:ALERTCAP|AZURE)_[A-Z_]+)"', (ROOT / "alertcap" / "settings.py")
                          .read_text()))
    assert read <= set(ENV)


RUN = {
    "schema": "alertcap.run/1", "instance_id": "alertcap-vm1-0123", "outcome": "captured",
    "vm_id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
    "requested_by": "alert", "reason": "TimeExceeded",
    "alert": {"alert_rule": "vm1 <b>egress</b>", "fired_at": "2026-11-24T01:59:00Z",
              "severity": "Sev2"},
    "capture": {"watcher": {"id": "/nw", "name": "NetworkWatcher_eastus",
                            "resource_group": "NetworkWatcherRG",
                            "subscription_id": "00000000-0000-0000-0000-000000000000",
                            "location": "eastus"},
                "name": "alertcap-vm1-x-1", "id": "/nw/packetCaptures/alertcap-vm1-x-1",
                "storage_path": "https://sa/x.cap"},
    "capture_status": {"status": "Stopped", "stop_reason": "TimeExceeded", "errors": []},
    "summary": {"blob_url": "https://sa/x.cap", "link": "https://sa/x.cap?sig=abc&se=1",
                "summary": None},
    "status_url": "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/alertcap-vm1-0123",
    "started_at": "2026-11-24T02:00:00Z", "finished_at": "2026-11-24T02:05:00Z",
}


def test_email_names_vm_alert_outcome_file_and_status_url_escaped() -> None:
    email = notify.render(RunResult.from_dict(RUN))
    assert "vm1" in email.subject and "Capture finished" in email.subject
    assert "no summary" in email.subject  # never "capture captured"
    for text in (email.text, email.html):
        assert "TimeExceeded" in text and "alertcap-vm1-x-1" in text
        assert "https://sa/x.cap" in text and "2026-11-24T01:59:00Z" in text
        assert "durabletask/instances/alertcap-vm1-0123" in text
    assert "<b>egress</b>" not in email.html and "&lt;b&gt;egress&lt;/b&gt;" in email.html
    assert 'href="https://sa/x.cap?sig=abc&amp;se=1"' in email.html


def test_failure_email_says_failed_and_why() -> None:
    run = {**RUN, "outcome": "failed", "reason": "the Network Watcher agent is not installed",
           "error": {"type": "AgentMissing"}, "summary": None}
    email = notify.render(RunResult.from_dict(run))
    assert "FAILED" in email.subject and "agent is not installed" in email.subject
    assert "agent is not installed" in email.html
    assert "\n" not in email.subject


def test_the_email_opens_with_the_verdict_then_the_picture_then_the_tables() -> None:
    import io

    from alertcap import pcap
    from tests.pcap.pcapgen import SYN, Capture, ether, ipv4, tcp

    cap = Capture()
    for i in range(400):  # one host opens connections nobody answers: half-open, S0
        cap.add(i * 0.01, ether(ipv4("10.0.0.4", "10.0.0.5", 6, tcp(20000 + i, 443, i, 0, SYN))))
    stats = pcap.summarise(io.BytesIO(cap.pcap()), top=10).to_dict()
    run = RunResult.from_dict({**RUN, "summary": {"blob_url": "https://sa/x.cap",
                                                   "summary": stats}})
    email = notify.render(run)
    headline = stats["verdict"]["headline"]
    assert stats["verdict"]["abnormal"] and "10.0.0.4" in email.subject
    html = email.html
    # Verdict and findings, then the picture, then the tables, then the run's details.
    order = [html.index(headline.split(" (")[0][:40].replace("&", "&amp;")),
             html.index('src="cid:timeline"'), html.index("Top conversations"),
             html.index("<h3>Details</h3>")]
    assert order == sorted(order), order
    (image,) = email.inline
    assert image.content_id == "timeline" and image.data.startswith(b"\x89PNG\r\n\x1a\n")
    # The text part: the verdict in its first lines, tables cut to five rows.
    assert headline in "\n".join(email.text.splitlines()[:6])
