"""Section 3 and Appendix B: Lemma B.1, Lemma B.2 and Theorem 3.2, as printed and corrected.

The check of a construction is the network itself: its blocks are run on every point
and compared with the targets in float64. docs/section3.md derives the corrections.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from hypothesis import strategies as st

from resjax import expressivity

from . import strategies as S
from .statement import Statement, relative_slack

FIT_TOL = 1e-9
EPS = float(np.finfo(np.float64).eps)


def unit_rows(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    x = rng.normal(size=(n, k))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def min_sq_distance(P: np.ndarray) -> float:
    sq = np.einsum("ij,ij->i", P, P)
    D = sq[:, None] + sq[None, :] - 2 * P @ P.T
    np.fill_diagonal(D, np.inf)
    return float(D.min())


def printed_b1(alpha: np.ndarray, beta: np.ndarray, selected: np.ndarray, rho_p: float):
    """Lemma B.1's construction as printed: rows α_i, s = −(1 − 2ρ′)𝟙,
    columns (β_i − α_i)/(‖α_i‖² − (1 − 2ρ′))."""
    A = alpha[selected]
    denom = np.einsum("ij,ij->i", A, A) - (1 - 2 * rho_p)
    return A, ((beta - A) / denom[:, None]).T, np.full(len(selected), -(1 - 2 * rho_p))


def block_error(alpha, beta, selected, U, V, s) -> tuple[float, float]:
    """(max over points of |T(α) − wanted|, its rounding allowance), where wanted is
    β_i − α_i on the selected points and 0 elsewhere. The allowance is 64·k·ε·max|V|·max‖α‖²:
    a pre-activation rounded by ε‖α‖² is amplified by V."""
    T = np.maximum(alpha @ U.T + s, 0.0) @ V.T
    wanted = np.zeros_like(alpha)
    wanted[selected] = beta - alpha[selected]
    scale = np.abs(V).max() * np.einsum("ij,ij->i", alpha, alpha).max()
    return float(np.abs(T - wanted).max()), FIT_TOL + 64 * alpha.shape[1] * EPS * scale


# ----------------------------------------------------------------- Lemma B.1


def b1_specs(profile: str):
    return st.fixed_dictionaries(
        {
            "k": st.integers(2, 16),
            "extra": st.integers(0, 32),
            "norm_spread": st.floats(0.0, 1.0),
            "packed": st.booleans(),
            "seed": S.seeds(),
        }
    )


def b1_instance(rng: np.random.Generator, spec: dict) -> dict:
    """n = k + extra points meeting (a) and (b) with (b) tight: ρ′ = (least squared distance)/3.

    Packed: the first (selected) point and the last (unselected) one both have squared
    norm 1 + ρ′ and squared distance exactly 3ρ′, the closest (a) and (b) allow.
    """
    k, n = spec["k"], spec["k"] + spec["extra"]
    directions = unit_rows(rng, n, k)
    delta = min_sq_distance(directions)
    if spec["packed"]:
        rho_p = delta / 12
        alpha = directions * math.sqrt(1 + rho_p)
        v = rng.normal(size=k)
        v -= (v @ directions[0]) * directions[0]
        v /= np.linalg.norm(v)
        phi = math.acos(1 - 3 * rho_p / (2 * (1 + rho_p)))
        alpha[-1] = math.sqrt(1 + rho_p) * (math.cos(phi) * directions[0] + math.sin(phi) * v)
    else:
        eps = spec["norm_spread"] * delta / 12
        alpha = directions * np.sqrt(1 + eps * rng.uniform(-1, 1, size=(n, 1)))
        rho_p = min_sq_distance(alpha) / 3
    return {"alpha": alpha, "beta": unit_rows(rng, min(k, n - 1), k), "rho_prime": np.float64(rho_p)}


def build_b1(spec: dict, size: int) -> dict:
    return S.batch(b1_instance, spec, size)


def b1_conditions(alpha, rho_p) -> float:
    """How far (a) and (b) hold, relative to ρ′ (≥ 0 when they do, up to rounding)."""
    sq = np.einsum("ij,ij->i", alpha, alpha)
    a = rho_p - np.abs(sq - 1).max()
    b = min_sq_distance(alpha) - 3 * rho_p
    return float(min(a, b) / rho_p)


def lemma_b1(construction):
    def evaluate(inst: dict) -> dict:
        alpha, beta, rho_p = inst["alpha"], inst["beta"], float(inst["rho_prime"])
        selected = np.arange(len(beta))
        conditions = b1_conditions(alpha, rho_p)
        if conditions < -1e-9:  # the hypotheses fail: the statement says nothing here
            return {"slack": 1.0, "conditions": conditions, "rho_prime": rho_p}
        try:
            U, V, s = construction(alpha, beta, selected, rho_p)
            err, tol = block_error(alpha, beta, selected, U, V, s)
        except ValueError:
            err, tol = math.inf, FIT_TOL
        return {"slack": float(relative_slack(tol, err)), "error": err, "tolerance": tol, "conditions": conditions,
                "rho_prime": rho_p}

    return evaluate


# ------------------------------------------- Lemma B.1 (b), every reading

# The printed condition (b) is garbled: "a separation of 3ρ′". Each reading gives the least
# squared distance it grants between α_i and α_j when i or j is selected.
READINGS = {
    "squared": ("‖α_i − α_j‖² ≥ 3ρ′", lambda rho: 3 * rho),
    "unsquared": ("‖α_i − α_j‖ ≥ 3ρ′", lambda rho: 9 * rho**2),
}
GRID = 2.0**-40  # coordinates on this grid make the certificate's midpoint exact in float64


def reading_specs(profile: str):
    return st.fixed_dictionaries(
        {
            "layout": st.sampled_from(["random", "packed", "midpoint"]),
            "k": st.integers(1, 8),
            "extra": st.integers(0, 8),
            "log_rho": st.floats(math.log(1e-3), math.log(0.5)),
            "seed": S.seeds(),
        }
    )


def reading_instance(rng: np.random.Generator, spec: dict, least_sq) -> dict:
    """k selected points (rows 0..k−1, targets β_j = α_j + e_j: independent moves), two
    unselected ones, and ``extra`` more, in ℝ^k, with ρ′ = e^{log_rho}. Layouts: random
    directions with squared norms in [1 − ρ′, 1 + ρ′]; "packed", the first selected and
    the first unselected point at squared norm 1 + ρ′ and exactly the least squared
    distance the reading grants (× 1.01); "midpoint", the first selected point halfway
    between the two unselected ones, each at that distance from it, as close to the origin
    as (a) allows. An instance may miss the hypotheses: it is then outside the domain."""
    k, n, rho = spec["k"], spec["k"] + 2 + spec["extra"], math.exp(spec["log_rho"])
    alpha = unit_rows(rng, n, k) * np.sqrt(1 + rho * rng.uniform(-1, 1, size=(n, 1)))
    delta = 1.01 * least_sq(rho)
    u = alpha[0] / np.linalg.norm(alpha[0])
    w = rng.normal(size=k)
    w = w - (w @ u) * u if k > 1 else w
    w /= np.linalg.norm(w)
    margin = 1e-6 * rho
    if spec["layout"] == "packed":
        alpha[0] = math.sqrt(1 + rho - margin) * u
        cos = 1 - delta / (2 * (1 + rho - margin))  # two points of squared norm 1 + ρ′ at squared distance δ
        alpha[k] = math.sqrt(1 + rho - margin) * (cos * u + math.sqrt(max(1 - cos**2, 0.0)) * w)
    elif spec["layout"] == "midpoint":
        mid = np.round(math.sqrt(max(1 + rho - margin - delta, 0.0)) * u / GRID) * GRID
        step = np.round(math.sqrt(delta) * w / GRID) * GRID
        alpha[0], alpha[k], alpha[k + 1] = mid, mid + step, mid - step
    beta = alpha[:k] + np.eye(k)
    return {"alpha": alpha, "beta": beta, "rho_prime": np.float64(rho)}


def in_domain(alpha, k: int, rho: float, least_sq) -> bool:
    """(a) and the reading's (b), exactly on the float64 instance."""
    sq = np.einsum("ij,ij->i", alpha, alpha)
    if np.abs(sq - 1).max() > rho:
        return False
    diff = alpha[:k, None, :] - alpha[None, :, :]
    dist = np.einsum("ijk,ijk->ij", diff, diff)
    dist[np.arange(k), np.arange(k)] = np.inf
    return bool(dist.min() >= least_sq(rho))


