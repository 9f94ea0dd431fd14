"""One packet capture session: a real tcpdump on the VM's interface (or namespace).

Boundary: runs and watches tcpdump, enforces the session's limits, and on stop puts
the libpcap file where Network Watcher would (the storage account's blob, through
Azurite, and/or the VM-local file path mapped under ``<state>/vms/<vm>/``).

Stop reasons: ``TimeExceeded`` is the one Network Watcher documents (REST/PowerShell/CLI
samples of queryStatus); for a manual stop and a full session we report
``STOP_MANUAL``/``STOP_SESSION_BYTES`` below (not found in public docs).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import logging
import shutil
import signal
import struct
import threading
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from .config import Vm

log = logging.getLogger("localdev.arm.captures")

CONTAINER = "network-watcher-logs"
STOP_TIME = "TimeExceeded"
STOP_MANUAL = "Manual"
STOP_SESSION_BYTES = "SessionBytesExceeded"
LISTEN_TIMEOUT = 10.0
TICK = 0.05


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def blob_name(machine_id: str, at: dt.datetime) -> str:
    """Network Watcher's blob name: the captured machine's resource id, lower-cased, then
    the UTC date and time. For a VM that is the documented path
    (subscriptions/.../microsoft.compute/virtualmachines/{vm}/{yyyy}/{MM}/{dd}/
    packetcapture_{HH}_{mm}_{ss}_{fff}.cap); for a scale-set instance the same rule gives
    .../virtualmachinescalesets/{vmss}/virtualmachines/{instanceId}/... (inferred: no
    published sample of a scale-set capture's blob was found)."""
    return (
        f"{machine_id.strip('/').lower()}"
        f"/{at:%Y/%m/%d}/packetcapture_{at:%H_%M_%S}_{at.microsecond // 1000:03d}.cap"
    )


def blob_url(connection_string: str, name: str) -> str:
    # Builds the URL only; no request is made.
    client = BlobServiceClient.from_connection_string(connection_string)
    return client.get_blob_client(CONTAINER, name).url


def vm_local_path(state_dir: Path, vm: Vm, file_path: str) -> Path:
    """Where a VM-local filePath lands on this machine (ValueError when it escapes)."""
    if vm.os_type.lower() == "windows":
        p = PureWindowsPath(file_path)
        if not p.drive:
            raise ValueError("filePath must be an absolute Windows path")
        parts = [p.drive.rstrip(":"), *p.parts[1:]]
    else:
        q = PurePosixPath(file_path)
        if not q.is_absolute():
            raise ValueError("filePath must be an absolute path")
        parts = list(q.parts[1:])
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ValueError("filePath is not a plain file path")
    return state_dir / "vms" / vm.name / Path(*parts)


def _die_with_parent() -> None:
    # Safety net: if the ARM server dies without cleaning up, tcpdump dies too.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Capture:
    def __init__(
        self,
        *,
        resource_id: str,
        name: str,
        subscription: str,
        vm: Vm,
        properties: dict,
        bpf: str,
        work_dir: Path,
        connection_string: str | None,
        blob: str | None,
        local_file: Path | None,
        fault: dict | None,
        continuous: dict | None = None,
    ) -> None:
        self.id, self.name, self.subscription, self.vm = resource_id, name, subscription, vm
        self.properties = properties
        self.bpf = bpf
        self.work_file = work_dir / f"{uuid.uuid4().hex}.cap"
        self.connection_string, self.blob, self.local_file = connection_string, blob, local_file
        self.fault = fault
        # Continuous capture: {"fileCount", "fileSizeInBytes", "sessionTimeLimitInSeconds"};
        # tcpdump rotates (-C), each closed file goes to its own blob, the oldest blobs
        # are deleted past fileCount (Microsoft's packet capture overview).
        self.continuous = continuous
        self.blob_prefix = vm.id if continuous else None
        self.shipped: list[str] = []
        self._splitter: asyncio.Task | None = None
        # The monitor loop and stop() both ship ring files, from worker threads.
        self._ship_lock = threading.Lock()
        self.provisioning_state = "Updating"
        self.status = "NotStarted"
        self.stop_reason = ""
        self.errors: list[str] = []
        self.start_time: dt.datetime | None = None
        self.started = asyncio.Event()  # left NotStarted (Running or Error)
        self.finished = asyncio.Event()  # Stopped or Error, files in place
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._stopping = False

    # ---- lifecycle -------------------------------------------------------------
    def argv(self) -> list[str]:
        snap = int(self.properties.get("bytesToCapturePerPacket") or 0)
        cmd = [
            "tcpdump",
            "-i",
            self.vm.interface,
            "-w",
            str(self.work_file),
            "-U",
            "-n",
            "-Z",
            "root",
            "--immediate-mode",
            "-s",
            str(snap),
        ]
        if self.continuous:
            # tcpdump's own -C rotates in whole megabytes (4.99.3 refuses "20k"): it
            # writes the stream to stdout and _split cuts files at fileSizeInBytes.
            cmd[cmd.index("-w") + 1] = "-"
        bpf = self.bpf
        if self.vm.interface == "lo" and self.vm.ip_address != "127.0.0.1":
            # A VM's NIC carries its own address's traffic only. A stand-in VM on loopback
            # has an address of its own in 127/8, and only that is captured: loopback
            # also carries the stack's own traffic (blob uploads of other captures among
            # it), which would otherwise feed every capture into the next one.
            bpf = f"host {self.vm.ip_address}" + (f" and ({bpf})" if bpf else "")
        if bpf:
            cmd.append(bpf)
        if self.vm.netns:
            cmd = ["ip", "netns", "exec", self.vm.netns, *cmd]
        return cmd

    async def start(self) -> None:
        self.work_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if self.continuous
                else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log.warning("capture %s: cannot run tcpdump: %s", self.name, exc)
            self._error("CaptureFailed")
            return
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.continuous:
            self._splitter = asyncio.get_running_loop().create_task(self._split())

    async def _split(self) -> None:
        """Cut tcpdump's libpcap stream into ring files of at most fileSizeInBytes (a file
        always holds at least one packet), named x.cap1, x.cap2, ...: the newest is open."""
        assert self._proc is not None and self._proc.stdout is not None
        out = self._proc.stdout
        limit = max(1, int(self.continuous["fileSizeInBytes"])) if self.continuous else 0
        try:
            header = await out.readexactly(24)
        except asyncio.IncompleteReadError:
            return
        order = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        index, f, size = 0, None, 0
        try:
            while True:
                try:
                    rec = await out.readexactly(16)
                    data = await out.readexactly(struct.unpack(order + "I", rec[8:12])[0])
                except asyncio.IncompleteReadError:
                    return
                if f is None or (size > 24 and size + 16 + len(data) > limit):
                    if f is not None:
                        f.close()
                    index += 1
                    f = open(f"{self.work_file}{index}", "wb")  # noqa: SIM115 - rotated below
                    f.write(header)
                    size = 24
                f.write(rec + data)
                f.flush()
                size += 16 + len(data)
        finally:
            if f is not None:
                f.close()

    async def _wait_listening(self) -> bool:
        assert self._proc is not None and self._proc.stderr is not None
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                return False
            if b"listening on" in line:
                return True
            log.info("capture %s tcpdump: %s", self.name, line.decode(errors="replace").strip())

    async def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while await self._proc.stderr.readline():
            pass

    async def _run(self) -> None:
        assert self._proc is not None
        try:
            ok = await asyncio.wait_for(self._wait_listening(), LISTEN_TIMEOUT)
        except TimeoutError:
            ok = False
        if not ok:
            await self._kill()
            self._error("CaptureFailed")
            return
        drain = asyncio.get_running_loop().create_task(self._drain())
        self.status = "Running"
        self.start_time = dt.datetime.now(dt.UTC)
        self.provisioning_state = "Succeeded"
        self.started.set()
        loop = asyncio.get_running_loop()
        began = loop.time()
        limit = int(self.properties.get("timeLimitInSeconds") or 18000)
        total = int(self.properties.get("totalBytesPerSession") or 0)
        next_ship = began
        if self.continuous:
            limit, total = int(self.continuous["sessionTimeLimitInSeconds"]), 0
        fault_at = began + float(self.fault.get("afterSeconds", 0.2)) if self.fault else None
        try:
            while not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._proc.wait()), TICK)
                if self._stopping:
                    return
                if self._proc.returncode is not None:
                    log.warning("capture %s: tcpdump exited (%s)", self.name, self._proc.returncode)
                    self._error("CaptureFailed")
                    return
                if self.fault is not None and fault_at is not None and loop.time() >= fault_at:
                    await self._kill()
                    self._error(str(self.fault.get("error", "CaptureFailed")))
                    return
                if loop.time() - began >= limit:
                    await self.stop(STOP_TIME)
                    return
                if self.continuous and loop.time() >= next_ship:
                    next_ship = loop.time() + 0.5
                    try:
                        await asyncio.to_thread(self._ship_closed, False)
                    except Exception as exc:  # storage trouble is a capture error
                        log.warning("capture %s: upload failed: %s", self.name,
                                    type(exc).__name__)
                        await self._kill()
                        self._error("StorageFailed")
                        return
                if total and self.work_file.exists() and self.work_file.stat().st_size >= total:
                    await self.stop(STOP_SESSION_BYTES)
                    return
        finally:
            drain.cancel()

    async def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()

    def _error(self, code: str) -> None:
        self.status = "Error"
        self.errors = [code]
        self.provisioning_state = "Succeeded"
        self.started.set()
        self.finished.set()

    async def stop(self, reason: str) -> None:
        """Stop tcpdump (it flushes the file on SIGTERM) and deliver the capture."""
        async with self._lock:
            if self.finished.is_set():
                return
            self._stopping = True
            if self._proc is not None and self._proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.terminate()
                try:
                    await asyncio.wait_for(self._proc.wait(), 5)
                except TimeoutError:
                    await self._kill()
            if self._splitter is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._splitter, 5)
            self.started.set()
            try:
                await asyncio.to_thread(self._deliver)
            except Exception as exc:  # storage trouble is a capture error, as in Azure
                log.warning("capture %s: delivery failed: %s", self.name, type(exc).__name__)
                self._error("StorageFailed" if self.blob else "LocalFileFailed")
                return
            self.status, self.stop_reason = "Stopped", reason
            self.provisioning_state = "Succeeded"
            self.finished.set()

    def _ring_files(self) -> list[Path]:
        """tcpdump's rotated files, oldest first: x.cap, x.cap1, x.cap2, ..."""
        stem = self.work_file.name
        files = [f for f in self.work_file.parent.glob(stem + "*")
                 if f.name[len(stem):].isdigit()]
        return sorted(files, key=lambda f: int(f.name[len(stem):]))

    def _ship_closed(self, final: bool) -> None:
        """Upload every closed ring file (all of them when FINAL) to its own blob, named
        by when it closed, and delete the oldest blobs past fileCount."""
        assert self.continuous is not None and self.blob_prefix and self.connection_string
        with self._ship_lock:
            self._ship_locked(final)

    def _ship_locked(self, final: bool) -> None:
        assert self.continuous is not None and self.blob_prefix and self.connection_string
        files = self._ring_files()
        closed = files if final else files[:-1]
        if not closed:
            return
        service = BlobServiceClient.from_connection_string(self.connection_string)
        container = service.get_container_client(CONTAINER)
        with contextlib.suppress(ResourceExistsError):
            container.create_container()
        for f in closed:
            at = dt.datetime.fromtimestamp(f.stat().st_mtime, dt.UTC)
            name = blob_name(self.blob_prefix, at)
            if name in self.shipped:  # two files closed in the same millisecond
                name = name[: -len(".cap")] + f"_{len(self.shipped)}.cap"
            with f.open("rb") as data:
                container.upload_blob(name, data, overwrite=True)
            f.unlink()
            self.shipped.append(name)
        keep = int(self.continuous["fileCount"])
        while keep and len(self.shipped) > keep:
            container.delete_blob(self.shipped.pop(0))

    def _deliver(self) -> None:
        if self.continuous:
            if not self._ring_files() and not self.shipped:
                Path(f"{self.work_file}1").write_bytes(_empty_pcap(
                    int(self.properties.get("bytesToCapturePerPacket") or 0)))
            self._ship_closed(final=True)
            return
        if not self.work_file.exists():
            # Stopped before tcpdump wrote its header: deliver an empty libpcap file.
            self.work_file.write_bytes(
                _empty_pcap(int(self.properties.get("bytesToCapturePerPacket") or 0))
            )
        if self.local_file is not None:
            self.local_file.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.work_file, self.local_file)
        if self.blob and self.connection_string:
            service = BlobServiceClient.from_connection_string(self.connection_string)
            container = service.get_container_client(CONTAINER)
            with contextlib.suppress(ResourceExistsError):
                container.create_container()
            with self.work_file.open("rb") as f:
                container.upload_blob(self.blob, f, overwrite=True)

    async def shutdown(self) -> None:
        """Server going away: end tcpdump now, without delivering."""
        self._stopping = True
        await self._kill()
        if self._task is not None:
            self._task.cancel()

    # ---- views ------------------------------------------------------------------
    def query_status(self) -> dict:
        body: dict = {
            "name": self.name,
            "id": self.id,
            "packetCaptureStatus": self.status,
            "stopReason": self.stop_reason,
            "packetCaptureError": list(self.errors),
        }

        if self.start_time is not None:
            body["captureStartTime"] = iso(self.start_time)
        return body


