"""Host logging: stderr and `<state-dir>/host.log`, with Functions-host invocation lines.

Boundary: formats and writes log lines. Secrets never reach it: callers log paths, never
query strings or headers, and `redact()` strips `code=` values from anything URL-shaped
that must be logged.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOGGER_NAME = "localdev.host"
log = logging.getLogger(LOGGER_NAME)

_CODE = re.compile(r"(?i)(code=)[^&\s\"']+")


def redact(text: str) -> str:
    return _CODE.sub(r"\1***", text)


class _Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup(state_dir: Path, level: int = logging.INFO) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    fmt = _Redacting("[%(asctime)s] %(message)s")
    log.handlers.clear()
    log.setLevel(level)
    log.propagate = False
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.FileHandler(state_dir / "host.log", encoding="utf-8"),
    ):
        handler.setFormatter(fmt)
        log.addHandler(handler)


@contextmanager
def invocation(function: str, reason: str, invocation_id: str) -> Iterator[dict[str, bool]]:
    """Log `Executing`/`Executed` around one function invocation, like the Functions host.

    The caller sets `outcome["failed"] = True` when the function failed without raising.
    """
    log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", function, reason, invocation_id)
    outcome = {"failed": False}
    start = time.perf_counter()
    try:
        yield outcome
    except BaseException:
        outcome["failed"] = True
        raise
    finally:
        ms = round((time.perf_counter() - start) * 1000)
        log.info(
            "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
            function,
            "Failed" if outcome["failed"] else "Succeeded",
            invocation_id,
            ms,
        )