def midpoint_certificate(alpha, beta, k: int) -> bool:
    """True when no block can exist: a selected α_i is exactly (in rational arithmetic) the
    midpoint of two unselected points, and the required moves β_j − α_j are linearly
    independent. Proof (docs/section3.md): the moves force V invertible, so the units
    ReLU(U h + s) ≥ 0 vanish at both unselected points, hence, being convex, at α_i."""
    from fractions import Fraction

    moves = beta - alpha[:k]
    if np.linalg.svd(moves, compute_uv=False).min() <= 1e-9 * max(1.0, np.abs(moves).max()):
        return False
    exact = [[Fraction(float(x)) for x in row] for row in alpha]
    for i in range(k):
        for a in range(k, len(alpha)):
            for b in range(a + 1, len(alpha)):
                if all(2 * x == y + z for x, y, z in zip(exact[i], exact[a], exact[b])):
                    return True
    return False


def lemma_b1_reading(least_sq):
    """The lemma's conclusion under one reading: constructed by the per-point block
    (verified on the instance), or refuted by the midpoint certificate, or neither
    (undecided: reported, never counted as either)."""

    def evaluate(inst: dict) -> dict:
        alpha, beta, rho = inst["alpha"], inst["beta"], float(inst["rho_prime"])
        k = len(beta)
        if not in_domain(alpha, k, rho, least_sq):  # the hypotheses fail: the statement says nothing here
            return {"slack": 1.0, "in_domain": 0.0, "rho_prime": rho}
        selected = np.arange(k)
        try:
            err, tol = block_error(alpha, beta, selected, *expressivity.move_block(alpha, beta, selected))
        except ValueError:
            err, tol = math.inf, FIT_TOL
        if err <= tol:
            return {"slack": float(relative_slack(tol, err)), "in_domain": 1.0, "constructed": 1.0, "rho_prime": rho}
        if midpoint_certificate(alpha, beta, k):
            return {"slack": -1.0, "in_domain": 1.0, "certificate": 1.0, "rho_prime": rho}
        return {"slack": 0.0, "in_domain": 1.0, "undecided": 1.0, "rho_prime": rho}

    return evaluate


