"""Section 3: residual ReLU networks that fit any labelling of n separated points.

Block (3.1): h ↦ h + T_{U,V,s}(h), T_{U,V,s}(h) = V ReLU(U h + s). The network:
h_0 = A_0 x, h_j = h_{j−1} + T_j(h_{j−1}) for j = 1..ℓ, and the output block
ŷ = V_out ReLU(U_out h_ℓ + s_out) (the printed ŷ = h_ℓ + T(h_ℓ) is ill-typed, since
h_ℓ ∈ ℝ^k and ŷ ∈ ℝ^r; see docs/section3.md).

:func:`construct` builds such a network for any data and labels, with exact fit in
float64 (Theorem 3.2). It does not use the printed proof, which fails (the checker
shows where); it uses one ReLU per point along a 1-D projection:

* A_0 sends x to (⟨w, x⟩, 0, …, 0) ∈ ℝ^k for a Gaussian w, so distinct points get
  distinct t = ⟨w, x⟩ with probability 1 (checked, with a margin, and redrawn if not);
* points are taken in increasing t, m per block. A block's 2m units are ramps
  ReLU(c − t) with knots inside the gaps between its points, a quarter gap away from
  each; they vanish exactly on every point not yet moved (larger t) and on every point
  already moved (parked at t = T_far beyond all knots), and on the block's own points
  they sum to the staircase of the moves v_i − h_i, which sends each point to
  v_i = (T_far, q_{y_i}) and is flat near it, so rounding in t changes nothing;
* the codes q_1..q_r ∈ ℝ^c are one-hot when r is small, else random unit vectors
  with pairwise inner products below 1/2 (c = O(log r)); the output block maps q_j
  to e_j exactly with r·c + r + r² parameters.

State width k = 1 + c, and the parameter count is k·d + n(4k + 2) (up to the last
block's padding) + r·k + r + r² = O(n log r + r²), within Theorem 3.2's O(n log n + r²).

Every array function here is pure JAX (``apply``, ``hidden``, ``block``); the
construction itself is host-side NumPy in float64. Evaluate a constructed network
in float64 (``with jax.enable_x64(True):``): its knots are as close as the data.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from resjax import validation as _v

UNIT_NORM_TOL = 1e-6


def block(U: jax.Array, V: jax.Array, s: jax.Array, h: jax.Array) -> jax.Array:
    """Residual block (3.1): h + V ReLU(U h + s). U (m, k), V (k, m), s (m,), h (..., k)."""
    U = _v.array("U", U, (None, None))
    m, k = U.shape
    V, s = _v.array("V", V, (k, m)), _v.array("s", s, (m,))
    h = _v.array("h", h)
    if h.ndim < 1 or h.shape[-1] != k:
        raise ValueError(f"h must have shape (..., {k}) to match U {tuple(U.shape)}, got {tuple(h.shape)}.")
    return h + jax.nn.relu(h @ U.T + s) @ V.T


def _require_float64(params) -> None:
    """Float64 NumPy parameters evaluated with x64 off would silently round to float32.
    (Inside jit the conversion has already happened; enable x64 before jitting.)"""
    leaves = jax.tree.leaves(params)
    if any(isinstance(x, np.ndarray) and x.dtype == np.float64 for x in leaves) and not jax.config.jax_enable_x64:
        raise ValueError(
            "these parameters are float64 and must be evaluated in float64 (the construction's "
            "knots can be 1e-9 apart): call inside `with jax.enable_x64(True):`."
        )


def _check_params(params, X):
    """The structure and shapes of a network's parameters, and X (n, d) to match."""
    try:
        A0, blocks, out = params["A0"], params["blocks"], params["out"]
        shapes = {name: np.shape(blocks[name]) for name in ("U", "V", "s")}
        out_shapes = {name: np.shape(out[name]) for name in ("U", "V", "s")}
    except (KeyError, TypeError, IndexError):
        raise TypeError(
            "params must be a dict {'A0': (k, d), 'blocks': {'U': (ℓ, m, k), 'V': (ℓ, k, m), 's': (ℓ, m)}, "
            "'out': {'U': (r, k), 'V': (r, r), 's': (r,)}}, as construct() returns in Construction.params."
        ) from None
    k, d = _v.array("params['A0']", A0, (None, None)).shape
    ell, m = shapes["s"] if len(shapes["s"]) == 2 else (None, None)
    r = out_shapes["s"][0] if len(out_shapes["s"]) == 1 else None
    wanted = {"U": (ell, m, k), "V": (ell, k, m), "out U": (r, k), "out V": (r, r)}
    got = {"U": shapes["U"], "V": shapes["V"], "out U": out_shapes["U"], "out V": out_shapes["V"]}
    if ell is None or r is None or any(tuple(got[n]) != wanted[n] for n in wanted):
        raise ValueError(f"params have inconsistent shapes {got}, s {shapes['s']}, out s {out_shapes['s']}: "
                         f"expected {wanted} for A0 of shape {(k, d)}.")
    _v.array("X", X, (None, d))


