"""Test setup: float64 for theorem-grade comparisons, and the hypothesis profiles.

HYPOTHESIS_PROFILE selects "ci" (deterministic, few examples) or "thorough" (random,
many); the default is "ci" under CI=true and "thorough" otherwise.
"""

import os

import jax
from hypothesis import HealthCheck, settings

# Tests compare with float64 references; the library itself never sets this.
jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "thorough"))
