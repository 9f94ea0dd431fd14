"""The doctor: before an alert fires, check everything a capture run would fail on, and
print the exact fix for each problem (issue #17).

For every target (ALERTCAP_DOCTOR_TARGETS: VM ids and resource groups, whose VMs are
listed through ARM; standby VMs will join this list): the VM's region has a Network
Watcher, with headroom under the capture limit; the agent is present, Succeeded, recent
and of the VM's OS; the capture storage account exists, allows shared keys (Network
Watcher writes with SAS), requires TLS 1.2, is Standard, in the VM's region and
reachable; the identity's effective permissions on each scope cover the actions the runs
call (`permissions.ACTIONS`); each configured notification channel is usable; no
settings contradict each other.

Boundary: `run(clients)` is pure over the app's `Clients` and `Settings` plus one
reachability probe; it never sends a notification and never raises for a failing check
(each check is isolated: an exception becomes a failed check). Callers: the CLI
(`python -m alertcap doctor`), `GET /api/doctor` and the timer (starters/doctor.py), whose
"notify once per problem" logic is in `alertcap.doctor.schedule`.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from alertcap.doctor import checks as C
from alertcap.doctor import permissions as perms
from alertcap.doctor.arm import Arm, region_of
from alertcap.doctor.channels import CHANNEL_CHECKS
from alertcap.doctor.model import Check, Report
from alertcap.errors import ConfigError
from alertcap.sdk.clients import Clients
from alertcap.settings import Settings

__all__ = ["Check", "Report", "http_probe", "run", "run_from_env"]

MAX_VMS = 500  # bounded work per run; the rest are named in the report, not checked
PROBE_TIMEOUT_SECONDS = 10.0


def http_probe(ca_bundle: str | None = None, timeout: float = PROBE_TIMEOUT_SECONDS
               ) -> C.Probe:
    """A probe that sends one HEAD to URL: None when anything answered (any HTTP status
    means the host is reachable), else why not. Never sends credentials."""
    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None

    def probe(url: str) -> str | None:
        request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - http(s) only
        if not url.startswith(("https://", "http://")):
            return "not an http(s) URL"
        try:
            with urllib.request.urlopen(request, timeout=timeout,  # noqa: S310
                                        context=context if url.startswith("https") else None):
                return None
        except urllib.error.HTTPError:
            return None  # it answered: reachable
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"{type(reason).__name__}: {reason}"

    return probe


def run(clients: Clients, arm: C.ArmReader | None = None, probe: C.Probe | None = None
        ) -> Report:
    s = clients.settings
    arm = arm or Arm(clients)
    probe = probe or http_probe(s.ca_bundle)
    checks: list[Check] = []
    checks += C.guard("settings", "app settings", lambda: C.settings_checks(s), s)

    vm_ids, target_checks = C.expand_targets(arm, s.doctor_targets)
    checks += target_checks
    notes: list[str] = []
    if len(vm_ids) > MAX_VMS:
        notes.append(f"{len(vm_ids) - MAX_VMS} VM(s) beyond the first {MAX_VMS} not checked")
        vm_ids = vm_ids[:MAX_VMS]

    storage_region, storage_checks = C.storage_checks(arm, s, probe)
    checks += storage_checks
    if s.storage_account_id:
        blob_identity = not s.blob_connection_string  # a key reads blobs without roles
        checks += C.permission_checks(
            arm, s.storage_account_id, [perms.CAPTURE_STORAGE], s,
            data_actions=perms.BLOB_READER_DATA_ACTIONS if blob_identity else (),
            extra_actions=perms.BLOB_READER_ACTIONS if blob_identity else (),
            extra_role="Storage Blob Data Reader")

    watchers: dict[tuple[str, str], dict[str, Any] | None] = {}
    for vm_id in vm_ids:
        checks += _vm(arm, vm_id, s, watchers, storage_region)

    for watcher in watchers.values():
        if watcher is not None:
            checks += C.limit_checks(arm, watcher, s)
            checks += C.permission_checks(arm, str(watcher.get("id")), [perms.WATCHERS], s)

    for channel in CHANNEL_CHECKS:
        checks += C.guard("channel", getattr(channel, "__name__", "channel"),
                          lambda ch=channel: ch(s, probe), s)  # type: ignore[misc]
    return Report(tuple(_unique(checks)), tuple(s.doctor_targets), tuple(notes))


def _vm(arm: C.ArmReader, vm_id: str, s: Settings,
        watchers: dict[tuple[str, str], dict[str, Any] | None],
        storage_region: str | None) -> list[Check]:
    found: dict[str, Any] = {}

    def read() -> list[Check]:
        found.update(arm.vm(vm_id))
        return []

    checks = C.guard("vm", vm_id, read, s)
    if not found:
        return checks  # unreadable: the dependent checks would only repeat the reason
    region = region_of(str(found.get("location") or ""))
    checks += C.guard("agent", vm_id, lambda: C.agent_checks(vm_id, found, s), s)
    checks += C.local_path_checks(vm_id, found, s)
    sub = C.sub_of(vm_id).lower()
    if (sub, region) not in watchers:
        watcher, watcher_checks = C.watcher_checks(arm, sub, region)
        watchers[(sub, region)] = watcher
        checks += watcher_checks
    checks += C.storage_region_checks(vm_id, region, storage_region, s)
    kinds = [perms.VMS, perms.AGENT] if s.policy.install_agent else [perms.VMS]
    checks += C.permission_checks(arm, vm_id, kinds, s)
    return checks


def _unique(checks: list[Check]) -> list[Check]:
    seen: set[tuple[str, str, str, str]] = set()
    out = []
    for c in checks:
        key = (c.name, c.subject.lower(), c.status, c.code)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def run_from_env(env: Mapping[str, str] | None = None, probe: C.Probe | None = None
                 ) -> Report:
    """The CLI's entry: settings that do not load are reported, not raised."""
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        problems = exc.detail.get("problems") or [exc.message]
        return Report(tuple(C.invalid_settings_checks([str(p) for p in problems])))
    return run(Clients(settings), probe=probe)
