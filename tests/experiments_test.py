"""resjax.experiments: each experiment's quick mode end to end through `resjax experiment`."""

import json
import math

import jax
import numpy as np
import pytest

from resjax import cli, linear
from resjax.experiments import ablation, configure, hypotheses, linear_gd, plain_gd, random_labels


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


def _quick(name, tmp_path):
    assert cli.main(["experiment", name, "--quick", "--workdir", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    return json.loads((tmp_path / "rows.json").read_text())["rows"]


def test_plain_gd_quick_identity_always_converges_and_small_init_stalls_when_deep(tmp_path):
    rows = {(r["init"], r["depth"]): r for r in _quick("plain-gd", tmp_path)}
    assert len(rows) == plain_gd.size(plain_gd.QUICK)
    for depth in plain_gd.QUICK.depths:
        identity = rows["identity", depth]
        assert identity["converged"] == identity["seeds"] and identity["neg_det0"] == 0
        assert len(identity["iterations"]) == identity["seeds"]
    # the saddle at zero: a small product needs a gradient of size ~σ^{ℓ−1} to leave it
    assert rows["small", 8]["converged"] <= rows["small", 8]["seeds"] // 2
    assert all(r["converged"] + r["stalled"] == r["seeds"] for r in rows.values())


def test_plain_gd_layers_are_the_named_initialisations():
    rng = np.random.default_rng(0)
    W = plain_gd.layers(rng, "orthogonal", 3, 4)
    assert np.allclose(np.einsum("lij,lik->ljk", W, W), np.eye(4))
    assert np.array_equal(plain_gd.layers(rng, "identity", 2, 3), np.broadcast_to(np.eye(3), (2, 3, 3)))
    assert np.std(plain_gd.layers(rng, "glorot", 200, 8)) == pytest.approx(1 / np.sqrt(8), rel=0.05)


def test_hypotheses_quick_negative_eigenvalues_stall_where_theorem_2_1_factorises(tmp_path):
    rows = {(r["family"], r["depth"]): r for r in _quick("hypotheses", tmp_path)}
    assert all(rows["spd", k]["converged"] for k in (1, 4))
    assert rows["rotation", 4]["converged"] and rows["det<0", 1]["converged"]
    stuck = rows["neg-eig", 4]  # eigenvalues (−1, −1, 1): a near-identity factorisation exists (det > 0)...
    assert stuck["factorize_norm"] < 1 and not stuck["converged"]
    assert stuck["excess"] == pytest.approx(2.0, abs=1e-3)  # ...but the path parks both −1 directions at 0
    assert all(r["factorize_norm"] is None or r["factorize_norm"] >= r["lower_bound"] - 1e-9 for r in rows.values())


def test_hypotheses_targets_have_the_stated_structure():
    with jax.enable_x64(True):
        spd = hypotheses.make_target("spd", 100.0, 4)
        assert np.allclose(spd, spd.T) and np.linalg.cond(spd) == pytest.approx(100.0)
        assert np.linalg.det(hypotheses.make_target("det<0", 0.5, 4)) < 0
        assert float(linear.gamma(hypotheses.make_target("det<0", 0.5, 4))) == pytest.approx(0.5)
        assert sorted(np.linalg.eigvalsh(hypotheses.make_target("neg-eig", 2.0, 4))) == pytest.approx([-2, -2, 1, 1])
        rot = hypotheses.make_target("rotation", 0.1, 3)
        assert np.allclose(rot @ rot.T, np.eye(3)) and np.trace(rot) == pytest.approx(1 + 2 * np.cos(np.pi - 0.1))


def test_random_labels_quick_construction_fits_exactly_and_training_is_recorded(tmp_path):
    rows = _quick("random-labels", tmp_path)
    built = [r for r in rows if r["method"] == "construct"]
    assert [r["n"] for r in built] == list(random_labels.QUICK.sizes) and all(r["train_acc"] == 1.0 for r in built)
    same = [r for r in rows if r["method"] == "trained, same shape"]
    assert [r["params"] for r in same] == [r["params"] for r in built]  # the same network, trained
    assert all(1 <= r["steps"] <= random_labels.QUICK.same_shape_steps for r in same)
    smallest = next(r for r in rows if r["method"] == "trained, smallest" and r["n"] == 50)
    assert smallest["train_acc"] == 1.0 and smallest["params"] < built[0]["params"]


def test_ablation_quick_residual_beats_plain_and_records_seeds_and_stability(tmp_path):
    rows = {r["variant"]: r for r in _quick("ablation", tmp_path)}
    residual, plain = rows["residual, fixup (cpu config)"], rows["plain, standard init"]
    for r in (residual, plain):
        assert len(r["accs"]) == len(r["curves"]) == ablation.QUICK.seeds
        assert r["acc_mean"] == pytest.approx(np.mean(r["accs"])) and r["acc_std"] >= 0
        assert r["max_stable_lr"] in (None, *ablation.QUICK.stability_rates)
    assert residual["acc_mean"] > plain["acc_mean"] + 0.1


def test_experiment_overrides_are_typed_and_refused_with_the_field_named(capsys):
    config = configure(ablation, True, ["seeds=1", 'variants=["plain, standard init"]', "stability_rates=[1, 2]"])
    assert config.seeds == 1 and config.variants == ("plain, standard init",) and config.stability_rates == (1, 2)
    assert configure(random_labels, True, ["search=[[8, 1], [32, 2]]"]).search == ((8, 1), (32, 2))
    for bad, said in (("steps=1.5", "steps takes int"), ("stepz=3", "did you mean 'steps'"), ("seeds", "KEY=VALUE"),
                      ('variants=["x"]', "unknown variants")):
        with pytest.raises(ValueError, match=said):
            configure(ablation, True, [bad])
    assert cli.main(["experiment", "plain-gd", "--quick", "--set", "inits=[\"glorot\", \"zeros\"]"]) == 2
    assert "unknown inits ['zeros']" in capsys.readouterr().err


def test_experiment_refuses_data_it_cannot_use_in_one_line(tmp_path, capsys):
    assert cli.main(["experiment", "random-labels", "--quick", "--quiet", "--workdir", str(tmp_path),
                     "--set", "sizes=[50, 5000]"]) == 2
    assert capsys.readouterr().err.strip() == ("resjax experiment: sizes go up to 5000, but 'digits' has 1500 "
                                               "training images.")
