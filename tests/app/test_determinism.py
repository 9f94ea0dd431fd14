"""Orchestrator code may only use the Durable context for time, ids, waiting and I/O.

azure-functions-doctor (in `make lint`) checks the decorated orchestrator function but not
the plain generator it delegates to; this test covers every module in orchestrators/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ORCHESTRATORS = Path(__file__).parent.parent.parent / "orchestrators"

FORBIDDEN_CALLS = {
    "datetime.now", "datetime.utcnow", "datetime.today", "date.today", "time.time",
    "time.sleep", "time.monotonic", "uuid.uuid1", "uuid.uuid4", "os.getenv", "open",
    "asyncio.sleep", "secrets.token_hex", "secrets.token_bytes",
}
FORBIDDEN_MODULES = {"random", "requests", "urllib", "socket", "subprocess", "httpx",
                     "aiohttp", "azure.mgmt", "azure.storage", "azure.identity", "threading"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if any(name == f or name.endswith("." + f) for f in FORBIDDEN_CALLS):
                found.append(f"line {node.lineno}: {name}()")
        elif isinstance(node, ast.Attribute) and _dotted(node) == "os.environ":
            found.append(f"line {node.lineno}: os.environ")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [
                node.module or ""]
            for mod in names:
                if any(mod == m or mod.startswith(m + ".") for m in FORBIDDEN_MODULES):
                    found.append(f"line {node.lineno}: import {mod}")
    return found


@pytest.mark.parametrize("path", sorted(ORCHESTRATORS.glob("*.py")), ids=lambda p: p.name)
def test_orchestrator_modules_are_deterministic(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize("snippet", [
    "from datetime import datetime\nx = datetime.now()",
    "import datetime\nx = datetime.datetime.utcnow()",
    "import uuid\nx = uuid.uuid4()",
    "import os\nx = os.environ['A']",
    "import random",
    "import time\ntime.sleep(1)",
    "x = open('f')",
])
def test_the_check_catches_each_kind(snippet: str) -> None:
    assert violations(snippet)
