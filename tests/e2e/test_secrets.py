"""Issue 6: no secret reaches a log or an email. After every live scenario has run, the
stack's logs, the host log and every stored email are searched for the function, master
and system keys, the email access key, the identity header and the Azurite account key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .scenarios import EXCLUSIVE, QUEUES
from .stack import Stack

pytestmark = pytest.mark.e2e


def test_no_secret_in_logs_or_emails(stack: Stack, runs: Any) -> None:
    for scenario in [*(s for q in QUEUES.values() for s in q), *EXCLUSIVE]:
        runs.get(scenario.__name__)
    files = [*stack.state.glob("logs/*.log"), stack.state / "host" / "host.log",
             *Path(stack.endpoints["inbox_dir"]).glob("*.json"),
             *Path(stack.endpoints["inbox_dir"]).glob("*.eml")]
    assert len(files) > 5
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        for name, secret in stack.secrets().items():
            assert len(secret) >= 16, name
            if secret in text:
                leaks.append(f"{name} in {path.relative_to(stack.state)}")
    assert leaks == []
