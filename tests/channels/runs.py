"""Realistic ``alertcap.run/1`` outputs: captured with findings, failed, no summary."""

from __future__ import annotations

import copy
from typing import Any

from alertcap.channels import Links

VM_ID = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/demo-rg"
         "/providers/Microsoft.Compute/virtualMachines/vm1")
ALERT_ID = ("/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
            "Microsoft.AlertsManagement/alerts/b9569717-bc32-442f-add5-83a997729330")
LINKS = Links(run_page="https://alertcap.example/runs/alertcap-vm1-7fee9eea945d",
              capture="https://capstore.blob.core.windows.net/network-watcher-logs/x.cap"
                      "?se=2026-11-25T00%3A00%3A00Z&sp=r&sig=abc")

SUMMARY = {
    "schema": "alertcap.summary/1", "packets": 28169, "bytes": 30094698,
    "duration_s": 19.87, "start_iso": "2026-11-24T23:33:23Z",
    "tcp": {"syn": 1562, "syn_ack": 1522, "rst": 0, "fin": 4451, "retransmissions": 37,
            "packets": 28001, "retransmission_percent": 0.132,
            "new_connections_per_s": {"peak": 156, "peak_at": "2026-11-24T23:33:37Z",
                                      "average": 104.1}},
    "top_talkers": [{"host": "10.0.0.4", "bytes": 29000000, "packets": 20000}],
    "findings": [
        {"kind": "retransmissions", "severity": "low",
         "sentence": "0.13% of TCP segments were retransmitted.",
         "hosts": ["10.0.0.4"], "ports": [], "evidence": {"retransmissions": 37}},
        {"kind": "connection_burst", "severity": "high",
         "sentence": "10.0.0.4 opened 1,562 new TCP connections in 20 s, peaking at 156/s.",
         "hosts": ["10.0.0.4", "10.0.1.9"], "ports": [443, 8443],
         "evidence": {"syn": 1562, "peak_per_s": 156}},
        {"kind": "new_destination_port", "severity": "medium",
         "sentence": "Port 8443 appeared in the second half with 412 packets.",
         "hosts": ["10.0.1.9"], "ports": [8443], "evidence": {"packets": 412}},
    ],
}

CAPTURED: dict[str, Any] = {
    "schema": "alertcap.run/1", "instance_id": "alertcap-vm1-7fee9eea945d", "vm_id": VM_ID,
    "outcome": "captured", "reason": "TimeExceeded", "error": None, "requested_by": "alert",
    "alert": {"schema": "azureMonitorCommonAlertSchema", "alert_id": ALERT_ID,
              "alert_rule": "vm1-outbound-flows-unusual", "severity": "Sev1",
              "condition": "Outbound Flows > dynamic", "fired_at": "2026-11-24T23:33:00Z",
              "description": "", "signal_type": "Metric"},
    "watcher": {"name": "NetworkWatcher_eastus", "location": "eastus"},
    "capture": {"name": "alertcap-vm1-7fee9eea945d-1", "storage_path": "https://sa/x.cap"},
    "capture_status": {"status": "Stopped", "stop_reason": "TimeExceeded", "errors": []},
    "stopped_by": "network-watcher", "polls": 9,
    "summary": {"blob_url": "https://sa/x.cap", "link": LINKS.capture, "size_bytes": 30094698,
                "summary": SUMMARY, "warnings": []},
    "notification": None,
    "status_url": "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/x",
    "started_at": "2026-11-24T23:33:05Z", "finished_at": "2026-11-24T23:34:10Z",
    "warnings": [],
}

FAILED: dict[str, Any] = {
    **copy.deepcopy(CAPTURED), "outcome": "failed",
    "reason": "the Network Watcher agent is not installed on vm1",
    "error": {"type": "AgentMissing", "code": "AgentMissing", "status": None,
              "message": "the Network Watcher agent is not installed on vm1"},
    "summary": None, "capture": None, "capture_status": None, "stopped_by": "failure",
}
FAILED["alert"]["severity"] = "Sev3"

NO_SUMMARY: dict[str, Any] = {**copy.deepcopy(CAPTURED),
                              "summary": {"blob_url": "https://sa/x.cap", "summary": None}}


def captured(**alert: Any) -> dict[str, Any]:
    run = copy.deepcopy(CAPTURED)
    run["alert"].update(alert)
    return run
