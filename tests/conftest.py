"""Test setup: float64 for theorem-grade comparisons, and the hypothesis profiles.

The default profile is "ci": derandomized (the same examples on every run and every
machine), few examples, no example database, so the README's test command passes or
fails the same way everywhere. Long random searches are opt-in by name:
HYPOTHESIS_PROFILE=thorough (random, 300 examples per test, failures saved and
replayed from .hypothesis/).
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
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "thorough"):
    raise SystemExit(f"HYPOTHESIS_PROFILE={PROFILE!r}: use 'ci' (the default) or 'thorough'.")
settings.load_profile(PROFILE)