def hidden(params: dict, X: jax.Array) -> jax.Array:
    """h_ℓ: the state after A_0 and the ℓ middle blocks. X (n, d) -> (n, k)."""
    _check_params(params, X)
    _require_float64(params)
    h = X @ params["A0"].T

    def step(h, b):
        return block(b["U"], b["V"], b["s"], h), None

    h, _ = jax.lax.scan(step, h, params["blocks"])
    return h


def apply(params: dict, X: jax.Array) -> jax.Array:
    """The network of Section 3 on a batch: X (n, d) -> ŷ (n, r)."""
    h = hidden(params, X)
    out = params["out"]
    return jax.nn.relu(h @ out["U"].T + out["s"]) @ out["V"].T


_apply64 = jax.jit(lambda params, X: apply(params, X))


def fit_error(params: dict, X, labels, batch: int = 25_000) -> tuple[float, float]:
    """Runs the network on X in float64, in batches; returns (max |ŷ − one_hot(y)|, accuracy).

    Accuracy is the fraction of rows whose argmax is the label.
    """
    _check_params(params, X)
    labels = _v.array("labels", labels, (np.shape(X)[0],))
    if labels.dtype.kind not in "iu" or labels.size == 0:
        raise ValueError(f"labels must be a non-empty integer array (n,), got dtype {labels.dtype}, size {labels.size}.")
    worst, hits = 0.0, 0
    with jax.enable_x64(True):
        for start in range(0, len(labels), batch):
            out = np.asarray(_apply64(params, np.asarray(X[start : start + batch], dtype=np.float64)))
            y = labels[start : start + batch]
            target = np.zeros_like(out)
            target[np.arange(len(y)), y] = 1.0
            worst = max(worst, float(np.abs(out - target).max()))
            hits += int(np.sum(out.argmax(axis=1) == y))
    return worst, hits / len(labels)


def parameter_count(params: dict) -> int:
    """Number of real parameters (every entry of every array, zeros included)."""
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


def normalize(X) -> np.ndarray:
    """x ↦ x/‖x‖ row by row, as a new float64 array (Section 3 assumes ‖x^{(i)}‖ = 1).

    Zero rows are an error. Distinct rows can become identical (x and 2x): the
    construction then reports them if their labels differ.
    """
    X = np.array(_v.array("X", X, (None, None)), dtype=np.float64)
    _v.finite("X", X)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms == 0):
        bad = np.nonzero(norms[:, 0] == 0)[0]
        raise ValueError(f"rows {bad[:10].tolist()} of X are zero and have no direction to normalise to.")
    X /= norms
    return X


# ----------------------------------------------------------------- input checks


