"""Standby (ring-buffer) captures: the settings that shape a VM's ring, the names of its
capture and keeper, and what a harvest found. Pure data and arithmetic; no I/O.

A standby VM keeps one continuous Network Watcher capture of ours (NETWORK-WATCHER.md,
"Continuous capture"): `file_count` files of at most `file_size_bytes`, the oldest deleted
when a new one closes. On an alert the run copies the files that cover
[firedDateTime - lookback, now] out of the ring ("harvest") before rotation deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from alertcap.domain.vm import VmRef, _slug
from alertcap.domain.wire import Model

MODES = ("both", "harvest-only")  # harvest-only: no after-alert capture when the ring has files
# Network Watcher's limits for captureSettings (REST spec 2024-05-01).
MAX_FILE_COUNT = 10_000
MAX_FILE_SIZE_BYTES = 4_294_967_295
MAX_SESSION_SECONDS = 604_800
HARVEST_FOLDER = "alertcap-harvest"  # beside the ring's folder, out of rotation's reach


@dataclass(frozen=True)
class RingSettings(Model):
    file_count: int = 10
    file_size_bytes: int = 104_857_600
    session_seconds: int = 86_400

    @property
    def ring_bytes(self) -> int:
        return self.file_count * self.file_size_bytes


@dataclass(frozen=True)
class StandbySettings(Model):
    """From ALERTCAP_STANDBY_* (alertcap.settings)."""

    targets: tuple[str, ...] = ()  # VM ids (standby) and resource-group ids (tag search)
    tag: str = "alertcap-standby"  # VMs tagged <tag>=true in a listed group are standby
    ring: RingSettings = RingSettings()
    max_ring_bytes: int = 2_147_483_648  # cost guard: file_count * file_size_bytes per VM
    check_seconds: int = 300  # how often a keeper looks at its ring
    renew_before_seconds: int = 900  # renew when the session has less than this left

    @property
    def enabled(self) -> bool:
        return bool(self.targets)


def ring_capture_name(prefix: str, vm: VmRef) -> str:
    # "." keeps it outside capture_prefix_for(prefix, vm) ("prefix-..."): a run's stale
    # capture sweep must never delete the ring.
    return f"{prefix}.standby-{_slug(vm.name, 30)}-{vm.digest[:8]}"


def keeper_instance_id(vm: VmRef) -> str:
    return f"alertcap-standby-{_slug(vm.name, 40)}-{vm.digest[:12]}"


@dataclass(frozen=True)
class HarvestedFile(Model):
    url: str  # the copy beside the run's results
    source: str  # the ring blob it was copied from (rotation will delete that one)
    closed_at: str  # when the ring closed the file (its blob name says so)
    first_packet_at: str | None = None
    size_bytes: int = 0
    link: str | None = None
    link_expires: str | None = None


@dataclass(frozen=True)
class Harvest(Model):
    """What a run found in its VM's ring. `standby` False: the VM has no ring of ours."""

    standby: bool = False
    ring: str | None = None  # the ring capture's name
    ring_status: str | None = None
    alert_time: str | None = None
    window_start: str | None = None
    window_end: str | None = None
    files: tuple[HarvestedFile, ...] = ()
    missing: tuple[str, ...] = ()  # "HH:MM:SS-HH:MM:SS UTC: why" for each uncovered span
    warnings: tuple[str, ...] = ()

    @property
    def reaches_before_alert(self) -> bool:
        return bool(self.files) and bool(self.alert_time) and any(
            (f.first_packet_at or f.closed_at) < str(self.alert_time) for f in self.files)
