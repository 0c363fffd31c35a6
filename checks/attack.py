"""Adversarial search: gradient descent on a statement's slack with ``jax.grad``.

Sampling alone misses a false inequality whose counterexamples are thin (a boundary,
an alignment); the attack starts from the worst sampled instances and moves every
float array of every instance downhill on the slack (or on ``attack_objective``),
through the statement's domain map, with Adam on per-array rescaled coordinates so
that arrays of any magnitude move at the same relative rate. The best point of each
trajectory is kept. Steps run in compiled chunks until the step count or the time
budget is spent, so cheap statements get many steps and costly ones fewer.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .statement import Statement

# Adam's step shrinks from 10% to 0.01% of each array's scale over the run: large
# moves find the region, small ones settle on its boundary.
LEARNING_RATE = (0.1, 1e-4)
CHUNK = 25
_COMPILED: dict[tuple, object] = {}


def _chunk_runner(statement: Statement, steps: int):
    key = (statement.evaluate, statement.domain, statement.attack_objective, steps)
    if key in _COMPILED:
        return _COMPILED[key]
    objective = statement.attack_objective or "slack"
    opt = optax.adam(optax.exponential_decay(LEARNING_RATE[0], steps, LEARNING_RATE[1] / LEARNING_RATE[0]))

    def scores(u, scale, fixed):
        inst = statement.valid({**{k: u[k] * scale[k] for k in u}, **fixed})
        out = statement.evaluate(inst)
        return out[objective], out["slack"]

    def total(u, scale, fixed):
        obj, slack = jax.vmap(scores)(u, scale, fixed)
        return jnp.sum(jnp.where(jnp.isfinite(obj), obj, 0.0)), slack

    def step(carry, _):
        u, state, best_u, best, scale, fixed = carry
        (_, slack), g = jax.value_and_grad(total, has_aux=True)(u, scale, fixed)
        better = jnp.isfinite(slack) & (slack < best)
        pick = lambda new, old: jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
        best_u = jax.tree.map(pick, u, best_u)
        best = jnp.where(better, slack, best)
        g = jax.tree.map(lambda x: jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), g)
        updates, state = opt.update(g, state)
        return (optax.apply_updates(u, updates), state, best_u, best, scale, fixed), None

    @jax.jit
    def chunk(carry):
        carry, _ = jax.lax.scan(step, carry, None, length=CHUNK)
        return carry

    _COMPILED[key] = (opt, chunk)
    return opt, chunk


def attack(statement: Statement, batch: dict, steps: int, seconds: float = float("inf")) -> dict:
    """Returns a batch of attacked instances (raw: pass them through ``statement.valid``).

    Runs at most ``steps`` steps, stopping early once ``seconds`` have passed after
    the first chunk (which includes compiling).
    """
    floats = {k: np.asarray(v) for k, v in batch.items() if np.issubdtype(np.asarray(v).dtype, np.floating)}
    fixed = {k: v for k, v in batch.items() if k not in floats}
    n = next(iter(floats.values())).shape[0]
    scale = {k: np.sqrt(np.mean(v.reshape(n, -1) ** 2, axis=1)) + 1e-300 for k, v in floats.items()}
    scale = {k: s.reshape((-1,) + (1,) * (floats[k].ndim - 1)) * np.ones_like(floats[k]) for k, s in scale.items()}
    u = {k: floats[k] / scale[k] for k in floats}
    opt, chunk = _chunk_runner(statement, steps)
    carry = (u, opt.init(u), u, jnp.full((n,), jnp.inf, dtype=jnp.float64), scale, fixed)
    start = None
    for _ in range(max(1, steps // CHUNK)):
        carry = jax.block_until_ready(chunk(carry))
        start = start or time.perf_counter()
        if time.perf_counter() - start > seconds:
            break
    best_u = carry[2]
    return {**{k: np.asarray(best_u[k]) * scale[k] for k in floats}, **fixed}
