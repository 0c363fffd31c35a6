"""Section 2, experiment 1: gradient descent from the identity (A = 0) on deep linear residual nets.

For random targets R with det R > 0 and γ(R) set exactly (singular values e^{±γ}, random
rotations), and Σ ≻ 0 with a set condition number, gradient descent on the population
risk of `resjax.linear` runs from A = 0 until the excess risk f(A) − C_opt ≤ ``tol``, for
a grid of step sizes at once (the fastest that converges is kept). Per run: the
iterations, the largest |||A||| along the path (τ), and what the corrected Theorem 2.2
predicts: while the path stays in B_τ with τ < 1, ‖∇f‖² ≥ κ (f − C_opt) with
κ = 4ℓ (1 − τ)^{2(ℓ−1)} σ_min(Σ), and a gradient step of size η that decreases f by at
least (η/2)‖∇f‖² (the descent lemma, for η ≤ 1/smoothness) needs at most
log((f_0 − C_opt)/tol) / −log(1 − η κ / 2) iterations. The prediction assumes that
decrease; the chosen η need not give it, so measured > predicted is possible and says so.

Run: resjax experiment linear-gd [--quick]
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from resjax import linear

from .grid import run_cells

COLUMNS = ("d", "cond", "depth", "gamma", "seed", "converged", "iterations", "eta", "max_norm", "excess", "predicted")


@dataclasses.dataclass(frozen=True)
class Config:
    dims: tuple[int, ...] = (4, 16)
    conds: tuple[float, ...] = (1.0, 100.0)
    depths: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    gammas: tuple[float, ...] = (0.1, 1.0, 3.0)
    seeds: int = 1
    tol: float = 1e-6
    max_iters: int = 20_000
    etas: tuple[float, ...] = tuple(2.0**k for k in range(8, -10, -1))  # × 1/(ℓ σ_max(Σ) e^{2γ}); too large diverge


QUICK = Config(dims=(3,), conds=(10.0,), depths=(1, 4, 16), gammas=(0.1, 1.0), seeds=1, max_iters=5_000)


def target(rng: np.random.Generator, d: int, gamma: float) -> np.ndarray:
    """R = U diag(e^{γ t}) Vᵀ, t from −1 to 1 (so γ(R) = γ exactly), U, V rotations: det R > 0."""
    def rotation():
        q, r = np.linalg.qr(rng.normal(size=(d, d)))
        q = q * np.sign(np.diag(r))
        if np.linalg.det(q) < 0:
            q[:, 0] *= -1
        return q

    return (rotation() * np.exp(gamma * np.linspace(-1.0, 1.0, d))) @ rotation().T


def moment(rng: np.random.Generator, d: int, cond: float) -> np.ndarray:
    """Σ = Q diag(σ) Qᵀ with σ log-spaced from 1/√cond to √cond."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s = np.sqrt(cond) ** np.linspace(-1.0, 1.0, d)
    return (q * s) @ q.T


@functools.partial(jax.jit, static_argnames="track_norm")
def descend(R, Sigma, A0, etas, tol, max_iters, track_norm: bool = True):
    """Gradient descent on the layers A (ℓ, d, d) from A0, for every step size of ``etas`` at
    once, until one converges (excess ≤ tol) or ``max_iters``: per step size the iterations
    (−1 still running, −2 diverged), the largest |||A||| seen (0 unless ``track_norm``),
    the excess; and the initial excess. A plain product W_ℓ···W_1 is the same descent on
    A = W − Id (the gradients in W and in A are equal)."""
    grad = jax.vmap(linear.risk_gradient, (0, None, None))
    excess = jax.vmap(linear.excess_risk, (0, None, None))
    norm = jax.vmap(lambda A: jnp.max(jnp.linalg.norm(A, ord=2, axis=(-2, -1))))
    n = etas.shape[0]
    A = jnp.broadcast_to(A0, (n, *A0.shape))
    e0 = excess(A, R, Sigma)

    def active(c):  # until the first step size converges (no other can then be faster), or all fail
        return (c["t"] < max_iters) & jnp.any(c["iters"] == -1) & ~jnp.any(c["iters"] > 0)

    def step(c):  # the largest |||A||| is an SVD per layer per iteration: most of the cost when tracked
        live = (c["iters"] == -1)[:, None, None, None]
        A = jnp.where(live, c["A"] - etas[:, None, None, None] * grad(c["A"], R, Sigma), c["A"])
        e = excess(A, R, Sigma)
        t = c["t"] + 1
        done = (c["iters"] == -1) & (e <= tol)
        broken = (c["iters"] == -1) & ~(e < 1e6 * (e0 + 1.0))  # diverged or NaN: that step size is out
        iters = jnp.where(done, t, jnp.where(broken, -2, c["iters"]))
        tau = jnp.maximum(c["tau"], jnp.where(live[:, 0, 0, 0], norm(A), 0.0)) if track_norm else c["tau"]
        return {"A": A, "t": t, "iters": iters, "tau": tau, "excess": e}

    init = {"A": A, "t": 0, "iters": jnp.full(n, -1), "tau": jnp.zeros(n), "excess": e0}
    out = jax.lax.while_loop(active, step, init)
    return out["iters"], out["tau"], out["excess"], e0


