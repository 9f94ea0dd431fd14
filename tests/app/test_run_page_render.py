"""The run page's renderers (starters/runs.py): every value escaped, the stop form only
while the run is live, links carrying the caller's key."""

from __future__ import annotations

from starters.runs import render_list, render_run, run_rows

EVIL = '<script>alert(1)</script>"'


def _record(**extra: object) -> dict[str, object]:
    return {"instance_id": "alertcap-vm1-0123456789ab", "vm_id": "/x/virtualMachines/vm1",
            "outcome": "captured", "alert": {"alert_rule": EVIL},
            "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:42Z",
            **extra}


def test_the_list_escapes_values_and_links_with_the_key() -> None:
    page = render_list(run_rows([_record()], []), "?code=k%26")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="runs/alertcap-vm1-0123456789ab?code=k%26"' in page
    assert "42 s" in page


def test_a_run_page_escapes_and_offers_stop_only_while_live() -> None:
    done = render_run("alertcap-vm1-0123456789ab", "Completed", {},
                      _record(reason=EVIL, summary={"link": 'https://x/"a"'}), [], "")
    assert "<script>" not in done and 'id="stop"' not in done
    assert 'href="https://x/&quot;a&quot;"' in done
    live = render_run("alertcap-vm1-0123456789ab", "Running", {"vm": EVIL,
                      "phase": "capturing"}, None,
                      [{"EventType": "TaskCompleted", "FunctionName": EVIL}], "?code=k")
    assert "<script>" not in live
    assert 'action="alertcap-vm1-0123456789ab/stop?code=k"' in live and 'id="stop"' in live
