"""resjax.expressivity: block (3.1), Lemma B.1 and the construction of Theorem 3.2."""

import pathlib

import jax
import numpy as np
import pytest
from hypothesis import given, strategies as st

from resjax import expressivity as E

CIFAR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg" / "test.tar.gz"


def unit(rng, n, d):
    return E.normalize(rng.normal(size=(n, d)))


@given(st.integers(2, 300), st.integers(2, 12), st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_construction_fits_any_labelling_exactly(n, d, r, seed):
    rng = np.random.default_rng(seed)
    X, y = unit(rng, n, d), rng.integers(0, r, size=n)
    net = E.construct(X, y, r, jax.random.key(seed))
    err, acc = E.fit_error(net.params, X, y)
    assert acc == 1.0 and err < 1e-9
    assert net.parameter_count == E.parameter_count(net.params)


def test_many_classes_use_short_codes_and_still_fit():
    rng = np.random.default_rng(0)
    X, y = unit(rng, 400, 6), np.arange(400) % 200
    net = E.construct(X, y, 200, jax.random.key(1))
    assert net.width < 60  # 1 + O(log r), not r + 1
    err, acc = E.fit_error(net.params, X, y)
    assert acc == 1.0 and err < 1e-9


def test_apply_composes_with_jit_vmap_and_grad():
    rng = np.random.default_rng(1)
    X, y = unit(rng, 50, 4), rng.integers(0, 3, 50)
    params = E.construct(X, y, 3, jax.random.key(0)).params
    with jax.enable_x64(True):
        rows = jax.jit(jax.vmap(lambda x: E.apply(params, x[None])[0]))(X)
        np.testing.assert_allclose(rows, np.eye(3)[y], atol=1e-9)
        g = jax.grad(lambda p: E.apply(p, X).sum())(params)
        assert jax.tree.structure(g) == jax.tree.structure(params)


def test_float64_parameters_refuse_float32_evaluation():
    rng = np.random.default_rng(2)
    X = unit(rng, 10, 3)
    params = E.construct(X, np.zeros(10, int), 1, jax.random.key(0)).params
    with jax.enable_x64(False), pytest.raises(ValueError, match="float64"):
        E.apply(params, X)


def test_identical_points_same_label_fine_different_labels_named():
    rng = np.random.default_rng(3)
    X = unit(rng, 20, 5)
    X[7] = X[3]
    y = np.arange(20) % 4
    y[7] = y[3]
    net = E.construct(X, y, 4, jax.random.key(0))
    assert E.fit_error(net.params, X, y)[1] == 1.0
    y[7] = (y[3] + 1) % 4
    with pytest.raises(ValueError, match="rows 3 and 7"):
        E.construct(X, y, 4, jax.random.key(0))
    net = E.construct(X, y, 4, jax.random.key(0), drop_conflicts=True)
    assert net.conflicts == ((3, 7),)
    keep = np.setdiff1d(np.arange(20), [3, 7])
    assert E.fit_error(net.params, X[keep], y[keep])[1] == 1.0


@pytest.mark.parametrize(
    "X, y, r, message",
    [
        (np.ones((4, 2)), np.zeros(4, int), 1, "unit-norm"),
        (np.ones(4), np.zeros(4, int), 1, "shape"),
        (np.eye(3), np.array([0, 1, 3]), 3, "labels must lie"),
        (np.eye(3), np.zeros(2, int), 1, "labels must have shape"),
        (np.array([[np.nan, 1.0]]), np.zeros(1, int), 1, "not finite"),
    ],
)
def test_bad_inputs_get_clear_errors(X, y, r, message):
    with pytest.raises(ValueError, match=message):
        E.construct(X, y, r, jax.random.key(0))


def test_normalize_rejects_zero_rows():
    with pytest.raises(ValueError, match="zero"):
        E.normalize(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_separation_is_exact_against_brute_force():
    rng = np.random.default_rng(4)
    X = unit(rng, 700, 20)
    X[500] = E.normalize(X[100] + 1e-3 * rng.normal(size=20)[None])[0]
    D = ((X[:, None] - X[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    sep = E.separation(X, block_rows=128, rank=4)
    assert sep.rho == pytest.approx(D.min(), rel=1e-9)
    assert sep.pair == (100, 500)


def test_move_block_is_lemma_b1_and_refuses_a_hidden_point():
    rng = np.random.default_rng(5)
    alpha = unit(rng, 12, 6)
    beta = unit(rng, 4, 6)
    U, V, s = E.move_block(alpha, beta, np.arange(4))
    T = np.maximum(alpha @ U.T + s, 0) @ V.T
    np.testing.assert_allclose(T[:4], beta - alpha[:4], atol=1e-12)
    np.testing.assert_allclose(T[4:], 0, atol=1e-12)
    mid = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # the midpoint is no vertex
    with pytest.raises(ValueError, match="2ρ′"):
        E.move_block(mid, np.zeros((1, 2)), np.array([2]))


@pytest.mark.skipif(not CIFAR.exists(), reason="CIFAR-10 JPEGs not present (../shared/data/cifar10-jpeg)")
def test_construction_on_real_cifar_images():
    from resjax.train import data

    ds = data.load_image_folder(CIFAR, split="test")
    X = E.normalize(ds.images[:3000].reshape(3000, -1))
    y = ds.labels[:3000]
    net = E.construct(X, y, 10, jax.random.key(0))
    assert net.assumption.rho > 0  # Assumption 3.1 holds, reported with its pair
    i, j = net.assumption.pair
    assert np.sum((X[i] - X[j]) ** 2) == pytest.approx(net.assumption.rho)
    err, acc = E.fit_error(net.params, X, y)
    assert acc == 1.0 and err < 1e-9
    shuffled = np.random.default_rng(0).permutation(y)  # random labels fit as well
    net = E.construct(X, shuffled, 10, jax.random.key(1), assumption=net.assumption)
    assert E.fit_error(net.params, X, shuffled)[1] == 1.0
