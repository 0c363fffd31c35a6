"""Beta draws without a data-dependent loop, for mixup's λ (resjax.train.step.mixup).

``jax.random.beta`` draws two gammas by rejection, each a ``lax.while_loop`` (nested:
19 ``while`` instructions in a compiled step with mixup, on JAX 0.10.2's CPU). On a GPU
every iteration of an XLA while loop reads its condition back to the host, which waits
for the device's queue to drain first, once per training step. Here each gamma is
Marsaglia and Tsang's rejection sampler run on a fixed number of proposals at once,
keeping the first accepted: the same distribution, a straight-line program.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Marsaglia-Tsang accepts a proposal with probability 0.952 at shape 1, rising with the
# shape (0.963 at 1.2, mixup 0.2's boosted shape; measured over 2 million proposals), so
# all 16 are rejected with probability below 1e-21; the draw is then the first proposal,
# and the distribution is Gamma's but for that event.
PROPOSALS = 16


def log_gamma(key: jax.Array, shape: float) -> jax.Array:
    """log of one Gamma(shape, 1) draw (Marsaglia and Tsang, 2000, "A simple method for
    generating gamma variables", ACM TOMS 26(3)): for shape >= 1, d v with
    v = (1 + x / sqrt(9 d))^3, x ~ N(0, 1), d = shape - 1/3, accepted when
    log u < x^2/2 + d - d v + d log v, u ~ U(0, 1). For shape < 1, their boost:
    Gamma(shape) = Gamma(shape + 1) · U^(1/shape), in logs, so that small shapes do not
    underflow (0.2: U^5). A scalar of JAX's default float type."""
    k_x, k_u, k_boost = jax.random.split(key, 3)
    s = shape if shape >= 1 else shape + 1
    d = s - 1 / 3
    x = jax.random.normal(k_x, (PROPOSALS,))
    cube = 1 + x / (9 * d) ** 0.5
    v = cube**3
    log_v = 3 * jnp.log(jnp.maximum(cube, jnp.finfo(cube.dtype).tiny))  # defined for rejected cube <= 0 too
    log_u = jnp.log(jax.random.uniform(k_u, (PROPOSALS,), minval=jnp.finfo(jnp.float32).tiny))
    accept = (cube > 0) & (log_u < x**2 / 2 + d - d * v + d * log_v)
    draw = (jnp.log(d) + log_v)[jnp.argmax(accept)]  # argmax: the first True (0 if none)
    if shape >= 1:
        return draw
    return draw + jnp.log(jax.random.uniform(k_boost, minval=jnp.finfo(jnp.float32).tiny)) / shape


def sample(key: jax.Array, a: float, b: float) -> jax.Array:
    """One Beta(a, b) draw, G_a / (G_a + G_b) for independent gammas, as a sigmoid of their
    logs' difference (exact where both are tiny). a, b > 0 (Python numbers: static).
    A scalar of JAX's default float type, in [0, 1]."""
    if not (a > 0 and b > 0):
        raise ValueError(f"Beta(a, b) needs a > 0 and b > 0, got a={a}, b={b}")
    k_a, k_b = jax.random.split(key)
    return jax.nn.sigmoid(log_gamma(k_a, a) - log_gamma(k_b, b))
