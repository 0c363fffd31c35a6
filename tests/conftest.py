"""Test setup: float64 for theorem-grade comparisons, and the hypothesis profiles.

The default profile is "ci": derandomized (the same examples on every run and every
machine), few examples, no example database, so the README's test command passes or
fails the same way everywhere. Long random searches are opt-in by name:
HYPOTHESIS_PROFILE=thorough (random, 300 examples per test, failures saved and
replayed from .hypothesis/).
"""

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from PIL import Image

# Tests compare with float64 references; the library itself never sets this.
jax.config.update("jax_enable_x64", True)

# The suite compiles hundreds of small programs, and XLA CPU's LLVM optimisation is most of
# each compile: at level 0 the model and linear tests took 76 s instead of 153 s
# (2026-12-01, docs/testing.md). Set before the backend starts (XLA reads XLA_FLAGS then),
# for this process and its subprocesses; the library never sets it. A level already in
# XLA_FLAGS is kept (XLA_FLAGS=--xla_backend_optimization_level=3: XLA's default).
_LEVEL = re.search(r"--xla_backend_optimization_level=\d+", os.environ.get("XLA_FLAGS", ""))
COMPILE_LEVEL = _LEVEL.group(0) if _LEVEL else "--xla_backend_optimization_level=0"
if not _LEVEL:
    os.environ["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"), COMPILE_LEVEL)))

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "thorough"):
    raise SystemExit(f"HYPOTHESIS_PROFILE={PROFILE!r}: use 'ci' (the default) or 'thorough'.")
settings.load_profile(PROFILE)


@pytest.fixture(scope="session")
def folder(tmp_path_factory):
    """A tiny image folder: 2 separable classes of 8x8 images, 32 + 8 per class."""
    root = tmp_path_factory.mktemp("images") / "ds"
    rng = np.random.default_rng(0)
    for split, n in (("train", 32), ("test", 8)):
        for c, level in (("dark", 40), ("light", 200)):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray((level + rng.integers(0, 40, (8, 8, 3))).astype(np.uint8)).save(d / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def train():
    """Runs ``resjax train --config tiny`` (or ``config``) on a data folder in a subprocess
    (waits, or returns the Popen with wait=False); ``devices`` virtual CPU devices."""

    def run(workdir, folder, *extra, devices=1, wait=True, flags=(), config="tiny"):
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env["XLA_FLAGS"] = COMPILE_LEVEL + (f" --xla_force_host_platform_device_count={devices}" if devices else "")
        cmd = [sys.executable, "-m", "resjax.cli", "train", "--config", config, "--quiet", *flags,
               "--workdir", str(workdir), "--set", f"data={folder}", *(("num_classes=2",) if config == "tiny" else ()),
               *extra]
        if not wait:
            return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    return run
