"""The fan-out of a big alert (orchestrators/fanout.py), stepped with scripted child runs:
batches bounded by the cap, live targets reported running, one digest for the failures."""

from __future__ import annotations

from typing import Any

from activities.notify import send as notify
from alertcap.domain.run import CURRENT_VERSION, AlertInfo, Notification, RunPolicy
from alertcap.domain.targets import Scope, instance_id_for_target
from alertcap.domain.vm import VmRef
from orchestrators.capture import ORCHESTRATOR
from orchestrators.fanout import FanoutInput, FanoutTarget, fanout_run
from tests.app.orchestration_harness import ActivityFailed, FakeContext, drive, ok

SUB = "00000000-0000-0000-0000-000000000000"
FAN_ID = "alertcap-fanout-0123456789ab"
LIVE = "An Orchestration instance with the status Running already exists. \n "


def vm(i: int) -> VmRef:
    return VmRef.parse(f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                       f"Microsoft.Compute/virtualMachines/web{i:03d}")


class Children:
    """Child capture runs: each VM's scripted answer ("captured" unless told otherwise)."""

    def __init__(self, failed: dict[int, str] | None = None, live: tuple[int, ...] = ()
                 ) -> None:
        self.failed = failed or {}
        self.live = live
        self.inputs: list[dict[str, Any]] = []
        self.emails: list[dict[str, Any]] = []

    def run(self, inp: dict[str, Any], instance_id: str) -> dict[str, Any]:
        self.inputs.append(inp)
        name = inp["request"]["vm_id"].rsplit("/", 1)[1]
        i = int(name.removeprefix("web"))
        if i in self.live:
            raise ActivityFailed(LIVE)
        if i in self.failed:
            return {"instance_id": instance_id, "outcome": "failed", "reason": self.failed[i]}
        return {"instance_id": instance_id, "outcome": "captured", "reason": "TimeExceeded"}

    def notify(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.emails.append(payload)
        return ok(Notification("digest-1", ("oncall@example.com",), "Succeeded"))


def fan(n: int, concurrency: int, targets: tuple[FanoutTarget, ...] | None = None,
        children: Children | None = None) -> tuple[FakeContext, Children, dict[str, Any]]:
    kids = children or Children()
    inp = FanoutInput(
        targets=targets or tuple(FanoutTarget(vm(i)) for i in range(n)),
        alert=AlertInfo(schema="common", alert_rule="web-flows", fired_at="2026-11-24T01:59:00Z"),
        policy=RunPolicy(notify_first_retry_seconds=10), concurrency=concurrency,
        status_url="http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/" + FAN_ID)
    ctx = FakeContext(inp.to_dict(), {f"sub:{ORCHESTRATOR}": kids.run, notify.name: kids.notify},
                      instance_id=FAN_ID)
    return ctx, kids, drive(ctx, fanout_run(ctx))


def test_targets_run_in_batches_no_larger_than_the_cap_each_once() -> None:
    ctx, kids, out = fan(7, concurrency=3)
    assert [len(b) for b in ctx.batches] == [3, 3, 1]
    started = [iid for batch in ctx.batches for iid in batch]
    assert started == [instance_id_for_target(vm(i), None) for i in range(7)]
    # Each child is a capture run of the current version that leaves failures to the digest.
    assert {(c["version"], c["request"]["digest_of"]) for c in kids.inputs} == {
        (CURRENT_VERSION, FAN_ID)}
    assert (out["targets"], out["captured"], out["failed"], out["already_running"]) == (
        7, 7, 0, 0)
    assert [s["started"] for s in ctx.statuses if s.get("phase") == "starting"] == [3, 6, 7]


def test_when_every_target_is_captured_no_email_is_sent() -> None:
    ctx, kids, out = fan(5, concurrency=2)
    assert kids.emails == [] and out["digest"] is None
    assert notify.name not in [name for name, _ in ctx.calls]
    assert ctx.statuses[-1]["phase"] == "done"


def test_a_target_whose_run_is_live_is_reported_running_not_failed() -> None:
    _, kids, out = fan(4, concurrency=4, children=Children(live=(1, 3)))
    by = {o["vm_id"].rsplit("/", 1)[1]: o["outcome"] for o in out["outcomes"]}
    assert by == {"web000": "captured", "web001": "running", "web002": "captured",
                  "web003": "running"}
    assert (out["captured"], out["already_running"], out["failed"]) == (2, 2, 0)
    assert kids.emails == []  # a live run is not a failure: it sends its own email


def test_failures_of_one_alert_become_one_digest_naming_each() -> None:
    children = Children(failed={0: "no Network Watcher in eastus", 4: "agent missing",
                                5: "limit reached"}, live=(2,))
    ctx, kids, out = fan(6, concurrency=2, children=children)
    assert (out["captured"], out["failed"], out["already_running"]) == (2, 3, 1)
    assert len(kids.emails) == 1 and out["digest"] == "Succeeded"
    digest = kids.emails[0]["run"]
    assert digest["outcome"] == "failed" and digest["instance_id"] == FAN_ID
    assert digest["reason"].startswith("3 of 6 targets of this alert failed")
    for name, why in (("web000", "no Network Watcher"), ("web004", "agent missing"),
                      ("web005", "limit reached")):
        assert f"{name}: {why}" in digest["reason"]
    assert "web002" not in digest["reason"] and "web001" not in digest["reason"]
    # The digest goes out after every batch finished.
    assert [name for name, _ in ctx.calls][-1] == notify.name


def test_a_long_digest_is_cut_and_says_how_many_more() -> None:
    children = Children(failed={i: "agent missing" for i in range(60)})
    _, kids, out = fan(60, concurrency=20, children=children)
    assert out["failed"] == 60 and len(kids.emails) == 1
    reason = kids.emails[0]["run"]["reason"]
    assert reason.count("agent missing") == 50 and "and 10 more" in reason


def test_scale_set_targets_keep_their_scope_and_their_own_instance_ids() -> None:
    ss = VmRef.parse_scale_set(f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                               "Microsoft.Compute/virtualMachineScaleSets/web")
    other = VmRef.parse_scale_set(f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                                  "Microsoft.Compute/virtualMachineScaleSets/api")
    targets = (FanoutTarget(ss, Scope.of(["0", "2"])), FanoutTarget(other, Scope()))

    def run(inp: dict[str, Any], instance_id: str) -> dict[str, Any]:
        seen.append((inp["request"]["scope"], instance_id))
        return {"outcome": "captured"}

    seen: list[tuple[Any, str]] = []
    inp = FanoutInput(targets=targets, concurrency=5)
    ctx = FakeContext(inp.to_dict(), {f"sub:{ORCHESTRATOR}": run}, instance_id=FAN_ID)
    out = drive(ctx, fanout_run(ctx))
    assert out["captured"] == 2
    assert seen == [({"include": ["0", "2"], "exclude": []},
                     instance_id_for_target(ss, Scope(("0", "2")))),
                    ({"include": [], "exclude": []}, instance_id_for_target(other, Scope()))]
    assert seen[0][1] != instance_id_for_target(ss, Scope())