def _empty_pcap(snaplen: int) -> bytes:

    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen or 262144, 1)


class ScaleSetCapture:
    """One capture over several scale-set instances: a Capture (tcpdump, blob) each,
    seen from outside as one session, as Network Watcher shows an AzureVMSS capture."""

    def __init__(self, *, resource_id: str, name: str, properties: dict,
                 sessions: list[Capture]) -> None:
        self.id, self.name, self.properties = resource_id, name, properties
        self.sessions = sessions
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._watch: asyncio.Task | None = None

    @property
    def provisioning_state(self) -> str:
        states = {s.provisioning_state for s in self.sessions}
        return "Succeeded" if states == {"Succeeded"} else next(
            s for s in ("Deleting", "Updating", "Succeeded") if s in states)

    @provisioning_state.setter
    def provisioning_state(self, value: str) -> None:
        for s in self.sessions:
            s.provisioning_state = value

    async def start(self) -> None:
        await asyncio.gather(*(s.start() for s in self.sessions))

        async def watch() -> None:
            await asyncio.gather(*(s.started.wait() for s in self.sessions))
            self.started.set()
            await asyncio.gather(*(s.finished.wait() for s in self.sessions))
            self.finished.set()

        self._watch = asyncio.get_running_loop().create_task(watch())

    async def stop(self, reason: str) -> None:
        await asyncio.gather(*(s.stop(reason) for s in self.sessions))

    async def shutdown(self) -> None:
        await asyncio.gather(*(s.shutdown() for s in self.sessions))
        if self._watch is not None:
            self._watch.cancel()

    def query_status(self) -> dict:
        parts = [s.query_status() for s in self.sessions]
        statuses = {p["packetCaptureStatus"] for p in parts}
        # Running while any instance runs; Error only when every instance failed.
        if "Running" in statuses:
            status = "Running"
        elif statuses == {"Error"}:
            status = "Error"
        elif "NotStarted" in statuses:
            status = "NotStarted"
        else:
            status = "Stopped"
        errors = sorted({e for p in parts for e in p["packetCaptureError"]})
        reasons = [p["stopReason"] for p in parts if p["stopReason"]]
        body: dict = {"name": self.name, "id": self.id, "packetCaptureStatus": status,
                      "stopReason": reasons[0] if reasons else "",
                      "packetCaptureError": errors}
        starts = [p["captureStartTime"] for p in parts if "captureStartTime" in p]
        if starts:
            body["captureStartTime"] = min(starts)
        return body