def reading_entry(reading: str, least_sq=None, text: str | None = None) -> Statement:
    """The registry entry of Lemma B.1 under one reading of (b) (a planted one in tests)."""
    shown, least_sq = (text, least_sq) if least_sq else READINGS[reading]
    return Statement(
        id=f"lemma-B.1/reading-{reading}",
        ref="Lemma B.1 (b), garbled",
        text=f"(a) 1 − ρ′ ≤ ‖α‖² ≤ 1 + ρ′, (b) read as {shown} when i or j is selected ⇒ there are U, V, s "
        "with T(α_i) = β_i − α_i on the selected points and T = 0 on the rest, for any targets β",
        printed=True,
        claimed=False,
        target="reading",
        witness_kind="certificate",
        specs=reading_specs,
        build=lambda spec, size: S.batch(lambda rng, sp: reading_instance(rng, sp, least_sq), spec, size),
        evaluate=lemma_b1_reading(least_sq),
        batched=False,
        max_batch=16,
        note="an existence statement: verified where the per-point block is built, falsified only by the midpoint "
        "certificate (no block exists), undecided otherwise",
    )


# ----------------------------------------------------------------- Lemma B.2


def b2_specs(profile: str):
    return st.fixed_dictionaries(
        {"k": st.integers(2, 12), "blocks": st.integers(1, 6), "r": st.integers(1, 6), "seed": S.seeds()}
    )


