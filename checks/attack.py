"""Adversarial search: gradient descent on a statement's slack with ``jax.grad``.

Sampling alone misses a false inequality whose counterexamples are thin (a boundary,
an alignment); the attack starts from the worst sampled batch and moves every float
array of every instance downhill on the slack (or on ``attack_objective``), through
the statement's domain map, with Adam on per-array rescaled coordinates so that
arrays of any magnitude move at the same relative rate. The best point of each
trajectory is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .statement import Statement

LEARNING_RATE = 0.03
_COMPILED: dict[tuple, object] = {}


def _attacker(statement: Statement, steps: int):
    key = (statement.evaluate, statement.domain, statement.attack_objective, steps)
    if key in _COMPILED:
        return _COMPILED[key]
    objective = statement.attack_objective or "slack"
    opt = optax.adam(LEARNING_RATE)

    def scores(u, scale, fixed):
        inst = statement.valid({**{k: u[k] * scale[k] for k in u}, **fixed})
        out = statement.evaluate(inst)
        return out[objective], out["slack"]

    batched = jax.vmap(scores)

    def total(u, scale, fixed):
        obj, slack = batched(u, scale, fixed)
        return jnp.sum(jnp.where(jnp.isfinite(obj), obj, 0.0)), slack

    @jax.jit
    def run(u, scale, fixed):
        def step(carry, _):
            u, state, best_u, best = carry
            (_, slack), g = jax.value_and_grad(total, has_aux=True)(u, scale, fixed)
            better = jnp.isfinite(slack) & (slack < best)
            pick = lambda new, old: jnp.where(better.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
            best_u = jax.tree.map(pick, u, best_u)
            best = jnp.where(better, slack, best)
            g = jax.tree.map(lambda x: jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), g)
            updates, state = opt.update(g, state)
            return (optax.apply_updates(u, updates), state, best_u, best), None

        init = (u, opt.init(u), u, jnp.full(next(iter(u.values())).shape[:1], jnp.inf, dtype=jnp.float64))
        (_, _, best_u, _), _ = jax.lax.scan(step, init, None, length=steps)
        return best_u

    _COMPILED[key] = run
    return run


def attack(statement: Statement, batch: dict, steps: int) -> dict:
    """Returns a batch of attacked instances (raw: pass them through ``statement.valid``)."""
    floats = {k: np.asarray(v) for k, v in batch.items() if np.issubdtype(np.asarray(v).dtype, np.floating)}
    fixed = {k: v for k, v in batch.items() if k not in floats}
    scale = {k: np.sqrt(np.mean(v.reshape(v.shape[0], -1) ** 2, axis=1)) + 1e-300 for k, v in floats.items()}
    scale = {k: s.reshape((-1,) + (1,) * (floats[k].ndim - 1)) * np.ones_like(floats[k]) for k, s in scale.items()}
    u = {k: floats[k] / scale[k] for k in floats}
    best_u = _attacker(statement, steps)(u, scale, fixed)
    return {**{k: np.asarray(best_u[k]) * scale[k] for k in floats}, **fixed}
