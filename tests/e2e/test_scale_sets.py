"""Issue 15 on the live stack: a scale-set alert captured scoped to the instances it names
(one real tcpdump and one blob per captured instance, each in the summary and the email),
and a multi-VM alert handed to one fan-out (a small answer; every target one run and one
capture; a retried delivery attaches to the fan-out).

The stack has a 3-instance scale set (conftest: LOCALDEV_VMSS_INSTANCES=3), each instance
a network namespace. Both scenarios hold the fault lock: a global ARM fault injected by
another scenario (a 403 on the watcher, 30 % flaky calls) would otherwise hit these runs.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from localdev.demo import demo_alert
from localdev.stack import scale_set_id

from .reliability import FANOUT_VMS
from .stack import Stack, flood

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def _exclusive(exclusive_stack: Stack) -> None:
    """This module starts runs: no background scenario's fault may meet them."""

CAPTURED = ("0", "2")  # of instances 0, 1, 2


@contextmanager
def instance_traffic(stack: Stack, iid: str, seconds: float = 8):
    """A sink on the host side of instance IID's link and a client inside its namespace."""
    with flood(stack.demo["scale_set_hosts"][iid], f"{stack.netns}-ss{iid}", seconds,
               20) as port:
        yield port


def _scale_set_alert() -> dict[str, Any]:
    ss = scale_set_id()
    alert = demo_alert(ss, datetime.now(UTC))
    alert["data"]["essentials"]["alertTargetIDs"] = [
        f"{ss}/virtualMachines/{i}".lower() for i in CAPTURED]
    return alert


def scale_set_capture(stack: Stack) -> dict[str, Any]:
    with ExitStack() as traffic:
        ports = {iid: traffic.enter_context(instance_traffic(stack, iid))
                 for iid in ("0", "1", "2")}
        time.sleep(0.5)
        first = stack.post_alert(_scale_set_alert())
        assert first.status == 202, (first.status, first.body)
        final = stack.wait(first.body["statusQueryGetUri"], timeout=90)
    return {"first": first, "final": final, "ports": ports}


def fan_out(stack: Stack) -> dict[str, Any]:
    vms = [stack.vm(name) for name in FANOUT_VMS]
    alert = demo_alert(vms[0], datetime.now(UTC))
    alert["data"]["essentials"]["alertTargetIDs"] = [v.lower() for v in vms]
    first = stack.post_alert(alert)
    assert first.status == 202, (first.status, first.body)
    again = stack.post_alert(alert)  # the action group retrying its delivery
    # Two 15 s captures with their polls and grace: about 40 s, more on a busy machine.
    final = stack.wait(first.body["statusQueryGetUri"], timeout=200)
    children = {o["vm_id"].rsplit("/", 1)[1]: stack.status(
        f"{stack.base}/runtime/webhooks/durabletask/instances/{o['instance_id']}")
        for o in final["output"]["outcomes"]}
    return {"first": first, "again": again, "final": final, "children": children,
            "captures": {name: stack.vm_captures(name) for name in FANOUT_VMS}}


@pytest.fixture(scope="module")
def observed(stack: Stack) -> dict[str, Any]:
    with stack.fault_lock, ThreadPoolExecutor(2) as pool:
        ss, fan = pool.submit(scale_set_capture, stack), pool.submit(fan_out, stack)
        return {"scale_set": ss.result(timeout=240), "fan_out": fan.result(timeout=240)}


def test_the_scale_set_run_captures_only_the_named_instances(observed: dict[str, Any]
                                                             ) -> None:
    run = observed["scale_set"]
    assert run["first"].body["accepted"] == 1
    (entry,) = run["first"].body["instances"]
    assert entry["state"] == "started" and "code=" not in entry["statusQueryGetUri"]
    final = run["final"]
    assert final["runtimeStatus"] == "Completed", final
    output = final["output"]
    assert output["outcome"] == "captured", output
    assert output["vm_id"].lower() == scale_set_id().lower()
    summary = output["summary"]
    assert [i["instance_id"] for i in summary["instances"]] == list(CAPTURED)
    for one in summary["instances"]:
        assert f"/virtualmachines/{one['instance_id']}/" in one["blob_url"].lower()
        assert one["summary"]["packets"] > 0
    assert summary["summary"]["packets"] == sum(
        i["summary"]["packets"] for i in summary["instances"])


def test_each_instance_blob_is_a_pcap_of_that_instance_only(
        stack: Stack, observed: dict[str, Any]) -> None:
    run = observed["scale_set"]
    ports = run["ports"]
    for one in run["final"]["output"]["summary"]["instances"]:
        dst = {p["port"] for p in one["summary"]["top_dst_ports"]}
        assert ports[one["instance_id"]] in dst, (one["instance_id"], dst)
        assert ports["1"] not in dst  # instance 1 was not in scope
        data = stack.download_blob(one["blob_url"])
        assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")


def test_one_email_names_each_captured_instance(stack: Stack, observed: dict[str, Any]
                                                ) -> None:
    output = observed["scale_set"]["final"]["output"]
    (message,) = stack.emails_for(output)
    assert "vmss1" in message["subject"]
    for iid in CAPTURED:
        assert f"Instance {iid}" in message["plainText"]
    assert "Instance 1:" not in message["plainText"]


def test_a_multi_vm_alert_answers_small_and_every_target_runs_once(
        stack: Stack, observed: dict[str, Any]) -> None:
    fan = observed["fan_out"]
    body = fan["first"].body
    assert body["state"] == "started" and body["accepted"] == len(FANOUT_VMS)
    assert "instances" not in body and "code=" not in body["statusQueryGetUri"]
    assert body["id"].startswith("alertcap-fanout-")
    # The retried delivery attaches to the fan-out: nothing new starts.
    assert fan["again"].status == 200, fan["again"].body
    assert (fan["again"].body["id"], fan["again"].body["state"]) == (body["id"], "running")
    final = fan["final"]
    assert final["runtimeStatus"] == "Completed", final
    out = final["output"]
    assert (out["targets"], out["captured"], out["failed"]) == (len(FANOUT_VMS),) * 2 + (0,)
    assert out["digest"] is None  # nothing failed: no digest
    for name in FANOUT_VMS:
        child = fan["children"][name]
        assert child["runtimeStatus"] == "Completed", child
        assert child["output"]["outcome"] == "captured", child["output"]
        assert len(fan["captures"][name]) == 1, fan["captures"][name]
        assert len(stack.emails_for(child["output"])) == 1
