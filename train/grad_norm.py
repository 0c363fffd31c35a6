"""The gradients' global norm in one reduction, and clipping by it (resjax.train.step).

Written out per leaf, as optax's ``tree.norm`` and ``clip_by_global_norm`` compute it,
the norm is one reduction per parameter leaf (165 leaves in ``fast``'s network, with its
biases and standardisation gains), each a kernel of its own. Over the leaves
concatenated it is one reduction; the clipping below takes the same norm, so that the
step computes it once for the clip and the logged metric alike (XLA merges the two).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def global_norm(tree) -> jax.Array:
    """sqrt(Σ x²) over every element of every leaf of ``tree``, in float32, as one
    reduction over the leaves raveled and concatenated. float32 scalar."""
    flat = jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree)])
    return jnp.sqrt(jnp.sum(jnp.square(flat)))


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
    """optax.clip_by_global_norm's rule, updates scaled by max_norm / norm where their
    global norm exceeds max_norm, with the norm of ``global_norm``; stateless, with the
    same (empty) state as optax's, so that checkpoints do not tell them apart."""

    def clip(updates, params=None):
        del params
        norm = global_norm(updates)
        return jax.tree.map(lambda t: jax.lax.select(norm < max_norm, t, (t / norm.astype(t.dtype)) * max_norm), updates)

    return optax.stateless(clip)
