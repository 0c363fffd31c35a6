"""resjax.linear: model (2.1), Claim 2.3, Lemma 2.4, γ, and the factorisation of Theorem 2.1."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, strategies as st

from resjax import linear

SHAPES = st.sampled_from([(1, 1), (2, 3), (3, 5), (5, 2)])


def rand(seed, *shape, scale=1.0):
    return scale * np.random.default_rng(seed).normal(size=shape)


def det_positive(R):
    if np.linalg.det(R) < 0:
        R = R.copy()
        R[0] *= -1
    return R


def chain(A):
    P = np.eye(A.shape[-1])
    for A_j in A:
        P = P + A_j @ P
    return P


risk_grad = jax.jit(jax.grad(linear.population_risk))
closed_grad = jax.jit(linear.risk_gradient)


def test_forward_is_the_product_applied_to_x():
    A, x = rand(0, 4, 3, 3, scale=0.3), rand(1, 7, 3)
    np.testing.assert_allclose(linear.forward(A, x), x @ chain(A).T, rtol=1e-12)
    np.testing.assert_allclose(linear.product(A), chain(A), rtol=1e-12)


def test_forward_batches_over_leading_axes_and_under_vmap():
    A, x = rand(0, 2, 3, 3, scale=0.3), rand(1, 4, 5, 3)
    out = linear.forward(A, x)
    assert out.shape == (4, 5, 3)
    np.testing.assert_allclose(jax.vmap(lambda xi: linear.forward(A, xi))(x), out, rtol=1e-12)


@given(SHAPES, st.integers(0, 2**31 - 1))
def test_closed_form_gradient_equals_jax_grad(shape, seed):
    d, ell = shape
    A, R, L = rand(seed, ell, d, d, scale=0.4), rand(seed + 1, d, d), rand(seed + 2, d, d)
    Sigma = L @ L.T
    np.testing.assert_allclose(closed_grad(A, R, Sigma), risk_grad(A, R, Sigma), rtol=1e-9, atol=1e-10)


def test_population_risk_matches_monte_carlo():
    A, R, L = rand(0, 3, 4, 4, scale=0.3), rand(1, 4, 4), rand(2, 4, 4)
    Sigma = L @ L.T
    x, y = linear.sample(jax.random.key(0), jnp.asarray(R), jnp.asarray(Sigma), 200_000)
    losses = jnp.sum((linear.forward(A, x) - y) ** 2, axis=-1)
    se = float(jnp.std(losses)) / math.sqrt(losses.shape[0])
    assert abs(float(jnp.mean(losses)) - float(linear.population_risk(A, R, Sigma))) < 5 * se
    assert float(linear.empirical_risk(A, x, y)) == pytest.approx(float(jnp.mean(losses)))


def test_optimal_risk_is_the_noise_and_attained_by_one_layer():
    R = rand(3, 4, 4)
    A = jnp.asarray(R - np.eye(4))[None]
    assert float(linear.population_risk(A, R, np.eye(4))) == pytest.approx(float(linear.optimal_risk(R)))
    assert float(linear.optimal_risk(R)) == 4.0


def test_risk_functions_compose_with_jit_and_vmap_over_instances():
    A, R, Sigma = rand(0, 5, 2, 3, 3, scale=0.2), rand(1, 5, 3, 3), np.broadcast_to(np.eye(3), (5, 3, 3))
    batched = jax.jit(jax.vmap(linear.risk_gradient))(A, R, Sigma)
    for i in range(5):
        np.testing.assert_allclose(batched[i], risk_grad(A[i], R[i], Sigma[i]), rtol=1e-9, atol=1e-12)


def test_gamma_and_max_norm():
    R = np.diag([4.0, 0.5])
    assert float(linear.gamma(R)) == pytest.approx(math.log(4.0))
    A = np.stack([np.diag([0.1, -0.3]), np.diag([0.2, 0.0])])
    assert float(linear.max_norm(A)) == pytest.approx(0.3)


@st.composite
def factorizable(draw):
    d = draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    s = 10.0 ** draw(st.floats(-3, 3)) * 10.0 ** (-draw(st.floats(0, 6)) * rng.uniform(size=d))
    Q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    Q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    R = det_positive((Q1 * s) @ Q2.T)
    return R, draw(st.integers(1, 80))


@given(factorizable(), st.sampled_from(linear.CONSTRUCTIONS))
@example(case=(np.array([[1.46391126e-05]]), 1), construction="best")  # once failed a tolerance ∝ ‖R‖
def test_factorize_reproduces_R_within_the_bounds(case, construction):
    R, depth = case
    A = linear.factorize(R, depth, construction=construction)
    assert A.shape == (depth, *R.shape) and A.dtype == np.float64
    # Forming Id + A_j rounds at ε·max(1, ‖partial product‖) whatever ‖R‖ is, and every
    # partial product has norm ≤ max(1, ‖R‖): an absolute tolerance proportional to ‖R‖
    # alone fails for small R (1e-5·Id, depth 1).
    atol = 64 * depth * R.shape[0] * np.finfo(np.float64).eps * max(1.0, np.linalg.norm(R, 2))
    np.testing.assert_allclose(chain(A), R, rtol=0, atol=atol)
    g = float(linear.gamma(R))
    norm = float(np.max(np.linalg.norm(A, ord=2, axis=(1, 2))))
    if depth >= 3 * g and construction != "interleaved":  # the bounds are proved for split, so for best
        assert norm <= linear.theorem_2_1_bound(g, depth) + 1e-12
        if depth >= 3:
            assert norm <= linear.sharper_bound(g, depth) + 1e-12
    assert norm >= linear.factorization_lower_bound(R, depth) - 1e-12  # no factorisation beats it


def test_best_construction_is_the_smaller_of_split_and_interleaved():
    rng = np.random.default_rng(3)
    R = det_positive(rng.normal(size=(6, 6)))
    norms = {c: float(linear.max_norm(linear.factorize(R, 20, construction=c))) for c in linear.CONSTRUCTIONS}
    assert norms["best"] == min(norms["split"], norms["interleaved"])
    assert norms["interleaved"] < norms["split"]  # rotation and stretch sharing every layer pays here
    with pytest.raises(ValueError, match="construction='splt' is not one of .*did you mean 'split'"):
        linear.factorize(R, 20, construction="splt")


def test_lower_bound_is_attained_by_scalings_and_exact_at_depth_one():
    # (1 + δ)^ℓ = σ_max and (1 − δ)^ℓ = σ_min are met by ℓ equal scalings
    assert linear.factorization_lower_bound(np.diag([1.1**8, 1.0]), 8) == pytest.approx(0.1, rel=1e-12)
    assert linear.factorization_lower_bound(np.diag([0.9**8, 1.0]), 8) == pytest.approx(0.1, rel=1e-12)
    R = np.array([[0.0, -2.0], [1.0, 0.0]])
    assert linear.factorization_lower_bound(R, 1) == pytest.approx(np.linalg.norm(R - np.eye(2), 2))


def test_lower_bound_angle_term_for_a_rotation_and_the_determinant_term():
    from resjax import normal_form

    theta, depth = 3.0, 12
    R = normal_form.rotation(theta)
    assert linear.largest_angle(R) == pytest.approx(theta)
    assert linear.factorization_lower_bound(R, depth) == pytest.approx(math.sin(theta / depth))
    # ℓ equal steps of the rotation: 2 sin(θ/2ℓ), just above sin(θ/ℓ)
    assert float(linear.max_norm(linear.factorize(R, depth))) == pytest.approx(2 * math.sin(theta / (2 * depth)))
    assert linear.factorization_lower_bound(np.diag([-1.0, 1.0]), 50) == 1.0  # det R < 0: |||A||| ≥ 1


@given(st.integers(1, 5), st.integers(1, 12), st.floats(0.01, 0.9), st.integers(0, 2**31 - 1))
def test_lower_bound_holds_for_products_of_random_layers(d, depth, delta, seed):
    rng = np.random.default_rng(seed)
    A = np.stack([delta * G / np.linalg.norm(G, 2) for G in rng.normal(size=(depth, d, d))])
    assert linear.factorization_lower_bound(chain(A), depth) <= delta + 1e-12


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5])
def test_factorize_rotation_by_pi_in_every_dimension(d):
    Q = np.eye(d)
    Q[: 2 * (d // 2), : 2 * (d // 2)] *= -1  # pairs of −1: rotations by π
    A = linear.factorize(Q, 7)
    np.testing.assert_allclose(chain(A), Q, atol=1e-13)
    assert np.max(np.linalg.norm(A, ord=2, axis=(1, 2))) <= 2 * math.sin(math.pi / 14) + 1e-12


def test_factorize_psd_layers_are_equal_and_meet_the_warm_up_bound():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    R = (U * [0.5, 1.0, 2.0, 3.0]) @ U.T
    R = (R + R.T) / 2
    A = linear.factorize(R, 6)
    assert np.allclose(A, A[0])
    np.testing.assert_allclose(chain(A), R, atol=1e-13)
    g = math.log(3.0)
    assert np.linalg.norm(A[0], 2) == pytest.approx(max(3 ** (1 / 6) - 1, 1 - 0.5 ** (1 / 6)))
    assert np.linalg.norm(A[0], 2) <= 3 * g / 6


def test_factorize_depth_one_is_R_minus_identity():
    R = np.array([[0.0, -2.0], [1.0, 0.0]])
    np.testing.assert_allclose(linear.factorize(R, 1)[0], R - np.eye(2))


def test_negative_determinant_error_explains_the_remedy():
    R = np.diag([-1.0, 2.0])
    with pytest.raises(ValueError, match="det R < 0.*negative_determinant_remedy"):
        linear.factorize(R, 8)
    with pytest.raises(ValueError, match="factorize\\(-R, depth\\)"):
        linear.factorize(np.diag([-1.0, 2.0, 3.0]), 8)  # odd d: negating works too
    R_aug = linear.negative_determinant_remedy(R)
    assert np.linalg.det(R_aug) > 0
    A = linear.factorize(R_aug, 8)
    x = np.array([0.3, -1.2, 0.7])
    np.testing.assert_allclose((chain(A) @ x)[:2], R @ x[:2], atol=1e-13)


@pytest.mark.parametrize(
    "R, message",
    [
        (np.zeros((2, 2)), "singular"),
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "non-finite"),
        (np.ones(3), "square"),
    ],
)
def test_factorize_rejects_bad_input_clearly(R, message):
    with pytest.raises(ValueError, match=message):
        linear.factorize(R, 4)


def test_factorize_require_bound_refuses_shallow_depth():
    R = np.diag([np.e**2, 1.0])  # γ = 2, 3γ = 6
    with pytest.raises(ValueError, match="3γ"):
        linear.factorize(R, 5, require_bound=True)
    assert linear.factorize(R, 6, require_bound=True).shape == (6, 2, 2)
    with pytest.raises(ValueError, match="depth must be at least 1"):
        linear.factorize(R, 0)
