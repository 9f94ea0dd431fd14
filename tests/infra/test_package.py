"""`make package` builds exactly what Azure needs (issue #18 point 5)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEV = (".venv", "node_modules", ".localdev", ".git", "tests", "bench", "infra", "localdev",
       "local.settings.json", "package.json", "Makefile", "requirements-dev.txt", ".ci")


def test_package_holds_the_app_and_no_dev_files(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    run = subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), str(out)],
                         capture_output=True, text=True, check=True, timeout=60)
    names = zipfile.ZipFile(out).namelist()
    assert {"function_app.py", "host.json", "requirements.txt"} <= set(names)
    assert any(n.startswith("alertcap/") for n in names)
    assert not [n for n in names if n.split("/")[0] in DEV or "__pycache__" in n
                or n.endswith(".pyc")]
    assert "alertcap/permissions.py" not in names
    # it reports its size, and the size is an app's, not a venv's (the old zip was 186 MB+)
    size = out.stat().st_size
    assert f"{size:,} bytes" in run.stdout and f"{len(names)} files" in run.stdout
    assert size < 2_000_000


def test_package_is_complete_the_app_imports_from_it_alone(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), str(out)],
                   check=True, capture_output=True, timeout=60)
    site = tmp_path / "site"
    zipfile.ZipFile(out).extractall(site)
    # Import function_app from the extracted package only (plus the installed dependencies):
    # a module the app needs but the package lacks fails here.
    # -I: no PYTHONPATH, no current directory; only the installed packages and the package
    code = ("import sys; sys.path.insert(0, '.'); import function_app; "
            "from alertcap.pcap import decode; print(decode._fastscan is not None); "
            "print(len(function_app.app.get_functions()))")
    run = subprocess.run([sys.executable, "-I", "-c", code], cwd=site, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.strip().splitlines()[-1]) > 0
    # the pcap summary's C accelerator travels with it (built for this interpreter by make)
    assert run.stdout.strip().splitlines()[-2] == "True"


def test_package_is_reproducible(tmp_path: Path) -> None:
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    for out in (a, b):
        subprocess.run([sys.executable, str(ROOT / "infra" / "package.py"), str(out)],
                       check=True, capture_output=True, timeout=60)
    assert a.read_bytes() == b.read_bytes()
