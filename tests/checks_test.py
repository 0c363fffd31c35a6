"""The checker can fail: planted false statements are falsified, with witnesses that replay."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from resjax.checks import registry, report, runner, section2, section3
from resjax.checks import strategies as S
from resjax.checks.statement import Profile, relative_slack

C2 = registry.get("claim-C.2")


def sigma_max_bound(inst):
    """Planted and false: ‖A B‖_F ≥ σ_max(A) ‖B‖_F."""
    s = jnp.linalg.svd(inst["A"], compute_uv=False)
    lhs, rhs = jnp.linalg.norm(inst["A"] @ inst["B"]), s[0] * jnp.linalg.norm(inst["B"])
    return {"slack": relative_slack(lhs, rhs, jnp), "lhs": lhs, "rhs": rhs}


def thin_bound(inst):
    """Planted and false only near alignment: ‖A B‖_F ≥ 1.001 σ_min(A) ‖B‖_F, for A with
    condition number 100, where a random B has slack near 1 and only B along the least
    right singular vector of A violates it."""
    s = jnp.linalg.svd(inst["A"], compute_uv=False)
    lhs, rhs = jnp.linalg.norm(inst["A"] @ inst["B"]), 1.001 * s[-1] * jnp.linalg.norm(inst["B"])
    return {"slack": relative_slack(lhs, rhs, jnp), "lhs": lhs, "rhs": rhs}


PLANTED = dataclasses.replace(C2, id="planted/sigma-max", evaluate=sigma_max_bound, claimed=True)
THIN = dataclasses.replace(
    C2,
    id="planted/thin",
    evaluate=thin_bound,
    claimed=True,
    specs=lambda p: st.fixed_dictionaries(
        {"d": st.just(8), "log_cond": st.just(2.0), "aligned": st.just(False), "seed": S.seeds()}
    ),
)


def test_planted_false_inequality_is_falsified_with_a_replayable_witness(tmp_path):
    result = runner.check(PLANTED, "quick")
    assert result.status == "falsified" and result.min_slack < 0
    path = report.witness_file(result, tmp_path)
    replayed = report.replay(path, statements=(PLANTED,))
    assert replayed.status == "falsified"
    assert replayed.quantities["slack"] == pytest.approx(result.quantities["slack"], rel=1e-12)
    assert report.exit_code([result]) == 1


def test_sampling_misses_a_thin_counterexample_that_the_attack_finds():
    batch = THIN.build({"d": 8, "log_cond": 2.0, "aligned": False, "seed": 0}, 256)
    sampled = runner.evaluator(THIN)(batch)
    assert np.min(sampled["slack"]) > 0  # no random instance violates it
    result = runner.check(THIN, "quick")
    assert result.status == "falsified"
    assert result.witness["A"].shape == (8, 8)


def test_true_statement_is_verified_and_json_has_the_schema():
    result = runner.check(C2, "quick")
    assert result.status == "verified" and result.min_slack >= 0 and result.instances > 100
    entry = report.to_json([result], "quick")["statements"][0]
    assert {"id", "printed", "status", "instances", "min_slack", "witness"} <= entry.keys()
    assert entry["witness"] is None and entry["printed"] is True
    assert report.exit_code([result]) == 0


def test_planted_false_reading_is_found_by_search_and_refuted_by_a_certificate(tmp_path):
    # squared separation 1.5ρ′ < 2ρ′: false, but nothing in the generator knows that number
    planted = section3.reading_entry("planted", lambda rho: 1.5 * rho, "‖α_i − α_j‖² ≥ 1.5ρ′")
    result = runner.check(planted, "quick")
    assert result.status == "falsified" and result.quantities["certificate"] == 1.0
    assert json.loads(report.witness_file(result, tmp_path).read_text())["kind"] == "certificate"
    replayed = report.replay(tmp_path / "lemma-B.1__reading-planted.json", statements=(planted,))
    assert replayed.status == "falsified"


def test_each_reading_of_lemma_b1_b_is_decided_on_instances_that_meet_it():
    squared = runner.check(registry.get("lemma-B.1/reading-squared"), "quick")
    assert squared.status == "verified"
    assert squared.quantities["constructed_instances"] == squared.quantities["in_domain_instances"] > 0
    unsquared = runner.check(registry.get("lemma-B.1/reading-unsquared"), "quick")
    assert unsquared.status == "falsified" and unsquared.quantities["certificate"] == 1.0
    alpha, beta = unsquared.witness["alpha"], unsquared.witness["beta"]
    k, rho = len(beta), float(unsquared.witness["rho_prime"])
    assert section3.in_domain(alpha, k, rho, section3.READINGS["unsquared"][1])  # every hypothesis, exactly
    assert not section3.in_domain(alpha, k, rho, section3.READINGS["squared"][1])  # the other reading's fail


def test_midpoint_certificate_needs_an_exact_midpoint_and_independent_moves():
    mid, step = np.array([0.75, 0.5]), np.array([0.0, 0.125])
    alpha = np.stack([mid, np.array([-0.5, 0.75]), mid + step, mid - step])
    beta = alpha[:2] + np.eye(2)
    assert section3.midpoint_certificate(alpha, beta, 2)
    off = alpha.copy()
    off[3, 1] = np.nextafter(off[3, 1], 1.0)  # one ulp away: no longer a midpoint, no certificate
    assert not section3.midpoint_certificate(off, beta, 2)
    assert not section3.midpoint_certificate(alpha, alpha[:2] + np.array([[1.0, 0.0], [2.0, 0.0]]), 2)  # rank 1


def test_an_undecided_instance_makes_the_verdict_undecided_never_verified():
    undecided = dataclasses.replace(C2, id="undecided-demo", evaluate=lambda inst: {"slack": 0.0 * inst["A"].sum(),
                                                                                  "undecided": 1.0}, batched=False,
                                    domain=None, max_batch=2)
    result = runner.check(undecided, "quick")
    assert result.status == "undecided" and result.quantities["undecided_instances"] > 0


def test_every_corrected_entry_names_an_existing_printed_one():
    ids = {s.id for s in registry.STATEMENTS}
    assert len(ids) == len(registry.STATEMENTS)
    for s in registry.STATEMENTS:
        if s.corrects:
            assert s.corrects in ids and not s.printed


def test_printed_construction_fails_by_its_sign_error_not_by_rounding():
    R = np.array([[0.0, -1.0], [1.0, 0.0]]) * 2.0  # rotation by π/2, stretched
    out = section2.construction_printed({"R": R, "depth": np.int64(40)})
    assert out["product_error"] > 0.1


def test_unknown_statement_id_is_a_clear_error():
    with pytest.raises(KeyError, match="known ids"):
        registry.get("thm-9.9")


@pytest.fixture(scope="module")
def lemma_2_4_witness(tmp_path_factory):
    result = runner.check(registry.get("lemma-2.4"), "quick")
    assert result.status == "falsified"
    return report.witness_file(result, tmp_path_factory.mktemp("witnesses"))


def test_witness_file_carries_its_statement_format_and_keys(lemma_2_4_witness):
    payload = json.loads(lemma_2_4_witness.read_text())
    assert payload["format"] == report.WITNESS_FORMAT and payload["statement"] == "lemma-2.4"
    assert payload["keys"] == sorted(payload["instance"]) == ["A", "L", "R", "tau"]
    assert payload["statement_digest"] == report.digest(registry.get("lemma-2.4"))
    assert report.replay(lemma_2_4_witness).status == "falsified"


REPLAY_DAMAGE = {
    "another statement's id": (lambda d: d.update(statement="thm-2.2"), "different wording of thm-2.2"),
    "an unknown id": (lambda d: d.update(statement="lemma-2.5"), "not a statement of this checker \\(did you mean 'lemma-2.4'"),
    "no format": (lambda d: d.pop("format"), "witness format none, this resjax reads format 2"),
    "a future format": (lambda d: d.update(format=3), "witness format 3"),
    "a missing key": (lambda d: d["instance"].pop("tau"), "instance keys \\['A', 'L', 'R'\\]"),
    "a ragged array": (lambda d: d["instance"].update(A=[[1.0, 2.0], [3.0]]), "damaged instance"),
    "a wrong dimension": (lambda d: d["instance"].update(R=[1.0, 2.0]), "R is a 1-dimensional"),
    "a wrong shape": (lambda d: d["instance"].update(R=[[1.0, 2.0]]), "does not fit lemma-2.4.*R must have shape"),
    "not an object": (lambda d: d.clear(), "witness format none"),
}


@pytest.mark.parametrize("case", sorted(REPLAY_DAMAGE))
def test_replay_refuses_a_witness_that_does_not_match_its_statement(case, lemma_2_4_witness, tmp_path):
    damage, message = REPLAY_DAMAGE[case]
    payload = json.loads(lemma_2_4_witness.read_text())
    damage(payload)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(report.WitnessError, match=message):
        report.replay(path)


def test_replay_refuses_non_witness_files_and_a_witness_outside_only(lemma_2_4_witness, tmp_path):
    with pytest.raises(report.WitnessError, match="no witness file"):
        report.replay(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(report.WitnessError, match="not a witness file"):
        report.replay(tmp_path / "bad.json")
    with pytest.raises(report.WitnessError, match="witness of 'lemma-2.4', not of claim-2.3"):
        report.replay(lemma_2_4_witness, only=["claim-2.3"])
    assert report.replay(lemma_2_4_witness, only=["lemma-2.4"]).status == "falsified"


def test_shrinking_profile_reduces_the_witness_to_a_small_instance():
    shrink = Profile("shrink", 10, 8, attack_instances=2, attack_steps=25, attack_seconds=1.0, shrink=True, derandomize=True)
    thorough_specs = dataclasses.replace(PLANTED, specs=lambda p: C2.specs("thorough"))
    result = runner.check(thorough_specs, shrink)
    assert result.status == "falsified"
    assert result.witness["A"].shape[0] <= 2  # shrunk towards d = 1, 2
