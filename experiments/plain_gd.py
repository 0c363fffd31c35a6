"""Section 2, experiment 2: the same targets without the identity.

The plain parameterisation R̂ = W_ℓ···W_1 trained by gradient descent on the same
population risk, targets and Σ as `linear-gd` (R with det R > 0 and γ(R) set exactly,
Σ with a set condition number), from four initialisations of the layers W_i (d × d):

- ``identity``: W_i = Id, which is the residual parameterisation from A = 0 (the gradient
  in W equals the gradient in A = W − Id), the reference;
- ``glorot``: entries N(0, 1/d) (Glorot normal for a square layer);
- ``orthogonal``: Haar-random orthogonal (det ±1 with equal probability);
- ``small``: entries N(0, 10⁻⁴/d), Glorot scaled by 1/100.

Per seed a new R, Σ and initialisation; the same step-size search as `linear-gd` (all of
``etas`` at once, the fastest to reach excess ≤ ``tol`` kept). A seed *stalls* when no
step size reaches the tolerance within ``max_iters`` (some may diverge, none converges).
Counted too: seeds whose initial product has det < 0, on the wrong side of the singular
matrices from every target here (gradient descent must then cross det = 0).

Run: resjax experiment plain-gd [--quick]
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from .grid import run_cells
from .linear_gd import descend, moment, target

COLUMNS = ("init", "depth", "gamma", "seeds", "converged", "stalled", "neg_det0", "median_iters", "p90_iters",
           "median_stalled_excess")
INITS = ("identity", "glorot", "orthogonal", "small")


@dataclasses.dataclass(frozen=True)
class Config:
    d: int = 8
    cond: float = 10.0
    depths: tuple[int, ...] = (2, 4, 8, 16, 32)
    gammas: tuple[float, ...] = (0.1, 1.0)
    inits: tuple[str, ...] = INITS
    seeds: int = 100
    tol: float = 1e-6
    max_iters: int = 5_000
    etas: tuple[float, ...] = tuple(4.0**k for k in range(3, -4, -1))  # × 1/(ℓ σ_max(Σ) e^{2γ})


QUICK = Config(d=3, depths=(2, 8), gammas=(0.5,), seeds=8, max_iters=3_000)


def layers(rng: np.random.Generator, init: str, depth: int, d: int) -> np.ndarray:
    """The initial W (depth, d, d) of one seed."""
    if init == "identity":
        return np.broadcast_to(np.eye(d), (depth, d, d)).copy()
    if init == "orthogonal":
        q, r = np.linalg.qr(rng.normal(size=(depth, d, d)))
        return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]  # Haar: signs from R's diagonal
    scale = {"glorot": 1.0, "small": 1e-2}[init]
    return rng.normal(scale=scale / np.sqrt(d), size=(depth, d, d))


_descend_seeds = jax.jit(jax.vmap(lambda R, S, A0, etas, tol, n: descend(R, S, A0, etas, tol, n, track_norm=False),
                                  in_axes=(0, 0, 0, None, None, None)))


def run_cell(init: str, depth: int, gamma: float, config: Config) -> dict:
    """All seeds of one (init, depth, γ) at once (vmapped), float64."""
    rs, sigmas, w0 = [], [], []
    for seed in range(config.seeds):
        rng = np.random.default_rng([config.d, depth, int(gamma * 1000), seed])
        rs.append(target(rng, config.d, gamma))
        sigmas.append(moment(rng, config.d, config.cond))
        w0.append(layers(np.random.default_rng([INITS.index(init), config.d, depth, seed]), init, depth, config.d))
    w0 = np.stack(w0)
    scale = 1.0 / (depth * np.sqrt(config.cond) * np.exp(2 * gamma))  # σ_max(Σ) = √cond for every seed
    etas = np.asarray(config.etas) * scale
    iters, _, excess, _ = (np.asarray(x) for x in _descend_seeds(np.stack(rs), np.stack(sigmas), w0 - np.eye(config.d),
                                                                   etas, config.tol, config.max_iters))
    ok = (iters > 0).any(axis=1)
    best = np.where(iters > 0, iters, np.iinfo(np.int64).max).min(axis=1)[ok]
    stalled_excess = [np.nanmin(np.where(iters[s] == -1, excess[s], np.nan)) for s in np.flatnonzero(~ok)
                      if (iters[s] == -1).any()]
    det_sign = np.prod(np.sign(np.linalg.det(w0)), axis=1)
    return {"init": init, "depth": depth, "gamma": gamma, "seeds": config.seeds, "converged": int(ok.sum()),
            "stalled": int((~ok).sum()), "neg_det0": int((det_sign < 0).sum()),
            "median_iters": float(np.median(best)) if best.size else None,
            "p90_iters": float(np.percentile(best, 90)) if best.size else None,
            "median_stalled_excess": float(np.median(stalled_excess)) if stalled_excess else None,
            "iterations": [int(i) for i in best]}


def check(config: Config) -> None:
    bad = [i for i in config.inits if i not in INITS]
    if bad:
        raise ValueError(f"unknown inits {bad}; the initialisations are {list(INITS)}.")
    if min(config.d, config.seeds, config.max_iters, *config.depths) < 1 or config.cond < 1 or config.tol <= 0:
        raise ValueError("d, seeds, max_iters and depths must be ≥ 1, cond ≥ 1 and tol > 0.")


def cells(config: Config) -> list[tuple[str, int, float]]:
    """Every (init, depth, γ), in run order."""
    return [(init, depth, gamma) for gamma in config.gammas for depth in config.depths for init in config.inits]


def run(config: Config = Config(), progress=None) -> list[dict]:
    """One row per (init, depth, γ); ``progress(1)`` after each."""
    check(config)
    return run_cells(cells(config), functools.partial(run_cell, config=config), progress)


def size(config: Config) -> int:
    return len(cells(config))


def plot(rows: list[dict], path) -> None:
    """Per γ: the share of seeds that converge, and the iterations they take (median, with
    the 10th to 90th percentile), against depth, one line per initialisation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gammas = sorted({r["gamma"] for r in rows})
    fig, axes = plt.subplots(2, len(gammas), figsize=(6 * len(gammas), 8), squeeze=False)
    for col, gamma in enumerate(gammas):
        top, bottom = axes[0, col], axes[1, col]
        for init, color in zip(INITS, ("black", "tab:blue", "tab:orange", "tab:red")):
            sel = sorted((r for r in rows if r["gamma"] == gamma and r["init"] == init), key=lambda r: r["depth"])
            if not sel:
                continue
            depths = [r["depth"] for r in sel]
            top.plot(depths, [100 * r["converged"] / r["seeds"] for r in sel], "o-", color=color, label=init)
            conv = [r for r in sel if r["iterations"]]
            lo, med, hi = (np.array([np.percentile(r["iterations"], q) for r in conv]) for q in (10, 50, 90))
            bottom.plot([r["depth"] for r in conv], med, "o-", color=color, label=init)
            bottom.fill_between([r["depth"] for r in conv], lo, hi, color=color, alpha=0.15)
        top.set(xscale="log", ylim=(-3, 103), xlabel="depth ℓ", ylabel="% of seeds reaching excess ≤ tol",
                title=f"γ(R) = {gamma:g}")
        bottom.set(xscale="log", yscale="log", xlabel="depth ℓ", ylabel="iterations (converged seeds: median, 10–90%)")
        depths = sorted({r["depth"] for r in rows})
        for ax in (top, bottom):
            ax.set_xticks(depths, [str(k) for k in depths])
            ax.minorticks_off()
        top.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
