"""Issue 4, the user story: an Azure Monitor alert for vm1 while it sends a burst of TCP
traffic -> a real packet capture in Blob storage -> a summary -> one email. And the
duplicate delivery of that alert while the run is live starts nothing new.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobClient

from alertcap.domain.run import RUN_SCHEMA, RunResult
from alertcap.pcap import summarise_path
from alertcap.sdk.clients import parse_connection_string

from .scenarios import Observed
from .stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def alerted(runs: Any) -> Observed:
    return runs.get("alert_with_duplicate")


@pytest.fixture(scope="module")
def capture_file(stack: Stack, alerted: Observed, tmp_path_factory: pytest.TempPathFactory
                 ) -> Path:
    output = alerted["final"]["output"]
    parts = parse_connection_string(stack.endpoints["blob_connection_string"])
    blob = BlobClient.from_blob_url(output["summary"]["blob_url"], credential={
        "account_name": parts["accountname"], "account_key": parts["accountkey"]})
    local = tmp_path_factory.mktemp("capture") / "capture.cap"
    local.write_bytes(blob.download_blob().readall())
    return local


def test_the_alert_is_accepted_and_the_run_completes_with_a_capture(alerted: Observed) -> None:
    first, final = alerted["first"], alerted["final"]
    assert first.status == 202
    assert [i["state"] for i in first.body["instances"]] == ["started"]
    assert first.headers["Location"] == first.body["statusQueryGetUri"]
    assert "code=" not in first.headers["Location"]  # the webhook hands out no key
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "captured", output
    assert output["requested_by"] == "alert"
    assert output["vm_id"].lower().endswith("/virtualmachines/vm1")
    assert output["alert"]["alert_rule"] == alerted["alert"]["data"]["essentials"]["alertRule"]
    assert output["capture_status"]["status"] == "Stopped"
    assert output["error"] is None


def test_the_output_follows_the_documented_schema(alerted: Observed) -> None:
    output = alerted["final"]["output"]
    assert output["schema"] == RUN_SCHEMA == "alertcap.run/1"
    assert set(output) == {f.metadata.get("json", f.name) for f in dataclasses.fields(RunResult)}
    assert output["instance_id"] == alerted["first"].body["id"]
    # The status URL in the output is usable with the system key, and carries no key.
    assert output["status_url"] and "code=" not in output["status_url"]


def test_the_capture_blob_is_a_pcap_of_the_burst(alerted: Observed, capture_file: Path) -> None:
    port = alerted["sink_port"]
    assert capture_file.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4",
                                             b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    summary = summarise_path(capture_file).to_dict()
    assert summary["packets"] > 100
    assert any(p["port"] == port and p["proto"] == "tcp" for p in summary["top_dst_ports"])
    # And independently of our reader: tcpdump sees packets to the sink.
    seen = subprocess.run(["tcpdump", "-nr", str(capture_file), f"tcp dst port {port}"],
                          capture_output=True, text=True, check=True)
    assert len(seen.stdout.splitlines()) > 50


def test_the_summary_in_the_output_matches_the_file(alerted: Observed, capture_file: Path
                                                    ) -> None:
    summary = alerted["final"]["output"]["summary"]
    stats = summary["summary"]
    assert summary["size_bytes"] == capture_file.stat().st_size
    assert stats["packets"] == summarise_path(capture_file).packets > 0
    assert alerted["sink_port"] in [p["port"] for p in stats["top_dst_ports"]]


def test_exactly_one_email_names_the_vm_the_rule_and_the_read_link(
        stack: Stack, alerted: Observed) -> None:
    output = alerted["final"]["output"]
    messages = stack.emails_for(output)
    assert len(messages) == 1, [m["subject"] for m in messages]
    message = messages[0]
    rule = alerted["alert"]["data"]["essentials"]["alertRule"]
    assert "vm1" in message["subject"] and rule in message["subject"]
    assert message["to"] == ["oncall@alertcap.local"]
    link = output["summary"]["link"]
    assert link and "sig=" in link
    assert link in message["plainText"]
    assert output["notification"]["message_id"] == message["id"]
    verdict = output["summary"]["summary"]["verdict"]
    if verdict["abnormal"]:  # the subject is the answer: what is abnormal, and who
        assert verdict["headline"][:60] in message["subject"]
    else:
        assert f"{output['summary']['summary']['packets']:,} packets" in message["subject"]


def test_a_duplicate_alert_while_running_attaches_to_the_live_run(alerted: Observed) -> None:
    duplicate = alerted["duplicate"]
    assert duplicate.status == 200, (duplicate.status, duplicate.body)
    assert duplicate.body["id"] == alerted["first"].body["id"]
    assert [i["state"] for i in duplicate.body["instances"]] == ["running"]
    # Nothing new started: one capture on vm1 while the run lived, and one run's worth
    # of polls in the output.
    assert len(alerted["captures_while_running"]) == 1
    assert alerted["captures_while_running"][0]["name"] == alerted["final"]["output"][
        "capture"]["name"]


def test_the_email_arrives_within_seconds_of_the_capture_ending(
        stack: Stack, alerted: Observed) -> None:
    """The on-call reads the email, not the status URL: the run's configured LRO polling
    (ALERTCAP_LRO_POLLING_SECONDS, 0.2 s on the local stack) applies to the send too."""
    from datetime import datetime

    output = alerted["final"]["output"]
    (message,) = stack.emails_for(output)
    finished = datetime.fromisoformat(output["finished_at"].replace("Z", "+00:00"))
    received = datetime.fromisoformat(message["receivedAt"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(
        alerted["final"]["lastUpdatedTime"].replace("Z", "+00:00"))
    assert (received - finished).total_seconds() < 10
    assert (completed - received).total_seconds() < 10, (
        "the run completed long after the email was delivered: the send is polled slowly")
