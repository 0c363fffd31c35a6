"""Instance generators: hypothesis draws a spec, NumPy builds a batch from it.

Hypothesis chooses the structure (dimension, depth, conditioning, scale, which
adversarial family, seed); each spec becomes a batch of float64 instances with that
structure, so a whole batch is evaluated by one compiled, vmapped function.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from resjax import normal_form

# Every new (d, depth) costs one XLA compile (about a second here), so the quick
# profile draws from a few shapes that span the range; thorough draws any shape.
QUICK_SHAPES = ((1, 1), (3, 8), (16, 64))
MAX_D, MAX_DEPTH = 16, 64


def shapes(profile: str):
    """(d, depth) pairs: d in 1..16, depth in 1..64."""
    if profile == "quick":
        return st.sampled_from(QUICK_SHAPES)
    return st.tuples(st.integers(1, MAX_D), st.integers(1, MAX_DEPTH))


def dims(profile: str):
    return shapes(profile).map(lambda s: s[0])


def seeds():
    return st.integers(0, 2**31 - 1)


def orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    """A Haar-random d x d orthogonal matrix."""
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def spectrum(rng: np.random.Generator, d: int, log_cond: float, log_scale: float) -> np.ndarray:
    """d positive values spread over [10^-log_cond, 1] times 10^log_scale, extremes included."""
    u = rng.uniform(size=d)
    if d >= 2:
        u[:2] = [0.0, 1.0]
    return 10.0 ** (log_scale - log_cond * u)


def with_singular_values(rng: np.random.Generator, s: np.ndarray) -> np.ndarray:
    d = s.shape[0]
    return (orthogonal(rng, d) * s) @ orthogonal(rng, d).T


def psd_factor(rng: np.random.Generator, w: np.ndarray) -> np.ndarray:
    """L with L Lᵀ having eigenvalues w (w ≥ 0), random eigenvectors."""
    return orthogonal(rng, w.shape[0]) * np.sqrt(w)


def rotation_with_angles(rng: np.random.Generator, d: int, angles: np.ndarray) -> np.ndarray:
    """An element of SO(d) rotating ⌊d/2⌋ random orthogonal planes by the given angles."""
    S = orthogonal(rng, d)
    thetas = np.resize(np.asarray(angles, dtype=np.float64), d // 2)
    return normal_form.rotation_power(S, thetas, 1.0)


def angles(rng: np.random.Generator, d: int, mode: str) -> np.ndarray:
    """Rotation angles: uniform, exactly π (the worst case), just below π, or none."""
    n = max(d // 2, 1)
    if mode == "pi":
        return np.full(n, np.pi)
    if mode == "near_pi":
        return np.pi - 10.0 ** rng.uniform(-12, -2, size=n)
    if mode == "none":
        return np.zeros(n)
    return rng.uniform(0, np.pi, size=n)


def layers_in_ball(rng: np.random.Generator, depth: int, d: int, tau: float, mode: str) -> np.ndarray:
    """A of shape (depth, d, d) with every ‖A_i‖ ≤ τ.

    Modes: "random" (norms uniform in [0, τ]), "boundary" (all norms τ),
    "shrink" (A_i = −τ·Id, which shrinks every product by (1 − τ)), "rank1"
    (A_i = −τ v vᵀ for one unit v, shrinking along v only).
    """
    if mode == "shrink":
        return np.broadcast_to(-tau * np.eye(d), (depth, d, d)).copy()
    if mode == "rank1":
        v = rng.normal(size=d)
        v /= np.linalg.norm(v)
        return np.broadcast_to(-tau * np.outer(v, v), (depth, d, d)).copy()
    A = rng.normal(size=(depth, d, d))
    A /= np.linalg.norm(A, ord=2, axis=(1, 2), keepdims=True)
    radius = tau if mode == "boundary" else tau * rng.uniform(size=(depth, 1, 1))
    return A * radius


def batch(build_one, spec: dict, size: int) -> dict:
    """Stacks size instances of build_one(rng, spec), rng seeded from spec["seed"]."""
    rng = np.random.default_rng(spec["seed"])
    items = [build_one(rng, spec) for _ in range(size)]
    return {k: np.stack([it[k] for it in items]) for k in items[0]}