def b2_instance(rng: np.random.Generator, spec: dict) -> dict:
    """z's with norms in [1 − ρ′, 1 + ρ′] and separation ρ′ (B.2's hypothesis, tight),
    random unit label vectors q_1..q_r and targets v_i = q_{y_i}."""
    k, n, r = spec["k"], spec["k"] * spec["blocks"], spec["r"]
    z = unit_rows(rng, n, k)
    rho_p = min(min_sq_distance(z), 0.5) / 2
    z *= np.sqrt(1 + rho_p * rng.uniform(-1, 1, size=(n, 1)))
    q = unit_rows(rng, r, k)
    return {"z": z, "v": q[rng.integers(0, r, size=n)], "rho_prime": np.float64(rho_p)}


def lemma_b2_printed(inst: dict) -> dict:
    """Lemma B.2 as printed: block j + 1 applies the printed Lemma B.1 to the next k points,
    with the points already mapped at their targets and the rest at their z's."""
    z, v, rho_p = inst["z"], inst["v"], float(inst["rho_prime"])
    sq = np.einsum("ij,ij->i", z, z)
    if np.abs(sq - 1).max() > rho_p or min_sq_distance(z) < rho_p:  # hypotheses fail: vacuous
        return {"slack": 1.0, "rho_prime": rho_p}
    k = z.shape[1]
    h = z.copy()
    for start in range(0, len(z), k):
        sel = np.arange(start, min(start + k, len(z)))
        U, V, s = printed_b1(h, v[sel], sel, rho_p)
        h = h + np.maximum(h @ U.T + s, 0.0) @ V.T
    err = float(np.abs(h - v).max())
    return {"slack": float(relative_slack(FIT_TOL, err)), "error": err, "rho_prime": rho_p}


def lemma_b2_statement(inst: dict) -> dict:
    """Lemma B.2's conclusion (there are ⌈n/k⌉ blocks of width k with h_ℓ = v): an existence
    statement. Constructed on the instance by corrected Lemma B.1 blocks taking the
    unmapped points k at a time in order of decreasing norm (each then beats every
    unmapped point along its own direction); where a block cannot be built that way, the
    instance is undecided (no obstruction is known), never a counterexample."""
    z, v, rho_p = inst["z"], inst["v"], float(inst["rho_prime"])
    sq = np.einsum("ij,ij->i", z, z)
    if np.abs(sq - 1).max() > rho_p or min_sq_distance(z) < rho_p:  # hypotheses fail: vacuous
        return {"slack": 1.0, "in_domain": 0.0, "rho_prime": rho_p}
    k = z.shape[1]
    h = z.copy()
    order = np.argsort(-sq, kind="stable")
    try:
        for start in range(0, len(z), k):
            sel = order[start : start + k]
            U, V, s = expressivity.move_block(h, v[sel], sel)
            h = h + np.maximum(h @ U.T + s, 0.0) @ V.T
    except ValueError:
        return {"slack": 0.0, "in_domain": 1.0, "undecided": 1.0, "rho_prime": rho_p}
    err = float(np.abs(h - v).max())
    scale = 64 * k * EPS * max(1.0, float(np.abs(h).max()))
    if err > FIT_TOL + scale:
        return {"slack": 0.0, "in_domain": 1.0, "undecided": 1.0, "error": err, "rho_prime": rho_p}
    return {"slack": float(relative_slack(FIT_TOL + scale, err)), "in_domain": 1.0, "constructed": 1.0,
            "error": err, "rho_prime": rho_p}


# ----------------------------------------------------------------- Theorem 3.2


def thm_specs(profile: str):
    return st.fixed_dictionaries(
        {
            "n": st.sampled_from([8, 64, 500] if profile == "quick" else [2, 8, 64, 500, 2000]),
            "d": st.sampled_from([2, 8, 64]),
            "r": st.sampled_from([1, 2, 10, 100]),
            "packed": st.booleans(),
            "seed": S.seeds(),
        }
    )


def thm_instance(rng: np.random.Generator, spec: dict) -> dict:
    """Unit points with random labels. Packed: half the points are near-copies of the
    other half (squared distance ~1e-8), and a few exact copies carry the same label."""
    n, d = spec["n"], spec["d"]
    X = unit_rows(rng, n, d)
    labels = rng.integers(0, spec["r"], size=n)
    if spec["packed"] and n >= 4:
        half = n // 2
        X[half : 2 * half] = X[:half] + 1e-4 * rng.normal(size=(half, d)) / math.sqrt(d)
        X[half] = X[0]
        labels[half] = labels[0]
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    return {"X": X, "labels": labels, "num_classes": np.int64(spec["r"])}


