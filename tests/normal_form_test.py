"""resjax.normal_form: Claim C.1 for normal matrices and for rotations."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from resjax import normal_form


@given(st.integers(1, 10), st.integers(0, 2**31 - 1), st.sampled_from(["symmetric", "skew", "orthogonal", "blocks"]))
def test_normal_form_reconstructs_with_rotation_blocks(d, seed, kind):
    rng = np.random.default_rng(seed)
    O, _ = np.linalg.qr(rng.normal(size=(d, d)))
    X = rng.normal(size=(d, d))
    M = {"symmetric": X + X.T, "skew": X - X.T, "orthogonal": O, "blocks": O @ np.diag(rng.normal(size=d)) @ O.T}[kind]
    S, D, blocks = normal_form.normal_form(M)
    np.testing.assert_allclose(S @ D @ S.T, M, atol=1e-12 * max(1, np.linalg.norm(M)))
    np.testing.assert_allclose(S.T @ S, np.eye(d), atol=1e-12)
    assert sum(size for _, size in blocks) == d
    for start, size in blocks:
        if size == 2:
            a, b = D[start, start], D[start, start + 1]
            np.testing.assert_allclose(D[start:start + 2, start:start + 2], [[a, b], [-b, a]])


def test_rotation_planes_pairs_minus_ones_into_pi_rotations():
    Q = np.diag([-1.0, 1.0, -1.0])
    S, thetas = normal_form.rotation_planes(Q)
    np.testing.assert_allclose(thetas, [np.pi])
    np.testing.assert_allclose(normal_form.rotation_power(S, thetas, 1.0), Q, atol=1e-14)
    half = normal_form.rotation_power(S, thetas, 0.5)
    np.testing.assert_allclose(half @ half, Q, atol=1e-14)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="not normal"):
        normal_form.normal_form(np.array([[1.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="rotation"):
        normal_form.rotation_planes(np.diag([-1.0, 1.0]))
