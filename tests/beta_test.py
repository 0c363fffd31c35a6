"""resjax.train.beta: Beta draws for mixup without rejection loops, against scipy's laws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from resjax.train import beta, step

DRAWS = 20_000
# Kolmogorov-Smirnov's critical statistic for DRAWS draws at level 1e-3: a correct sampler
# exceeds it once in a thousand seeds (the keys here are fixed, so the test is deterministic)
KS_CRITICAL = np.sqrt(-np.log(1e-3 / 2) / 2 / DRAWS)


def draws(fn) -> np.ndarray:
    keys = jax.random.split(jax.random.key(0), DRAWS)
    return np.asarray(jax.jit(jax.vmap(fn))(keys), np.float64)


@pytest.mark.parametrize("shape", [0.05, 0.2, 0.7, 1.0, 3.0, 30.0])
def test_log_gamma_follows_the_log_of_a_gamma_variable(shape):
    # in logs: float32 keeps every draw of a small shape apart from 0 there
    ks = scipy.stats.kstest(draws(lambda k: beta.log_gamma(k, shape)), scipy.stats.loggamma(shape).cdf)
    assert ks.statistic < KS_CRITICAL


def test_a_sampler_without_the_boost_below_shape_one_is_caught():
    """The test above can fail: Gamma(shape + 1) in place of Gamma(shape) is far off."""
    wrong = draws(lambda k: beta.log_gamma(k, 1.2))
    assert scipy.stats.kstest(wrong, scipy.stats.loggamma(0.2).cdf).statistic > 20 * KS_CRITICAL


@pytest.mark.parametrize("a, b", [(1.0, 1.0), (2.0, 5.0), (0.5, 3.0), (30.0, 30.0)])
def test_sample_follows_beta(a, b):
    # not at shapes such as 0.2, where float32 rounds 2% of Beta(0.2, 0.2)'s draws to exactly 1
    # (jax.random.beta's too): the gammas are tested in logs above
    ks = scipy.stats.kstest(draws(lambda k: beta.sample(k, a, b)), scipy.stats.beta(a, b).cdf)
    assert ks.statistic < KS_CRITICAL


def test_sample_at_mixups_shape_is_symmetric_and_in_the_unit_interval():
    lam = draws(lambda k: beta.sample(k, 0.2, 0.2))
    assert np.all((lam >= 0) & (lam <= 1))
    assert abs(np.mean(lam) - 0.5) < 4 * np.sqrt(scipy.stats.beta(0.2, 0.2).var() / DRAWS)
    assert abs(np.mean(lam < 0.1) - scipy.stats.beta(0.2, 0.2).cdf(0.1)) < 0.01


def test_mixup_draws_its_weight_without_a_loop():
    """No while loop and no rejection-sampling primitive (jax.random.beta's random_gamma,
    lowered to nested while loops) in mixup's program."""
    x, targets = jnp.zeros((4, 2, 2, 3)), jnp.eye(4)
    program = str(jax.make_jaxpr(lambda k: step.mixup(k, x, targets, 0.2))(jax.random.key(0)))
    assert "while" not in program and "random_gamma" not in program
    assert "random_gamma" in str(jax.make_jaxpr(lambda k: jax.random.beta(k, 0.2, 0.2))(jax.random.key(0)))


@pytest.mark.parametrize("a, b", [(0.0, 1.0), (1.0, -0.5), (float("nan"), 1.0)])
def test_sample_refuses_shapes_that_are_not_positive(a, b):
    with pytest.raises(ValueError, match="a > 0 and b > 0"):
        beta.sample(jax.random.key(0), a, b)