def predicted_iterations(depth: int, tau: float, sigma_min: float, eta: float, excess0: float, tol: float) -> float:
    """The PL bound of the corrected Theorem 2.2 (inf when the path left B_1)."""
    if tau >= 1.0:
        return math.inf
    kappa = 4 * depth * (1 - tau) ** (2 * (depth - 1)) * sigma_min
    rate = min(eta * kappa / 2, 1.0 - 1e-16)
    return math.log(max(excess0 / tol, 1.0)) / -math.log1p(-rate)


def run_one(d: int, cond: float, depth: int, gamma: float, seed: int, config: Config) -> dict:
    rng = np.random.default_rng([d, int(cond), depth, int(gamma * 1000), seed])
    R, Sigma = target(rng, d, gamma), moment(rng, d, cond)
    scale = 1.0 / (depth * np.linalg.eigvalsh(Sigma)[-1] * math.exp(2 * gamma))
    etas = np.asarray(config.etas) * scale
    iters, tau, excess, e0 = (np.asarray(x) for x in descend(R, Sigma, np.zeros((depth, d, d)), etas, config.tol,
                                                            config.max_iters))
    ok = np.flatnonzero(iters > 0)
    row = {"d": d, "cond": cond, "depth": depth, "gamma": gamma, "seed": seed, "converged": bool(ok.size)}
    if ok.size:
        best = ok[np.argmin(iters[ok])]
        row.update(iterations=int(iters[best]), eta=float(etas[best]), max_norm=float(tau[best]),
                   excess=float(excess[best]),
                   predicted=predicted_iterations(depth, float(tau[best]), float(np.linalg.eigvalsh(Sigma)[0]),
                                                  float(etas[best]), float(e0[best]), config.tol))
        return row
    live = np.flatnonzero(iters == -1)  # ran out of iterations without diverging: the closest of those
    best = live[np.argmin(excess[live])] if live.size else None
    row.update(iterations=None, eta=None if best is None else float(etas[best]),
               max_norm=None if best is None else float(tau[best]),
               excess=None if best is None else float(excess[best]), predicted=None)
    return row


def cells(config: Config) -> list[tuple[int, float, int, float, int]]:
    """Every (d, cond, depth, γ, seed), in run order."""
    return [(d, cond, depth, gamma, seed) for d in config.dims for cond in config.conds for depth in config.depths
            for gamma in config.gammas for seed in range(config.seeds)]


def run(config: Config = Config(), progress=None) -> list[dict]:
    """Every (d, cond, depth, γ, seed) of the grid, in float64; ``progress(1)`` after each."""
    return run_cells(cells(config), functools.partial(run_one, config=config), progress)


def size(config: Config) -> int:
    return len(cells(config))


def plot(rows: list[dict], path) -> None:
    """Iterations and the largest |||A||| against depth, one line per γ (largest d, each
    condition number a line style), and measured against predicted iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    d = max(r["d"] for r in rows)
    styles = dict(zip(sorted({r["cond"] for r in rows}), ("-", "--", ":", "-.")))
    for (gamma, cond), color in zip(sorted({(r["gamma"], r["cond"]) for r in rows}), plt.cm.viridis(np.linspace(0, 0.9, 20))):
        sel = [r for r in rows if r["d"] == d and r["gamma"] == gamma and r["cond"] == cond and r["converged"]]
        depths = sorted({r["depth"] for r in sel})
        mean = lambda key: [np.mean([r[key] for r in sel if r["depth"] == k]) for k in depths]
        kw = dict(marker="o", linestyle=styles[cond], label=f"γ={gamma:g}, cond={cond:g}")
        a.plot(depths, mean("iterations"), **kw)
        b.plot(depths, mean("max_norm"), **kw)
    a.set(xscale="log", yscale="log", xlabel="depth ℓ", ylabel="iterations to excess ≤ tol", title=f"d = {d}")
    b.set(xscale="log", yscale="log", xlabel="depth ℓ", ylabel="largest |||A||| on the path")
    b.axhline(1.0, color="grey", lw=0.8)
    pairs = [(r["predicted"], r["iterations"]) for r in rows if r["converged"] and math.isfinite(r["predicted"])]
    if pairs:
        p, m = np.array(pairs).T
        c.scatter(p, m, s=10)
        lim = [min(p.min(), m.min()), max(p.max(), m.max())]
        c.plot(lim, lim, color="grey", lw=0.8)
    c.set(xscale="log", yscale="log", xlabel="predicted (corrected Thm 2.2, PL)", ylabel="measured iterations")
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