def build_thm(spec: dict, size: int) -> dict:
    return S.batch(thm_instance, spec, size)


def theorem_3_2_printed(inst: dict) -> dict:
    """The printed proof: k = ⌈10 log n / ρ²⌉, A_0 with standard normal entries keeping
    1 − ρ/3 ≤ ‖A_0 x‖ ≤ 1 + ρ/3, ρ′ = ρ/3, the printed Lemma B.1 in every block (Lemma B.2),
    and a last block with A_{ℓ+1} ∈ ℝ^{k×r}, which type-checks only when k = r.

    ‖A_0 x‖² = xᵀ (A_0ᵀ A_0) x is computed through the d x d matrix A_0ᵀ A_0, accumulated
    over row chunks, so any k can be checked; the blocks are run when k ≤ 1024.
    """
    X, labels, r = inst["X"], inst["labels"], int(inst["num_classes"])
    n, d = X.shape
    rho = min_sq_distance(X)
    k = math.ceil(10 * math.log(n) / rho**2)
    rng = np.random.default_rng(0)
    gram = np.zeros((d, d))
    for start in range(0, k, 4096):
        rows = rng.normal(size=(min(4096, k - start), d))
        gram += rows.T @ rows
    norms = np.sqrt(np.einsum("ij,jk,ik->i", X, gram, X))
    deviation = float(np.abs(norms - 1).max())
    slack = min(float(relative_slack(rho / 3, deviation)), 1.0 if k == r else -1.0)
    out = {"k": float(k), "rho": rho, "norm_deviation": deviation}  # the blocks' error only where they are run
    if k <= 1024:
        h = X @ np.random.default_rng(0).normal(size=(k, d)).T
        q = unit_rows(rng, r, k)
        blocks = lemma_b2_printed({"z": h, "v": q[labels], "rho_prime": np.float64(rho / 3)})
        if "error" in blocks:  # absent when the blocks' own hypotheses fail (the lemma is vacuous there)
            out["error"] = blocks["error"]
        slack = min(slack, blocks["slack"])
    return {"slack": slack, **out}


def _padded(params: dict, depth: int) -> dict:
    """The same network with identity blocks (U = 0, s = −1, V = 0) appended up to depth."""
    b = params["blocks"]
    extra = depth - b["U"].shape[0]
    pad = {
        "U": np.zeros((extra, *b["U"].shape[1:])),
        "V": np.zeros((extra, *b["V"].shape[1:])),
        "s": -np.ones((extra, b["s"].shape[1])),
    }
    return {**params, "blocks": {k: np.concatenate([b[k], pad[k]]) for k in b}}


def parameter_formula(n: int, d: int, r: int, k: int, m: int) -> int:
    """k·d + ⌈n/m⌉·2m(2k + 1) + r·k + r + r²: what the corrected construction uses."""
    return k * d + math.ceil(n / m) * 2 * m * (2 * k + 1) + r * k + r + r * r


def theorem_3_2_corrected(inst: dict) -> dict:
    """resjax.expressivity.construct: every point exactly on its one-hot label."""
    X, labels, r = inst["X"], inst["labels"], int(inst["num_classes"])
    net = expressivity.construct(X, labels, r, jax.random.key(0))
    depth = math.ceil(len(X) / net.points_per_block)
    err, acc = expressivity.fit_error(_padded(net.params, depth), X, labels)
    budget = parameter_formula(len(X), X.shape[1], r, net.width, net.points_per_block)
    slack = float(relative_slack(FIT_TOL, err))
    if acc < 1.0 or net.parameter_count > budget:  # a wrong argmax fails whatever the error says
        slack = -1.0
    return {"slack": slack, "error": err, "accuracy": acc, "parameters": float(net.parameter_count),
            "n_log_n": len(X) * math.log(len(X))}


# ----------------------------------------------------------------- the entries

_B1 = dict(specs=b1_specs, build=build_b1, batched=False)
_PACKED_B1 = ({"k": 3, "extra": 2, "norm_spread": 1.0, "packed": True, "seed": 0},)

