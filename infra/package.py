"""Build the function app package: exactly what Azure runs, nothing of the local stack.

Boundary: a build script (run by `make package`), not app code. It zips an allow-list
(function_app.py, host.json, requirements.txt and the app packages) rather than excluding
names, so .venv, node_modules, .localdev, .git, tests, bench, infra and localdev can never
slip in (issue #18 point 5: `zip -r . -x@.funcignore` shipped all of them). Entries carry a
fixed timestamp, so the same tree gives the same zip. Prints the size and the file count.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("function_app.py", "host.json", "requirements.txt")
PACKAGES = ("activities", "alertcap", "orchestrators", "starters")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def package_files(root: Path = ROOT) -> list[str]:
    names = [f for f in FILES if (root / f).is_file()]
    for pkg in PACKAGES:
        names += sorted(p.relative_to(root).as_posix() for p in (root / pkg).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts
                        and p.suffix not in (".pyc", ".pyo"))
    return names


def build(out: Path, root: Path = ROOT) -> list[str]:
    names = package_files(root)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, (root / name).read_bytes())
    return names


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "alertcap.zip"
    files = build(target)
    print(f"{target}: {len(files)} files, {target.stat().st_size:,} bytes")
