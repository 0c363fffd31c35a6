"""resjax.train.grad_norm: the global norm in one reduction, and clipping by it, against optax."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from resjax.train import grad_norm


def tree(scale: float = 1.0):
    keys = jax.random.split(jax.random.key(0), 4)
    return {
        "conv": {"kernel": scale * jax.random.normal(keys[0], (3, 3, 4, 8)), "bias": scale * jax.random.normal(keys[1], (8,))},
        "gain": scale * jax.random.normal(keys[2], ()),
        "head": (scale * jax.random.normal(keys[3], (8, 10))).astype(jnp.bfloat16),
    }


def test_global_norm_is_the_norm_of_all_elements_in_float32():
    exact = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree())))
    np.testing.assert_allclose(grad_norm.global_norm(tree()), exact, rtol=1e-6)  # the bf16 leaf squared in float32
    assert grad_norm.global_norm(tree()).dtype == jnp.float32


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])  # below, near and above the norm 5 (about 10 at scale 1)
def test_clip_is_optaxs_on_both_sides_of_the_threshold(scale):
    ours, theirs = grad_norm.clip_by_global_norm(5.0), optax.clip_by_global_norm(5.0)
    g = jax.tree.map(lambda x: x.astype(jnp.float32), tree(scale))
    clipped = ours.update(g, ours.init(g))[0]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), clipped, theirs.update(g, theirs.init(g))[0])
    assert float(grad_norm.global_norm(clipped)) == pytest.approx(min(5.0, float(grad_norm.global_norm(g))), rel=1e-5)


def test_clip_state_is_optaxs_so_checkpoints_match():
    g = tree()
    ours, theirs = grad_norm.clip_by_global_norm(1.0).init(g), optax.clip_by_global_norm(1.0).init(g)
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)


def reductions(fn, *args) -> int:
    return len(re.findall(r" reduce\(", jax.jit(fn).lower(*args).compile().as_text()))


def test_norm_is_one_reduction_and_the_clip_shares_it():
    g = jax.tree.map(lambda x: x.astype(jnp.float32), tree())
    clip = grad_norm.clip_by_global_norm(1.0)
    alone = reductions(grad_norm.global_norm, g)
    assert alone == 1
    per_leaf = optax.clip_by_global_norm(1.0)
    arrays = [x for x in jax.tree.leaves(g) if x.ndim]  # optax's: one reduction per leaf that is not a scalar
    assert reductions(lambda g: per_leaf.update(g, per_leaf.init(g))[0], g) == len(arrays) == 3
    # the step's pattern: clip, then log the same norm; XLA computes it once
    assert reductions(lambda g: (clip.update(g, clip.init(g))[0], grad_norm.global_norm(g)), g) == alone
