"""A deploy in the middle of a run: the host is restarted on another build of the app, on
the same durable store, while a capture is being monitored (what a `func azure functionapp
publish` does to runs in flight in Azure).

- `deploy_mid_run`: the run starts on the release that first landed (commit LANDED, taken
  from git), the host restarts on today's code, and the run must complete: today's code
  replays yesterday's history (the versioning rule in alertcap/domain/run.py).
- `unversioned_change_mid_run`: the same with a build that inserts one activity call into
  the monitor loop without a version gate: the strict host fails the run with the
  non-determinism error, as Azure does. This is why the rule exists.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from .reliability import ROOT, _env
from .stack import Stack

LANDED = "7e17a6c"  # the first landed release (issue #2..#7), before the restructure
APP = ["function_app.py", "host.json", "activities", "alertcap", "orchestrators", "starters"]
DEPLOY_VMS = ("storm014", "storm015")


def _restart_host(stack: Stack, app_dir: Path | None) -> subprocess.CompletedProcess[str]:
    env = _env(stack)
    if app_dir is not None:
        env["LOCALDEV_APP_DIR"] = str(app_dir)
    return subprocess.run([sys.executable, "-m", "localdev", "restart-host"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def _landed_release(into: Path) -> Path:
    archive = subprocess.run(["git", "archive", "--format=tar", LANDED, *APP], cwd=ROOT,
                             capture_output=True, check=True).stdout
    out = into / "landed"
    out.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(out, filter="data")
    return out


def _unversioned_build(into: Path) -> Path:
    out = into / "unversioned"
    for name in APP:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, out / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            out.mkdir(exist_ok=True)
            shutil.copy2(src, out / name)
    capture = out / "orchestrators" / "capture.py"
    text = capture.read_text()
    anchor = "        status = yield from run.call(get_capture_status, ask)\n"
    assert anchor in text, "the monitor loop moved: update this test's patch"
    # One more (harmless) activity call at the top of every poll, for every version.
    capture.write_text(text.replace(anchor, (
        "        yield from run.call(check_limit, CheckLimitInput(m.watcher, 10000))\n"
        + anchor), 1))
    return out


def _run_across_a_deploy(stack: Stack, vm: str, before: Path | None, after: Path | None
                         ) -> dict[str, Any]:
    with stack.fault_lock:  # the host restarts: no foreground test may be mid-request
        return _deploy(stack, vm, before, after)


def _deploy(stack: Stack, vm: str, before: Path | None, after: Path | None) -> dict[str, Any]:
    assert _restart_host(stack, before).returncode == 0
    try:
        r = stack.start_capture(stack.vm(vm), seconds=10)
        assert r.status == 202, (r.status, r.body)
        url = r.body["statusQueryGetUri"]
        running = stack.wait_phase(url, "capturing", timeout=60)
        deployed = _restart_host(stack, after)
        final = stack.wait(url, timeout=120)
    finally:
        restored = _restart_host(stack, None)  # today's code, for every later scenario
    return {"running": running, "deploy": deployed, "final": final, "restored": restored}


def deploy_mid_run(stack: Stack) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return _run_across_a_deploy(stack, DEPLOY_VMS[0], _landed_release(Path(tmp)), None)


def unversioned_change_mid_run(stack: Stack) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return _run_across_a_deploy(stack, DEPLOY_VMS[1], None, _unversioned_build(Path(tmp)))