def check_inputs(X, labels, num_classes: int, *, require_unit_norm: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Validates data for the construction; returns (X float64, labels int64).

    Raises ValueError naming the offending rows for: wrong shapes, non-finite values,
    labels outside [0, num_classes), rows of norm ≠ 1 (when required).
    """
    X = np.asarray(_v.array("X", X), dtype=np.float64)
    labels = np.asarray(_v.array("labels", labels))
    num_classes = _v.integer("num_classes", num_classes, minimum=1)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d); got {X.shape}. Flatten each example to a row.")
    if labels.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) to match X; got {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers in [0, num_classes); got dtype {labels.dtype}.")
    if num_classes < 1 or labels.min(initial=0) < 0 or labels.max(initial=0) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}); got range [{labels.min()}, {labels.max()}].")
    if not np.all(np.isfinite(X)):
        bad = np.nonzero(~np.all(np.isfinite(X), axis=1))[0]
        raise ValueError(f"rows {bad[:10].tolist()} of X are not finite.")
    if require_unit_norm:
        dev = np.abs(np.linalg.norm(X, axis=1) - 1.0)
        if np.any(dev > UNIT_NORM_TOL):
            bad = np.nonzero(dev > UNIT_NORM_TOL)[0]
            raise ValueError(
                f"Section 3 assumes unit-norm inputs, but rows {bad[:10].tolist()} have |‖x‖ − 1| up to "
                f"{dev.max():.3g}. Normalise with resjax.expressivity.normalize(X) (x ↦ x/‖x‖), or pass "
                "require_unit_norm=False: the construction itself does not need unit norms."
            )
    return X, labels.astype(np.int64)


def duplicate_groups(X: np.ndarray) -> np.ndarray:
    """rep[i] = the first row identical to row i (rep[i] = i for a first occurrence).

    Rows are hashed by their bytes (−0.0 counted as 0.0) and hash hits compared exactly,
    so memory stays O(n) beyond X itself.
    """
    rep = np.arange(len(X))
    seen: dict[int, list[int]] = {}
    for i, row in enumerate(X):
        bucket = seen.setdefault(hash((row + 0.0).tobytes()), [])
        for j in bucket:
            if np.array_equal(row, X[j]):
                rep[i] = j
                break
        else:
            bucket.append(i)
    return rep


def label_conflicts(labels: np.ndarray, rep: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j) of identical rows (rep from :func:`duplicate_groups`) with different
    labels: no function can fit both."""
    return [(int(rep[i]), int(i)) for i in np.nonzero(labels != labels[rep])[0]]


@dataclasses.dataclass(frozen=True)
class Separation:
    """Assumption 3.1 on a data set: ρ = min_{i≠j} ‖x_i − x_j‖² and a pair attaining it."""

    rho: float
    pair: tuple[int, int]


def separation(X, *, block_rows: int = 1024, rank: int = 64, seed: int = 0) -> Separation:
    """Exact ρ of Assumption 3.1 and its pair, fast for large n.

    Cost: one n x n pass in a rank-64 projection, plus exact checks of the pairs the
    projection cannot rule out: few for natural images (15 s for 50,000 CIFAR-10 images
    on 2 cores), up to all pairs for data without low-rank structure in high dimension.

    Distances projected onto an orthonormal basis Q (approximate top principal
    directions) are lower bounds of the true ones, so only pairs whose projected squared
    distance is at most the best true one found so far need an exact (float64) check.
    The projected distances are computed in float32 with a margin that covers their
    rounding, so the result is exact whatever the projection's quality; only the speed
    depends on it. Identical rows give ρ = 0.
    """
    X = np.asarray(_v.array("X", X, (None, None)), dtype=np.float64)
    _v.finite("X", X)
    block_rows, rank = _v.integer("block_rows", block_rows, minimum=1), _v.integer("rank", rank, minimum=1)
    n, d = X.shape
    if n < 2:
        raise ValueError("Assumption 3.1 needs at least two points.")
    rng = np.random.default_rng(seed)
    Y = X @ rng.normal(size=(d, min(rank, d)))
    for _ in range(2):  # power iterations towards the top principal directions
        Y, _ = np.linalg.qr(X @ (X.T @ Y))
    Q, _ = np.linalg.qr(X.T @ Y)
    Z = (X @ Q).astype(np.float32)
    zz = np.einsum("ij,ij->i", Z, Z)
    margin = 1e-5 * float(zz.max()) + 1e-30  # float32 rounding of zz_i + zz_j − 2⟨z_i, z_j⟩
    best, pair = math.inf, (0, 1)

    def check(i, j, chunk=4096):  # in chunks: data without low-rank structure prune poorly
        nonlocal best, pair
        for c in range(0, i.size, chunk):
            ii, jj = i[c : c + chunk], j[c : c + chunk]
            diff = X[ii] - X[jj]
            dist = np.einsum("ij,ij->i", diff, diff)
            m = int(np.argmin(dist))
            if dist[m] < best:
                best, pair = float(dist[m]), (int(ii[m]), int(jj[m]))

    for start in range(0, n, block_rows):
        rows = np.arange(start, min(start + block_rows, n))
        cols = np.arange(start, n)
        proj = zz[rows, None] + zz[None, cols] - 2.0 * (Z[rows] @ Z[cols].T)
        proj[cols[None, :] <= rows[:, None]] = np.inf  # each pair once, i < j
        near = np.argmin(proj, axis=1)  # projected nearest neighbours tighten the bound first
        has = np.isfinite(proj[np.arange(len(rows)), near])
        check(rows[has], cols[near[has]])
        cand_i, cand_j = np.nonzero(proj <= best + margin)  # then every pair that could beat it
        check(rows[cand_i], cols[cand_j])
    return Separation(best, pair)


# ----------------------------------------------------------------- Lemma B.1


def move_block(alpha, beta, selected) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lemma B.1 (corrected): one block T = V ReLU(U h + s) with T(α_i) = β_i − α_i for
    i in ``selected`` and T(α_j) = 0 for every other j.

    Row i of U is α_i and its bias is s_i = −(‖α_i‖² − ε_i) with
    ε_i = ½ min_{j≠i} (‖α_i‖² − ⟨α_i, α_j⟩), so unit i is ε_i at α_i and negative at
    every other point; column i of V is (β_i − α_i)/ε_i. This needs each selected α_i
    to beat every other point along its own direction (ε_i > 0), which holds when
    1 − ρ′ ≤ ‖α‖² ≤ 1 + ρ′ and ‖α_i − α_j‖² > 2ρ′: the printed construction's common
    bias −(1 − 2ρ′) needs 6ρ′. See docs/section3.md.

    Args:
      alpha: (n, k) all current points. beta: (m, k) targets for the selected points.
      selected: (m,) distinct indices into alpha.
    Returns:
      U (m, k), V (k, m), s (m,), float64.
    """
    alpha = np.asarray(_v.array("alpha", alpha, (None, None)), dtype=np.float64)
    selected = np.asarray(_v.array("selected", selected, (None,)))
    beta = np.asarray(_v.array("beta", beta, (len(selected), alpha.shape[1])), dtype=np.float64)
    _v.finite("alpha", alpha)
    _v.finite("beta", beta)
    n = alpha.shape[0]
    if selected.size and (selected.dtype.kind not in "iu" or selected.min() < 0 or selected.max() >= n
                          or len(np.unique(selected)) != len(selected)):
        raise ValueError(f"selected must hold distinct integer indices into the {n} rows of alpha, got {selected.tolist()}.")
    A = alpha[selected]
    gram = A @ alpha.T
    sq = gram[np.arange(len(selected)), selected]
    gram[np.arange(len(selected)), selected] = -np.inf
    gap = sq - gram.max(axis=1) if alpha.shape[0] > 1 else sq
    if np.any(gap <= 0):
        i = int(selected[np.argmin(gap)])
        raise ValueError(
            f"point {i} does not exceed every other point along its own direction "
            f"(‖α_i‖² − max_j ⟨α_i, α_j⟩ = {gap.min():.3g} ≤ 0), so no single ReLU unit of this form "
            "isolates it. Lemma B.1 needs ‖α_i − α_j‖² > 2ρ′ for norms in [1 − ρ′, 1 + ρ′]."
        )
    eps = gap / 2
    return A, ((beta - A) / eps[:, None]).T, -(sq - eps)


# ----------------------------------------------------------------- Theorem 3.2


def label_codes(num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Codes q_1..q_r for the labels: one-hot (c = r) when r ≤ 8 ln r + 8, else random unit
    vectors in ℝ^c, c = ⌈8 ln r⌉ (grown until every pairwise inner product is below 1/2)."""
    r = _v.integer("num_classes", num_classes, minimum=1)
    c = math.ceil(8 * math.log(r)) if r > 1 else 1
    if r <= c + 8:
        return np.eye(r)
    while True:
        q = rng.normal(size=(r, c))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        g = q @ q.T
        np.fill_diagonal(g, -1.0)
        if g.max() < 0.5:
            return q
        c += 1


def _ramp_block(t: np.ndarray, next_t: float, moves: np.ndarray, width: int) -> dict:
    """Units ReLU(c − t) summing to a staircase that takes the value moves[i] near t[i].

    t: (b,) increasing; next_t: the least t not yet moved (inf if none); moves: (b, k).
    In each gap g_i after t_i (the last one ends at next_t) the value steps from
    moves[i] to moves[i + 1] (0 after the last) along a ramp between t_i + g_i/4 and
    t_i + 3g_i/4: two units, [ReLU(c_R − t) − ReLU(c_L − t)]/(c_R − c_L). So the block is
    flat within g/4 of every point (rounding in t changes nothing) and exactly zero from
    the last ramp on, i.e. on every point not yet moved and every point already parked
    at T_far. Padded to ``width`` units (bias −1, zero columns of V).
    """
    b, k = moves.shape
    gaps = np.diff(np.append(t, next_t if np.isfinite(next_t) else t[-1] + 2.0))
    lo, hi = t + gaps / 4, t + 3 * gaps / 4
    step = (moves - np.vstack([moves[1:], np.zeros((1, k))])) / (hi - lo)[:, None]
    U = np.zeros((width, k))
    U[: 2 * b, 0] = -1.0
    s = np.full(width, -1.0)
    s[0 : 2 * b : 2], s[1 : 2 * b : 2] = hi, lo
    V = np.zeros((k, width))
    V[:, 0 : 2 * b : 2], V[:, 1 : 2 * b : 2] = step.T, -step.T
    return {"U": U, "V": V, "s": s}


@dataclasses.dataclass(frozen=True)
class Construction:
    """The parameters of a fitted network and what was checked on the way."""

    params: dict
    parameter_count: int
    width: int  # k, the state width
    depth: int  # ℓ, the number of middle blocks
    points_per_block: int
    min_gap: float  # least gap between the distinct projections t (the margin of every knot)
    distinct_points: int
    assumption: Separation  # Assumption 3.1 on X: ρ and the pair attaining it (ρ = 0 with duplicates)
    conflicts: tuple[tuple[int, int], ...] = ()  # dropped identical pairs with different labels


def construct(
    X,
    labels,
    num_classes: int,
    key: jax.Array,
    *,
    points_per_block: int | None = None,
    require_unit_norm: bool = True,
    drop_conflicts: bool = False,
    assumption: Separation | None = None,
) -> Construction:
    """Theorem 3.2, constructively: a residual ReLU network mapping each row of X to the
    one-hot vector of its label, exactly in float64.

    Args:
      X: (n, d) data, rows of unit norm (Section 3's setting; see ``normalize``).
      labels: (n,) integers in [0, num_classes).
      num_classes: r.
      key: a JAX PRNG key for the projection w and the label codes.
      points_per_block: m points per middle block, each taking two units (default
        ⌈k/2⌉, so that blocks are about k x k as in the paper).
      require_unit_norm: refuse rows with |‖x‖ − 1| > 1e-6 (default).
      drop_conflicts: identical rows with different labels cannot be fitted by any
        function; by default they are an error naming the rows, with True they are left
        out of the fit and listed in ``Construction.conflicts``.
    Returns:
      A Construction; ``apply(result.params, X)`` gives the one-hot labels.

    Example:
      >>> import jax, numpy as np
      >>> X = normalize(np.random.default_rng(0).normal(size=(100, 5)))
      >>> y = np.arange(100) % 3
      >>> net = construct(X, y, 3, jax.random.key(0))
      >>> with jax.enable_x64(True):
      ...     bool(np.all(np.argmax(apply(net.params, X), axis=1) == y))
      True
    """
    X, labels = check_inputs(X, labels, num_classes, require_unit_norm=require_unit_norm)
    _v.prng_key("key", key)
    if points_per_block is not None:
        _v.integer("points_per_block", points_per_block, minimum=1)
    if len(X) == 0:
        raise ValueError("X has no rows: there is nothing to fit.")
    assumption = assumption or (separation(X) if len(X) > 1 else Separation(math.inf, (0, 0)))
    rep = duplicate_groups(X)
    conflicts = label_conflicts(labels, rep)
    if conflicts and not drop_conflicts:
        shown = ", ".join(f"{i} and {j}" for i, j in conflicts[:10])
        raise ValueError(
            f"{len(conflicts)} identical input(s) carry different labels (rows {shown}{', ...' if len(conflicts) > 10 else ''}); "
            "no function maps one point to two labels. Remove them, or pass drop_conflicts=True to fit the rest."
        )
    keep = np.ones(len(X), bool)
    keep[[j for _, j in conflicts]] = False
    keep[[i for i, _ in conflicts]] = False
    distinct = np.nonzero(keep & (rep == np.arange(len(X))))[0]
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    codes = label_codes(num_classes, rng)
    k = 1 + codes.shape[1]
    m = points_per_block or max(1, (k + 1) // 2)
    d = X.shape[1]
    for _ in range(8):  # redraw w until every projection gap is clear of rounding
        w = rng.normal(size=d)
        t = (X @ w)[distinct]
        order = np.argsort(t, kind="stable")
        t_sorted = t[order]
        gaps = np.diff(t_sorted)
        min_gap = float(gaps.min()) if gaps.size else math.inf
        if min_gap > 1e-10 * (1.0 + np.abs(t_sorted).max()):
            break
    else:
        raise ValueError(
            f"could not separate the {len(distinct)} distinct points along a random direction "
            f"(least gap {min_gap:.3g}); are some rows equal up to rounding? Deduplicate them."
        )
    idx = distinct[order]
    far = float(t_sorted[-1] + 2.0)  # beyond every knot: the last ramp ends at t_max + 1.5
    moves = np.zeros((len(idx), k))
    moves[:, 0] = far - t_sorted
    moves[:, 1:] = codes[labels[idx]]
    blocks = []
    for start in range(0, len(idx), m):
        stop = min(start + m, len(idx))
        next_t = t_sorted[stop] if stop < len(idx) else math.inf
        blocks.append(_ramp_block(t_sorted[start:stop], next_t, moves[start:stop], 2 * m))
    A0 = np.zeros((k, d))
    A0[0] = w
    gram = codes @ codes.T
    np.fill_diagonal(gram, -np.inf)
    threshold = max(float(gram.max()), 0.0) if num_classes > 1 else 0.0
    U_out = np.zeros((num_classes, k))
    U_out[:, 1:] = codes
    params = {
        "A0": A0,
        "blocks": {name: np.stack([b[name] for b in blocks]) for name in ("U", "V", "s")},
        "out": {"U": U_out, "s": np.full(num_classes, -threshold), "V": np.eye(num_classes) / (1.0 - threshold)},
    }
    return Construction(
        params=params,
        parameter_count=parameter_count(params),
        width=k,
        depth=len(blocks),
        points_per_block=m,
        min_gap=min_gap,
        distinct_points=len(idx),
        assumption=assumption,
        conflicts=tuple(conflicts),
    )
