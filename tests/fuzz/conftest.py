"""Hypothesis profiles for the fuzz suite: a short run in CI, a long run on demand (README, "Security").

``MLGATE_FUZZ=ci`` (default) runs a few dozen mutants per target; ``MLGATE_FUZZ=long`` runs
thousands (``MLGATE_FUZZ_EXAMPLES`` overrides the count). No example database is written.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# CI: the same mutants on every run (a red build is a regression, not luck); long: fresh ones each run.
settings.register_profile(
    "ci", max_examples=int(os.environ.get("MLGATE_FUZZ_EXAMPLES", "20")), derandomize=True, **_COMMON
)
settings.register_profile(
    "long", max_examples=int(os.environ.get("MLGATE_FUZZ_EXAMPLES", "5000")), derandomize=False, **_COMMON
)
settings.load_profile(os.environ.get("MLGATE_FUZZ", "ci"))
