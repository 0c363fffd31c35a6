"""resjax.experiments: each experiment's quick mode end to end through `resjax experiment`."""

import json
import math

import jax
import numpy as np
import pytest

from resjax import cli, linear
from resjax.experiments import linear_gd


def test_linear_gd_quick_converges_from_the_identity_and_writes_its_record(tmp_path, capsys):
    assert cli.main(["experiment", "linear-gd", "--quick", "--workdir", str(tmp_path), "--quiet"]) == 0
    record = json.loads((tmp_path / "rows.json").read_text())
    rows = record["rows"]
    assert record["config"]["depths"] == list(linear_gd.QUICK.depths) and len(rows) == linear_gd.size(linear_gd.QUICK)
    assert all(r["converged"] and r["iterations"] > 0 for r in rows)
    # from depth 4 on, the path stays inside B_1, where the corrected Theorem 2.2's bound applies,
    # and that bound (a worst case) is never below what gradient descent took
    deep = [r for r in rows if r["depth"] >= 4]
    assert deep and all(r["max_norm"] < 1 and r["predicted"] >= r["iterations"] for r in deep)
    assert all(math.isinf(r["predicted"]) for r in rows if r["depth"] == 1 and r["max_norm"] >= 1)
    assert (tmp_path / "linear-gd.png").stat().st_size > 10_000
    assert "6 runs" in capsys.readouterr().out


def test_gradient_descent_keeps_the_fastest_converging_step_size():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        R = linear_gd.target(rng, 3, 0.5)
        assert float(linear.gamma(R)) == pytest.approx(0.5) and np.linalg.det(R) > 0
        slow = linear_gd.run_one(3, 1.0, 4, 0.5, 0, linear_gd.Config(etas=(1 / 64,)))
        searched = linear_gd.run_one(3, 1.0, 4, 0.5, 0, linear_gd.Config(etas=(1 / 64, 1 / 8, 1.0)))
    assert searched["iterations"] < slow["iterations"]
