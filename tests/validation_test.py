"""Bad input to the library is refused at the boundary with ValueError/TypeError that says
what is wrong; good input gives the right answer. Fixed cases first, then hypothesis
feeding malformed values to the public functions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import event, given, strategies as st

from resjax import expressivity, linear, models, normal_form

EYE = np.eye(2)
A = 0.1 * np.ones((3, 2, 2))


def chain(A):
    P = np.eye(A.shape[-1])
    for A_j in A:
        P = P + A_j @ P
    return P


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: linear.population_risk(A, EYE, np.diag([1.0, -1.0])), ValueError, "Sigma must be positive semi-definite"),
        (lambda: linear.population_risk(A, EYE, np.array([[1.0, 0.5], [0.0, 1.0]])), ValueError, "Sigma must be symmetric"),
        (lambda: linear.population_risk(A[0], EYE, EYE), ValueError, r"A must have shape \(ℓ, d, d\) with ℓ, d ≥ 1 \(layer j is A\[j − 1\]\), got \(2, 2\)"),
        (lambda: linear.risk_gradient(A[0], EYE, EYE), ValueError, r"A must have shape"),
        (lambda: linear.risk_gradient(A, np.eye(3), EYE), ValueError, r"R must have shape \(2, 2\)"),
        (lambda: linear.population_risk(A, EYE * np.nan, EYE), ValueError, "R has non-finite entries"),
        (lambda: linear.forward(A, np.ones((4, 3))), ValueError, r"x must have shape \(\.\.\., 2\)"),
        (lambda: linear.population_risk(A.astype(complex), EYE, EYE), TypeError, "real numbers"),
        (lambda: linear.population_risk("A", EYE, EYE), TypeError, "real numbers"),
        (lambda: linear.sample(0, EYE, EYE, 10), TypeError, "PRNG key"),
        (lambda: linear.sample(jax.random.key(0), EYE, -EYE, 10), ValueError, "positive semi-definite"),
        (lambda: linear.factorize(np.array([[1.0, 2.0], [2.0, 4.0 + 1e-15]]), 4), ValueError, "singular to float64"),
        (lambda: linear.factorize(np.diag([1e10, 1e-7]), 4), ValueError, "singular to float64"),
        (lambda: linear.factorize(EYE, True), TypeError, "depth must be an integer"),
        (lambda: linear.factorize(EYE, 2.0), TypeError, "depth must be an integer"),
        (lambda: linear.theorem_2_1_bound(-1.0, 4), ValueError, "gamma_R must be at least 0"),
        (lambda: normal_form.normal_form(np.eye(2, dtype=complex)), TypeError, "real numbers"),
        (lambda: normal_form.rotation_power(2 * EYE, np.array([0.1]), 0.5), ValueError, "S must be orthogonal"),
        (lambda: expressivity.normalize(np.array([[1.0, np.inf]])), ValueError, "non-finite"),
        (lambda: expressivity.construct(np.eye(3), [0, 1, 2], "3", jax.random.key(0)), TypeError, "num_classes"),
        (lambda: expressivity.construct(np.eye(3), [0, 1, 2], 3, 0), TypeError, "PRNG key"),
        (lambda: expressivity.move_block(np.eye(3), np.eye(3)[:2], [0, 0]), ValueError, "distinct integer indices"),
        (lambda: expressivity.apply({"A0": np.eye(2)}, np.eye(2)), TypeError, "params must be a dict"),
        (lambda: models.table1(norm="batchnorm"), ValueError, r"norm='batchnorm' is not one of None, 'batch' \(did you mean 'batch'\?\)"),
        (lambda: models.table1(head="train"), ValueError, r"did you mean 'trained'"),
        (lambda: models.table1(widths=(64, 128)), ValueError, "same length"),
        (lambda: models.table1(num_classes=0), ValueError, "num_classes must be at least 1"),
        (lambda: models.table1(widht=(64,)), TypeError, r"unknown network option 'widht' \(did you mean 'widths'\?\)"),
        (lambda: models.table1(widths=(64, 32, 256)), ValueError, "must not decrease"),
        (lambda: models.table1(conv_bias="yes"), TypeError, "conv_bias must be true or false"),
    ],
)
def test_bad_input_is_refused_with_a_message_that_says_what_is_wrong(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_shapes_are_checked_under_jit_and_vmap_too():
    with pytest.raises(ValueError, match="R must have shape"):
        jax.jit(linear.population_risk)(A, np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="A must have shape"):
        jax.vmap(linear.risk_gradient, (0, None, None))(A, EYE, EYE)  # per example A is (2, 2)


def test_values_are_not_checked_inside_jit_which_stays_free_of_host_work():
    # documented: Σ's definiteness is unknown while tracing; the caller validates before jitting
    risk = jax.jit(linear.population_risk)(A, EYE, np.diag([1.0, -1.0]))
    assert np.isfinite(float(risk))


def test_determinant_sign_is_judged_relative_to_the_norm():
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    R = 1e-170 * rotation  # det = 1e-340 underflows to 0, yet R is perfectly conditioned
    A = linear.factorize(R, 8)
    np.testing.assert_allclose(chain(A), R, rtol=0, atol=1e-12 * 1e-170 + 64 * 8 * 2 * np.finfo(float).eps)


def test_stride_two_shortcut_refuses_odd_images_at_build_time():
    net = models.table1(10, stem=(3, 4, 1), widths=(4, 8), blocks=(1, 1), strides=(1, 2))
    with pytest.raises(ValueError, match="7x7 is not divisible by 2"):
        jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 7, 7, 3)))


# ----------------------------------------------------------------- hypothesis: malformed values

SEEDS = st.integers(0, 99)
JUNK = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.just([[1.0, 2.0], [3.0]]), st.floats(), st.integers(-3, 3))


def normal(shape, scale=1.0):
    return st.builds(lambda seed: scale * np.random.default_rng(seed).normal(size=shape), SEEDS)


def malformed(shape):
    """Values that must be refused where an array of this shape is expected."""
    other = st.lists(st.integers(0, 3), max_size=4).map(tuple).filter(lambda s: s != shape)
    return st.one_of(
        other.flatmap(normal),
        st.sampled_from([np.nan, np.inf]).map(lambda v: np.full(shape, v)),
        st.just(np.ones(shape, dtype=complex)),
        st.just(np.ones(shape, dtype=bool)),
        JUNK,
    )


def arg(valid, bad):
    """Valid three times in four, so that whole calls are often valid and often not (a
    nested one_of would be flattened into equal branches). bad: a shape (malformed
    arrays for it) or a strategy."""
    bad = malformed(bad) if isinstance(bad, tuple) else bad
    return st.sampled_from([True, True, True, False]).flatmap(lambda ok: valid if ok else bad)


BAD_COUNTS = st.one_of(st.integers(-2, 0), st.just(2.0), st.just(np.float64(3.0)), JUNK)


def det_positive(R):
    return R * np.sign(np.linalg.det(R)) if R.shape[0] % 2 else R if np.linalg.det(R) > 0 else R[::-1].copy()


def psd(d):
    return normal((d, d)).map(lambda L: L @ L.T)


def indefinite(d):
    return psd(d).map(lambda S: S - (np.linalg.eigvalsh(S)[-1] + 1.0) * np.eye(d) if d else S)


def _refused_or(check, call):
    """Either the call raises ValueError/TypeError, or its result passes ``check``."""
    try:
        result = call()
    except (ValueError, TypeError) as e:
        event(f"refused: {type(e).__name__}")
        return
    event("computed and checked")
    check(result)


@given(st.data())
def test_population_risk_and_its_gradient_are_correct_or_refused(data):
    d, ell = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    A = data.draw(arg(normal((ell, d, d), 0.3), (ell, d, d)))
    R = data.draw(arg(normal((d, d)), (d, d)))
    Sigma = data.draw(st.one_of(arg(psd(d), (d, d)), indefinite(d)))

    def risk_is_right(risk):
        E = chain(A) - R
        np.testing.assert_allclose(float(risk), np.trace(E @ Sigma @ E.T) + d, rtol=1e-9, atol=1e-9)

    def gradient_is_right(grad):
        np.testing.assert_allclose(grad, jax.grad(linear.population_risk)(A, R, Sigma), rtol=1e-8, atol=1e-10)

    _refused_or(risk_is_right, lambda: linear.population_risk(A, R, Sigma))
    _refused_or(gradient_is_right, lambda: linear.risk_gradient(A, R, Sigma))


@given(st.data())
def test_forward_is_correct_or_refused(data):
    d, ell, n = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    A = data.draw(arg(normal((ell, d, d), 0.3), (ell, d, d)))
    x = data.draw(arg(normal((n, d)), (n, d)))
    _refused_or(lambda y: np.testing.assert_allclose(y, x @ chain(A).T, rtol=1e-9, atol=1e-12),
                lambda: linear.forward(A, x))


@given(st.data())
def test_factorize_is_correct_or_refused(data):
    d = data.draw(st.integers(1, 3))
    R = data.draw(arg(normal((d, d)).map(det_positive), (d, d)))
    depth = data.draw(arg(st.integers(1, 12), BAD_COUNTS))

    def product_is_R(layers):
        assert layers.shape == (depth, d, d)
        atol = 64 * depth * d * np.finfo(np.float64).eps * max(1.0, np.linalg.norm(R, 2))
        np.testing.assert_allclose(chain(layers), R, rtol=0, atol=atol)

    _refused_or(product_is_R, lambda: linear.factorize(R, depth))


@given(st.data())
def test_normal_form_is_correct_or_refused(data):
    d = data.draw(st.integers(1, 3))
    M = data.draw(arg(psd(d), (d, d)))  # symmetric: normal; the rest is refused

    def reconstructs(out):
        S, D, _ = out
        np.testing.assert_allclose(S @ D @ S.T, M, atol=1e-9 * max(1.0, np.abs(M).max()))

    _refused_or(reconstructs, lambda: normal_form.normal_form(M))


@given(st.data())
def test_normalize_and_construct_are_correct_or_refused(data):
    n, d = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 3))
    X = data.draw(arg(normal((n, d)), (n, d)))
    num_classes = data.draw(arg(st.integers(2, 4), BAD_COUNTS))
    labels = np.arange(n) % 2

    def unit_rows(Y):
        np.testing.assert_allclose(np.linalg.norm(Y, axis=1), 1.0, rtol=1e-12)

    def fits(net):
        assert expressivity.fit_error(net.params, X, labels)[1] == 1.0

    _refused_or(unit_rows, lambda: expressivity.normalize(X))
    _refused_or(fits, lambda: expressivity.construct(X, labels, num_classes, jax.random.key(0), require_unit_norm=False))
