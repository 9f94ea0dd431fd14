"""Suite-wide test settings.

Property-based tests (hypothesis, and schemathesis on top of it) draw their cases from a
fixed seed: a run is reproducible on every machine and in CI, so a green run means the same
cases passed. Cases that once failed are kept as explicit regression tests beside the
property that found them. `HYPOTHESIS_PROFILE=explore` draws fresh cases locally.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Work units for `make test`'s two xdist workers (`-n 2 --dist loadscope`).

    The end-to-end tests come in two units, each kept on one worker in its own order with
    a local stack of its own (the session fixture starts one per worker): the modules that
    start only their own runs (`OWN_RUNS`), and the rest, which share the stack with the
    background scenarios (tests/e2e/scenarios.py). Split so, neither waits for the other's
    fault lock. Every other module is a unit of its own (its module fixtures are set up
    once). pytest-xdist's `loadgroup` marks do not work with pytest 9 (xdist renames
    `item._nodeid`, which pytest 9 no longer reads), hence this hook.
    """
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return Units(config, log)


# e2e modules whose tests start runs of their own and never ask for a background scenario
OWN_RUNS = frozenset(f"tests/e2e/test_{name}.py" for name in (
    "auth", "channels", "run_page", "scale_sets", "schemathesis", "standby"))


def _unit(nodeid: str) -> str:
    module = nodeid.split("::")[0]
    if not module.startswith("tests/e2e/"):
        return module
    return "tests/e2e (own runs)" if module in OWN_RUNS else "tests/e2e (background)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, the end-to-end units go first (the longer first): they mostly
    wait on timers, and the CPU-bound modules fill the gaps after them."""
    if hasattr(config, "workerinput"):
        order = {"tests/e2e (own runs)": 0, "tests/e2e (background)": 1}
        items.sort(key=lambda item: order.get(_unit(item.nodeid), 2))