STATEMENTS = (
    Statement(
        id="lemma-B.1/proof-common-bias",
        ref="Lemma B.1, proof",
        text="the proof's construction: (a) 1 − ρ′ ≤ ‖α‖² ≤ 1 + ρ′, (b) ‖α_i − α_j‖² ≥ 3ρ′ ⇒ U rows α_i, s = −(1 − 2ρ′)𝟙, "
        "V columns (β_i − α_i)/(‖α_i‖² − (1 − 2ρ′)) move the selected points and fix the rest",
        printed=True,
        claimed=False,
        evaluate=lemma_b1(printed_b1),
        adversarial=_PACKED_B1,
        note="(b) is garbled in our copy; read as squared separation 3ρ′. The common bias needs 6ρ′; the lemma's "
        "conclusion itself holds under this reading (lemma-B.1/corrected constructs it from separation > 2ρ′)",
        **_B1,
        target="proof step",
    ),
    Statement(
        id="lemma-B.1/corrected",
        ref="Lemma B.1",
        text="(a) and ‖α_i − α_j‖² > 2ρ′ ⇒ per-point biases s_i = −(‖α_i‖² − ε_i) move the selected points "
        "and fix the rest: resjax.expressivity.move_block",
        printed=False,
        claimed=True,
        corrects="lemma-B.1/proof-common-bias",
        evaluate=lemma_b1(lambda a, b, sel, _: expressivity.move_block(a, b, sel)),
        adversarial=_PACKED_B1,
        **_B1,
    ),
    reading_entry("squared"),
    reading_entry("unsquared"),
    Statement(
        id="lemma-B.2",
        ref="Lemma B.2",
        text="1 − ρ′ ≤ ‖z‖² ≤ 1 + ρ′, ‖z_i − z_j‖² ≥ ρ′ ⇒ there are ⌈n/k⌉ residual blocks of width k with h_ℓ = v",
        printed=True,
        claimed=False,
        witness_kind="certificate",
        specs=b2_specs,
        build=lambda spec, size: S.batch(b2_instance, spec, size),
        evaluate=lemma_b2_statement,
        batched=False,
        note="an existence statement: constructed by corrected B.1 blocks in order of decreasing norm, else undecided",
    ),
    Statement(
        id="lemma-B.2/proof",
        ref="Lemma B.2, proof",
        text="the proof's step: 1 − ρ′ ≤ ‖z‖² ≤ 1 + ρ′, ‖z_i − z_j‖² ≥ ρ′ ⇒ ⌈n/k⌉ blocks of the printed Lemma B.1 "
        "give h_ℓ = v",
        printed=True,
        claimed=False,
        specs=b2_specs,
        build=lambda spec, size: S.batch(b2_instance, spec, size),
        evaluate=lemma_b2_printed,
        batched=False,
        target="proof step",
    ),
    Statement(
        id="thm-3.2/construction",
        ref="Theorem 3.2, proof",
        text="k = 10 log n/ρ², A_0 standard normal keeps 1 − ρ/3 ≤ ‖A_0 x‖ ≤ 1 + ρ/3, Lemma B.2 blocks, "
        "last block A_{ℓ+1} ∈ ℝ^{k×r}, B_{ℓ+1} ∈ ℝ^{r×r}: maps every x to its label",
        printed=True,
        claimed=False,
        specs=thm_specs,
        build=build_thm,
        evaluate=theorem_3_2_printed,
        batched=False,
        max_batch=4,
        target="proof step",
    ),
    Statement(
        id="thm-3.2",
        ref="Theorem 3.2",
        text="n separated unit points, any labels ⇒ a residual ReLU network with O(n log n + r²) parameters "
        "maps every x to its one-hot label: resjax.expressivity.construct, exact to 1e-9, "
        "k·d + ⌈n/m⌉·2m(2k + 1) + rk + r + r² parameters, k = 1 + O(log r)",
        printed=True,
        claimed=True,
        specs=thm_specs,
        build=build_thm,
        evaluate=theorem_3_2_corrected,
        batched=False,
        max_batch=4,
    ),
)
