"""resjax.train.backend: JAX's backend configured, then started in a thread of its own.

Each test runs in a fresh Python: this process's backend has long started.
"""

import json
import os
import subprocess
import sys


def python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_the_module_imports_nothing_of_the_trainer_so_the_backend_can_start_first():
    out = python("import sys, resjax.train.backend\n"
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'optax', 'orbax', 'PIL', 'resjax')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[0] == "['resjax', 'resjax.train', 'resjax.train.backend']"


def test_start_sets_the_configurations_flags_and_devices_then_starts_the_backend_in_its_thread():
    out = python(
        "import json, os, jax\n"
        "from resjax.train import backend, config\n"
        "cfg = config.load('tiny').override(['cpu_devices=3', 'xla_flags=[\"--xla_cpu_enable_fast_math=false\"]'])\n"
        "start = backend.Start(cfg)\n"
        "before = backend.started()\n"
        "start.start()\n"
        "start.wait()\n"
        "print(json.dumps([before, backend.started(), start.seconds, jax.device_count(), os.environ['XLA_FLAGS']]))",
        XLA_FLAGS="",
    )
    assert out.returncode == 0, out.stderr
    before, after, seconds, devices, flags = json.loads(out.stdout.strip().splitlines()[-1])
    assert (before, after, devices) == (False, True, 3)
    assert 0 < seconds < 60 and flags.split() == ["--xla_cpu_enable_fast_math=false"]


def test_a_backend_that_cannot_start_is_reported_in_one_line_by_the_command(tmp_path):
    out = subprocess.run([sys.executable, "-m", "resjax.cli", "train", "--config", "digits", "--workdir", str(tmp_path),
                          "--set", "steps=2"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": "nonexistent"})
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(lines) == 1 and lines[0].startswith("resjax train: JAX could not start its backend: ")
    assert "nonexistent" in lines[0] and not any(tmp_path.iterdir())  # nothing written
