"""Suite-wide test settings.

Property-based tests (hypothesis, and schemathesis on top of it) draw their cases from a
fixed seed: a run is reproducible on every machine and in CI, so a green run means the same
cases passed. Cases that once failed are kept as explicit regression tests beside the
property that found them. `HYPOTHESIS_PROFILE=explore` draws fresh cases locally.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
