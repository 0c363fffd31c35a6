"""Section 2, experiment 3: gradient descent from the identity where the hypotheses fail.

Gradient descent on the population risk of `resjax.linear` from A = 0, with isotropic
inputs (Σ = Id, the setting of Bartlett, Helmbold and Long, ICML 2018), d = ``d``, on
four families of targets R:

- ``spd``: symmetric positive definite, eigenvalues log-spaced over a condition number
  ``param`` (BHL: polynomially many steps in ℓ and the condition number);
- ``det<0``: R = U diag(e^{γt}) Vᵀ with det R = −1 and γ(R) = ``param`` (Theorem 2.1 needs
  det R > 0: no factorisation with |||A||| < 1 exists);
- ``neg-eig``: symmetric with two eigenvalues −``param`` and the others 1, so det R > 0
  and Theorem 2.1 gives near-identity factorisations for large ℓ (BHL: gradient descent
  from the identity fails for symmetric targets with a negative eigenvalue);
- ``rotation``: a rotation by π − ``param`` in one plane, the identity elsewhere (det R = 1,
  at distance ‖R − Id‖ ≈ 2 from the identity).

Per (family, param, depth): the descent runs ``max_iters`` iterations at each step size
of ``etas`` × 1/(ℓ max(1, ‖R‖)²) and keeps the first to reach excess ≤ ``tol``, else the
one with the least final excess. Recorded every ``stride`` iterations: the excess, the
largest |||A||| (τ) and the smallest singular value of the product (how close the path
comes to a singular map). Next to them, Theorem 2.1's side: the |||A*||| of
`linear.factorize` (when det R > 0) and `linear.factorization_lower_bound`.

Run: resjax experiment hypotheses [--quick]
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from resjax import linear

from .grid import run_cells

COLUMNS = ("family", "param", "depth", "distance", "converged", "iterations", "excess", "max_norm", "min_sigma",
           "factorize_norm", "lower_bound")
FAMILIES = ("spd", "det<0", "neg-eig", "rotation")


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 4
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    spd_conds: tuple[float, ...] = (2.0, 10.0, 100.0)
    det_gammas: tuple[float, ...] = (0.1, 0.5)
    neg_eigs: tuple[float, ...] = (0.25, 1.0, 4.0)
    rotation_gaps: tuple[float, ...] = (1.0, 0.1, 0.01)  # π − angle
    tol: float = 1e-6
    max_iters: int = 20_000
    stride: int = 20
    etas: tuple[float, ...] = tuple(2.0**k for k in range(2, -5, -1))


QUICK = Config(d=3, depths=(1, 4), spd_conds=(10.0,), det_gammas=(0.5,), neg_eigs=(1.0,), rotation_gaps=(0.1,),
               max_iters=2_000)


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def make_target(family: str, param: float, d: int, seed: int = 0) -> np.ndarray:
    """One target of a family (see the module docstring), in a random basis."""
    rng = np.random.default_rng([FAMILIES.index(family), int(param * 1e4), d, seed])
    q = _rotation(rng, d)
    if family == "spd":
        return (q * param ** np.linspace(-0.5, 0.5, d)) @ q.T
    if family == "det<0":
        flip = np.diag([-1.0] + [1.0] * (d - 1))
        return (q @ flip * np.exp(param * np.linspace(-1.0, 1.0, d))) @ _rotation(rng, d).T
    if family == "neg-eig":
        return (q * np.array([-param, -param] + [1.0] * (d - 2))) @ q.T
    angle = np.pi - param
    block = np.eye(d)
    block[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return q @ block @ q.T


@functools.partial(jax.jit, static_argnames=("chunks", "stride"))
def trajectories(R, A0, etas, chunks: int, stride: int):
    """Gradient descent (Σ = Id) at every step size for chunks × stride iterations: per step
    size and chunk the excess, |||A||| and σ_min of the product after the chunk, shapes (n, chunks)."""
    eye = jnp.eye(R.shape[0])

    def one(eta):
        def chunk(A, _):
            A = jax.lax.fori_loop(0, stride, lambda _, A: A - eta * linear.risk_gradient(A, R, eye), A)
            sigma = jnp.linalg.svd(linear.product(A), compute_uv=False)[-1]
            return A, (linear.excess_risk(A, R, eye), linear.max_norm(A), sigma)

        return jax.lax.scan(chunk, A0, None, length=chunks)[1]

    return jax.vmap(one)(etas)


def run_one(family: str, param: float, depth: int, config: Config) -> dict:
    R = make_target(family, param, config.d)
    scale = 1.0 / (depth * max(1.0, np.linalg.norm(R, 2)) ** 2)
    etas = np.asarray(config.etas) * scale
    chunks = -(-config.max_iters // config.stride)
    excess, tau, sigma = (np.asarray(x) for x in trajectories(R, np.zeros((depth, config.d, config.d)), etas, chunks,
                                                               config.stride))
    hit = excess <= config.tol
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), chunks)  # first chunk at tolerance
    if hit.any():
        best = int(np.argmin(first))
        end = first[best] + 1
    else:
        best = int(np.nanargmin(np.where(np.isfinite(excess[:, -1]), excess[:, -1], np.inf)))
        end = chunks
    factorization = None
    if np.linalg.det(R) > 0:
        factorization = float(np.asarray(linear.max_norm(linear.factorize(R, depth))))
    return {"family": family, "param": param, "depth": depth, "distance": float(np.linalg.norm(R - np.eye(config.d), 2)),
            "converged": bool(hit.any()), "iterations": int(end * config.stride) if hit.any() else None,
            "eta": float(etas[best]), "excess": float(excess[best, end - 1]),
            "max_norm": float(np.nanmax(tau[best, :end])), "min_sigma": float(np.nanmin(sigma[best, :end])),
            "factorize_norm": factorization, "lower_bound": linear.factorization_lower_bound(R, depth),
            "stride": config.stride, "curve": [float(e) for e in excess[best]]}


def cases(config: Config) -> list[tuple[str, float, int]]:
    """Every (family, param, depth), in run order."""
    targets = ([("spd", c) for c in config.spd_conds] + [("det<0", g) for g in config.det_gammas]
               + [("neg-eig", lam) for lam in config.neg_eigs] + [("rotation", gap) for gap in config.rotation_gaps])
    return [(family, param, depth) for family, param in targets for depth in config.depths]


def check(config: Config) -> None:
    if config.d < 2 or min(config.depths) < 1 or config.max_iters < config.stride or config.stride < 1:
        raise ValueError("d ≥ 2 (the families need a plane), depths ≥ 1 and max_iters ≥ stride ≥ 1.")
    if any(c < 1 for c in config.spd_conds) or any(p <= 0 for p in (*config.neg_eigs, *config.rotation_gaps)):
        raise ValueError("spd_conds must be ≥ 1, neg_eigs and rotation_gaps > 0.")


def run(config: Config = Config(), progress=None) -> list[dict]:
    """One row per (family, param, depth), in float64; ``progress(1)`` after each."""
    check(config)
    return run_cells(cases(config), functools.partial(run_one, config=config), progress)


def size(config: Config) -> int:
    return len(cases(config))


def plot(rows: list[dict], path) -> None:
    """Per family: iterations to excess ≤ tol against depth, one line per parameter (×
    above the dotted budget line: never reached); and the excess along the path at the
    deepest depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = [f for f in FAMILIES if any(r["family"] == f for r in rows)]
    fig, axes = plt.subplots(2, len(families), figsize=(4.6 * len(families), 8), squeeze=False)
    for col, family in enumerate(families):
        top, bottom = axes[0, col], axes[1, col]
        params = sorted({r["param"] for r in rows if r["family"] == family})
        deepest = max(r["depth"] for r in rows if r["family"] == family)
        budget = max(r["stride"] * len(r["curve"]) for r in rows)
        for param, color in zip(params, plt.cm.viridis(np.linspace(0, 0.85, len(params)))):
            sel = sorted((r for r in rows if r["family"] == family and r["param"] == param), key=lambda r: r["depth"])
            done = [r for r in sel if r["converged"]]
            top.plot([r["depth"] for r in done], [r["iterations"] for r in done], "o-", color=color, label=f"{param:g}")
            for r in sel:
                if not r["converged"]:
                    top.plot(r["depth"], 2 * budget, "x", color=color, markersize=9)
            curve = next(r["curve"] for r in sel if r["depth"] == deepest)
            bottom.plot(np.arange(1, len(curve) + 1) * sel[0]["stride"], np.maximum(curve, 1e-12),
                        color=color, label=f"{param:g}")
        top.axhline(budget, color="grey", lw=0.8, ls=":")
        top.set(xscale="log", yscale="log", xlabel="depth ℓ", ylabel="iterations to excess ≤ tol (×: never)",
                title=family)
        bottom.set(yscale="log", xlabel=f"iterations (ℓ = {deepest})", ylabel="excess risk (best step size)")
        top.legend(fontsize=8, title={"spd": "cond", "det<0": "γ", "neg-eig": "−eigenvalue",
                                      "rotation": "π − angle"}[family])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
