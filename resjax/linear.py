"""Section 2: deep linear residual networks.

Model (2.1): h_0 = x, h_j = h_{j−1} + A_j h_{j−1}, ŷ = h_ℓ, so
ŷ = (Id + A_ℓ)···(Id + A_1) x, with A of shape (ℓ, d, d) (layer j is ``A[j − 1]``).
Data: y = R x + ξ, ξ ~ N(0, Id_d) independent of x, Σ = E[x xᵀ].

The array functions are pure JAX and compose with ``jit``, ``grad`` and ``vmap``;
they compute in the dtype they are given (enable float64 yourself, e.g. with
``jax.enable_x64(True)``, for theorem-grade precision). :func:`factorize` is a
host-side float64 construction (NumPy/SciPy), since its layer count per factor
depends on the spectrum of R.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from resjax import linear
  >>> A = 0.1 * jax.random.normal(jax.random.key(0), (4, 3, 3))
  >>> R, Sigma = jnp.eye(3), jnp.eye(3)
  >>> g = linear.risk_gradient(A, R, Sigma)          # Lemma 2.4, shape (4, 3, 3)
  >>> bool(jnp.allclose(g, jax.grad(linear.population_risk)(A, R, Sigma), atol=1e-5))
  True
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from resjax import normal_form as _nf
from resjax import validation as _v


def _layers(A):
    """A as (ℓ, d, d) real layers, ℓ, d ≥ 1; finite when concrete."""
    A = _v.array("A", A)
    if A.ndim != 3 or A.shape[1] != A.shape[2] or min(A.shape) < 1:
        raise ValueError(f"A must have shape (ℓ, d, d) with ℓ, d ≥ 1 (layer j is A[j − 1]), got {tuple(A.shape)}.")
    _v.finite("A", A)
    return A


def _target(R, d: int):
    R = _v.array("R", R, (d, d))
    _v.finite("R", R)
    return R


def _moment(Sigma, d: int):
    Sigma = _v.array("Sigma", Sigma, (d, d))
    _v.symmetric_psd("Sigma", Sigma)
    return Sigma


def forward(A: jax.Array, x: jax.Array) -> jax.Array:
    """Model (2.1): ŷ = (Id + A_ℓ)···(Id + A_1) x.

    Args:
      A: (ℓ, d, d) layer matrices.
      x: (..., d) inputs (any leading batch shape).
    Returns:
      (..., d) outputs ŷ.
    """
    A = _layers(A)
    x = _v.array("x", x)
    if x.ndim < 1 or x.shape[-1] != A.shape[-1]:
        raise ValueError(f"x must have shape (..., {A.shape[-1]}) to match A, got {tuple(x.shape)}.")
    _v.finite("x", x)

    def layer(h, A_j):
        return h + h @ A_j.T, None

    y, _ = jax.lax.scan(layer, x, A)
    return y


def product(A: jax.Array) -> jax.Array:
    """The end-to-end map (Id + A_ℓ)···(Id + A_1) of model (2.1), shape (d, d)."""
    A = _layers(A)

    def layer(P, A_j):
        return P + A_j @ P, None

    P, _ = jax.lax.scan(layer, jnp.eye(A.shape[-1], dtype=A.dtype), A)
    return P


def excess_risk(A: jax.Array, R: jax.Array, Sigma: jax.Array) -> jax.Array:
    """f(A) − C_opt = ‖((Id + A_ℓ)···(Id + A_1) − R) Σ^{1/2}‖_F² (Claim 2.3), a scalar.

    Computed as tr(E Σ Eᵀ) with E = product(A) − R, so Σ needs no square root.
    Raises ValueError for mismatched shapes, non-finite values, or a Σ that is not
    symmetric positive semi-definite (values are checked only outside jit/grad/vmap
    tracing, where they are concrete; see resjax.validation).
    """
    A = _layers(A)
    R, Sigma = _target(R, A.shape[-1]), _moment(Sigma, A.shape[-1])
    E = product(A) - R
    return jnp.sum((E @ Sigma) * E)


def population_risk(A: jax.Array, R: jax.Array, Sigma: jax.Array) -> jax.Array:
    """Population risk f(A) = E‖ŷ − y‖² in closed form (Claim 2.3), a scalar.

    f(A) = ‖(P − R) Σ^{1/2}‖_F² + C with C = E‖ξ‖² = d for ξ ~ N(0, Id_d). (The printed
    proof writes C = E[x xᵀ]; the constant is the noise variance, see docs/section2.md.)

    Args:
      A: (ℓ, d, d); R: (d, d) target map; Sigma: (d, d) second moment E[x xᵀ], symmetric
        positive semi-definite (checked as in :func:`excess_risk`).
    """
    return excess_risk(A, R, Sigma) + _layers(A).shape[-1]


def optimal_risk(R: jax.Array) -> jax.Array:
    """C_opt = min_A f(A) = d: the noise alone; attained since A_1 = R − Id is allowed."""
    R = _v.array("R", R, (None, None))
    if R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be square (d, d), got {tuple(R.shape)}.")
    return jnp.asarray(R.shape[-1], dtype=R.dtype)


def empirical_risk(A: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """Loss (2.2) averaged over samples: mean over n of ‖ŷ − y‖². x, y: (n, d)."""
    d = _layers(A).shape[-1]
    x, y = _v.array("x", x, (None, d)), _v.array("y", y, (None, d))
    if x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ValueError(f"x and y must hold the same number n ≥ 1 of samples, got {x.shape[0]} and {y.shape[0]}.")
    _v.finite("x", x)
    _v.finite("y", y)
    return jnp.mean(jnp.sum((forward(A, x) - y) ** 2, axis=-1))


def sample(key: jax.Array, R: jax.Array, Sigma: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Draws n pairs of the Section 2 model: x ~ N(0, Σ), y = R x + ξ, ξ ~ N(0, Id).

    Any x with E[x xᵀ] = Σ has the same population risk; Gaussian x is one such.
    Returns x, y of shape (n, d). Σ may be singular (it is factored by eigh), but must be
    symmetric positive semi-definite.
    """
    _v.prng_key("key", key)
    n = _v.integer("n", n, minimum=1)
    R = _v.array("R", R, (None, None))
    d = R.shape[-1]
    R, Sigma = _target(R, d), _moment(Sigma, d)
    w, V = jnp.linalg.eigh(Sigma)
    root = V * jnp.sqrt(jnp.clip(w, 0.0))  # root @ root.T == Sigma
    kx, kxi = jax.random.split(key)
    x = jax.random.normal(kx, (n, d), R.dtype) @ root.T
    y = x @ R.T + jax.random.normal(kxi, (n, d), R.dtype)
    return x, y


def risk_gradient(A: jax.Array, R: jax.Array, Sigma: jax.Array) -> jax.Array:
    """Lemma 2.4 (2.5), with the products in the order the chain rule gives.

    ∂f/∂A_i = 2 [(Id + A_ℓ)···(Id + A_{i+1})]ᵀ E Σ [(Id + A_{i−1})···(Id + A_1)]ᵀ
            = 2 (Id + A_{i+1}ᵀ)···(Id + A_ℓᵀ) E Σ (Id + A_1ᵀ)···(Id + A_{i−1}ᵀ),
    with E = (Id + A_ℓ)···(Id + A_1) − R. The paper prints the two transposed
    products in reverse order, which is wrong once they hold two or more
    non-commuting factors (ℓ ≥ 3); see docs/section2.md.

    Args:
      A: (ℓ, d, d); R, Sigma: (d, d).
    Returns:
      (ℓ, d, d), the gradient of :func:`population_risk` with respect to A.
    Raises:
      ValueError: as :func:`excess_risk`.
    """
    A = _layers(A)
    R, Sigma = _target(R, A.shape[-1]), _moment(Sigma, A.shape[-1])
    eye = jnp.eye(A.shape[-1], dtype=A.dtype)

    def below(P, A_j):  # P = (Id + A_{j−1})···(Id + A_1) before layer j
        return P + A_j @ P, P

    def above(S, A_j):  # S = (Id + A_ℓ)···(Id + A_{j+1}) before layer j, scanning down
        return S + S @ A_j, S

    full, prefix = jax.lax.scan(below, eye, A)
    _, suffix = jax.lax.scan(above, eye, A, reverse=True)
    E_Sigma = (full - R) @ Sigma
    return 2.0 * jnp.einsum("lji,jk,lmk->lim", suffix, E_Sigma, prefix)


def max_norm(A: jax.Array) -> jax.Array:
    """|||A||| = max_i ‖A_i‖, the largest spectral norm over the ℓ layers of A (ℓ, d, d)."""
    A = _layers(A)
    return jnp.max(jnp.linalg.norm(A, ord=2, axis=(-2, -1)))


def gamma(R: jax.Array) -> jax.Array:
    """γ(R) = max{|log σ_max(R)|, |log σ_min(R)|} (Section 2); inf for singular R. R: (d, d)."""
    R = _v.array("R", R, (None, None))
    return _gamma(_target(R, R.shape[0]))


@jax.jit  # one dispatch instead of six: the checker calls gamma on thousands of small R
def _gamma(R: jax.Array) -> jax.Array:
    s = jnp.linalg.svd(R, compute_uv=False)
    return jnp.maximum(jnp.abs(jnp.log(s[..., 0])), jnp.abs(jnp.log(s[..., -1])))


def theorem_2_1_bound(gamma_R: float, depth: int) -> float:
    """Theorem 2.1's bound on |||A*|||: 2(√π + √(3γ))² / ℓ (valid for ℓ ≥ 3γ, det R > 0)."""
    gamma_R, depth = _v.real("gamma_R", gamma_R, minimum=0.0), _v.integer("depth", depth, minimum=1)
    return 2.0 * (math.sqrt(math.pi) + math.sqrt(3.0 * gamma_R)) ** 2 / depth


def sharper_bound(gamma_R: float, depth: int) -> float:
    """The bound :func:`factorize` guarantees: (π + 3γ)/(ℓ − 2), for ℓ ≥ 3 and ℓ ≥ 3γ.

    It is below Theorem 2.1's bound whenever ℓ ≥ 4 (docs/section2.md derives it).
    """
    gamma_R, depth = _v.real("gamma_R", gamma_R, minimum=0.0), _v.integer("depth", depth)
    if depth < 3:
        raise ValueError(f"sharper_bound needs depth ≥ 3, got {depth}.")
    return (math.pi + 3.0 * gamma_R) / (depth - 2)


def largest_angle(R, starts: int = 8, seed: int = 0) -> float:
    """θ(R) = max over x ≠ 0 of the angle ∠(x, R x) ∈ [0, π], from below.

    The maximum of a non-concave function: every candidate x gives a valid lower value,
    and the best of the eigenvectors of (R + Rᵀ)/2, the columns of R's polar factor Q and
    ``starts`` seeded random directions, each refined by L-BFGS on cos ∠(x, R x), is
    returned. Exact for a plane rotation (tested); in general a lower estimate. An x with
    R x = 0 counts as π/2 (no factorisation with |||A||| < 1 reaches a singular R anyway).
    R: (d, d) real.
    """
    from scipy.optimize import minimize

    R = _nf._as_square_float64(R, "R")
    d = R.shape[0]

    sym, Rt = R + R.T, R.T  # hoisted out of cosine, which L-BFGS calls at every iterate

    def cosine(x):
        rx = R @ x
        nx, nr = math.sqrt(x @ x), math.sqrt(rx @ rx)  # np.linalg.norm's arithmetic, less overhead
        if nx == 0.0 or nr == 0.0:
            return 0.0, np.zeros(d)
        a = x @ rx
        c = a / (nx * nr)
        grad = sym @ x / (nx * nr) - c * (x / nx**2 + Rt @ rx / nr**2)
        return c, grad

    _, vectors = np.linalg.eigh(sym / 2)
    W, _, Vt = np.linalg.svd(R)
    candidates = [*vectors.T, *(W @ Vt).T, *np.random.default_rng(seed).standard_normal((starts, d))]
    best = 1.0
    for x0 in candidates:
        res = minimize(cosine, x0, jac=True, method="L-BFGS-B", options={"maxiter": 200})
        best = min(best, float(res.fun), cosine(x0)[0])
    return float(math.acos(min(1.0, max(-1.0, best))))


def factorization_lower_bound(R, depth: int) -> float:
    """A lower bound on |||A||| over *every* factorisation (Id + A_ℓ)···(Id + A_1) = R.

    With δ = |||A||| (docs/section2.md proves each term):
      σ_max(R) ≤ (1 + δ)^ℓ                 ⇒ δ ≥ σ_max(R)^{1/ℓ} − 1,
      σ_min(R) ≥ (1 − δ)^ℓ  (when δ < 1)   ⇒ δ ≥ 1 − σ_min(R)^{1/ℓ},
      each layer turns a vector by at most arcsin δ  ⇒ δ ≥ sin(min(θ(R)/ℓ, π/2)),
    with θ(R) = :func:`largest_angle` (a lower estimate of the maximum keeps the bound
    valid); and δ ≥ 1 when det R ≤ 0 (a product of layers with δ < 1 has det > 0).
    For ℓ = 1 it is exact: ‖R − Id‖.
    Compare :func:`factorize`'s |||A*||| with it to see how far from optimal a
    factorisation can be. R: (d, d) real; depth: ℓ ≥ 1.
    """
    depth = _v.integer("depth", depth, minimum=1)
    R = _nf._as_square_float64(R, "R")
    if depth == 1:  # the only factorisation
        return float(np.linalg.norm(R - np.eye(R.shape[0]), 2))
    s = np.linalg.svd(R, compute_uv=False)
    terms = [s[0] ** (1.0 / depth) - 1.0, 1.0 - s[-1] ** (1.0 / depth),
             math.sin(min(largest_angle(R) / depth, math.pi / 2))]
    if not np.linalg.det(R) > 0:
        terms.append(1.0)
    return float(max(terms))


def negative_determinant_remedy(R) -> np.ndarray:
    """The paper's remedy for det R < 0: append one independent coordinate whose label is flipped.

    Inputs x ∈ ℝ^d become (x, z) and labels y become (y, −z) for an independent
    z ~ N(0, 1); the new map diag(R, −1) of size d + 1 has det = −det R > 0 and the
    first d outputs are unchanged. (When d is odd, learning −R from negated labels
    works as well.) Returns the (d + 1, d + 1) matrix to pass to :func:`factorize`.
    """
    R = np.asarray(R, dtype=np.float64)
    d = R.shape[0]
    out = np.zeros((d + 1, d + 1))
    out[:d, :d] = R
    out[d, d] = -1.0
    return out


def _check_factorizable(R) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validates R for :func:`factorize` and returns its SVD (float64)."""
    R = _nf._as_square_float64(R, "R")
    W, s, Vt = np.linalg.svd(R)
    # Judged relative to ‖R‖: below d·ε·σ_max, σ_min is rounding, and so is the sign of det R.
    if not s[-1] > R.shape[0] * np.finfo(np.float64).eps * s[0]:
        raise ValueError(
            f"R is singular to float64 precision (σ_min/σ_max = {s[-1] / s[0] if s[0] else 0.0:.3g}, at most "
            f"d·ε = {R.shape[0] * np.finfo(np.float64).eps:.3g}): γ(R) is infinite or unknowable, and no "
            "product of layers Id + A_j with |||A||| < 1 equals R. Theorem 2.1 needs an invertible R; "
            "if R is only nearly singular in your data, regularise it (e.g. R + ε·Id)."
        )
    if np.linalg.det(W) * np.linalg.det(Vt) < 0:
        raise ValueError(
            "det R < 0: every product (Id + A_ℓ)···(Id + A_1) with |||A||| < 1 has det > 0, so "
            "none equals R. The paper's remedy: add one independent input coordinate z and label "
            "it −z; the augmented map diag(R, −1) has det > 0. Call "
            "factorize(resjax.linear.negative_determinant_remedy(R), depth)"
            + (", or, since d is odd, factorize(-R, depth) and negate the labels." if R.shape[0] % 2 else ".")
        )
    return R, W, s, Vt


def _allocate(theta: float, s: np.ndarray, depth: int) -> tuple[int, int]:
    """Splits depth into q rotation layers and p positive-definite layers minimising the max norm.

    A rotation by angles ≤ θ split into q equal steps has step norm 2 sin(θ / 2q); the
    positive part with singular values s split into p steps has norm max|s^{1/p} − 1|.
    Returns (q, p) with q + p ≤ depth; (0, 0) when a single layer R − Id is needed.
    """
    needs_q = theta > 0.0
    # Singular values within rounding of 1 need no positive-definite layers.
    needs_p = bool(np.max(np.abs(np.log(s))) > 4 * s.shape[0] * np.finfo(np.float64).eps)
    best, best_norm = (0, 0), math.inf
    for q in range(1, depth + 1) if needs_q else (0,):
        p = depth - q if needs_p else 0
        if needs_p and p == 0:
            continue
        rot = 2.0 * math.sin(theta / (2 * q)) if q else 0.0
        psd = float(np.max(np.abs(s ** (1.0 / p) - 1.0))) if p else 0.0
        if max(rot, psd) < best_norm:
            best, best_norm = (q, p), max(rot, psd)
    return best


def factorize_psd(R, depth: int) -> np.ndarray:
    """Theorem 2.1's warm-up (Appendix A, step 1): R = U diag(z) Uᵀ symmetric positive definite.

    All ℓ layers equal U diag(z^{1/ℓ}) Uᵀ − Id, of norm max_i |z_i^{1/ℓ} − 1| ≤ e^{γ/ℓ} − 1,
    which is ≤ 3γ/ℓ when ℓ ≥ 3γ. Returns a float64 array of shape (depth, d, d).
    """
    depth = _v.integer("depth", depth, minimum=1)
    R = _nf._as_square_float64(R, "R")
    if not np.array_equal(R, R.T):
        raise ValueError("factorize_psd needs a symmetric R; use factorize for a general R.")
    z, U = np.linalg.eigh(R)
    if z[0] <= 0:
        raise ValueError(
            f"R is not positive definite (smallest eigenvalue {z[0]:.3g}); use factorize, which "
            "handles any R with det R > 0."
        )
    layer = (U * z ** (1.0 / depth)) @ U.T - np.eye(R.shape[0])
    return np.broadcast_to(layer, (depth, *R.shape)).copy()


CONSTRUCTIONS = ("best", "split", "interleaved")


def factorize(R, depth: int, *, require_bound: bool = False, construction: str = "best") -> np.ndarray:
    """Theorem 2.1, constructively: A* with (Id + A*_ℓ)···(Id + A*_1) = R and small |||A*|||.

    Uses the polar decomposition R = Q P (Q a rotation since det R > 0, P positive
    definite) instead of the paper's SVD U K Vᵀ: one rotation instead of two.
    Layers 1..p are P^{1/p} − Id (the paper's PSD warm-up: all equal, norm
    max|σ_i^{1/p} − 1|), layers p+1..p+q are Q^{1/q} − Id via the normal form of
    Claim C.1 (norm 2 sin(θ_max / 2q) ≤ π/q), and any remaining layers are zero;
    q and p are chosen to minimise |||A*|||. A second construction lets every layer
    rotate and stretch at once (Id + A_j = Q^{j/ℓ} P^{1/ℓ} Q^{−(j−1)/ℓ}); the one with
    the smaller |||A*||| is returned. For ℓ ≥ 3 and ℓ ≥ 3γ this gives
    |||A*||| ≤ (π + 3γ)/(ℓ − 2) (:func:`sharper_bound`), and for every ℓ ≥ 3γ at most
    Theorem 2.1's 2(√π + √(3γ))²/ℓ. A symmetric positive definite R gets ℓ equal layers.

    Args:
      R: (d, d) real matrix with det R > 0, any d ≥ 1.
      depth: ℓ ≥ 1, the number of layers.
      require_bound: if True, refuse depth < 3γ(R), where Theorem 2.1 promises nothing.
      construction: "split" (rotation and stretch in separate layers, the one the bounds
        are proved for), "interleaved" (both in every layer), or "best" of the two.
    Returns:
      float64 NumPy array A* of shape (depth, d, d); its product equals R to float64
      precision (relative error ~ ℓ·d·1e-16).
    Raises:
      ValueError: R not square or not finite, R singular to float64 precision
        (σ_min ≤ d·ε·σ_max), det R < 0 (with the remedy), depth < 1, or depth < 3γ with
        require_bound.
      TypeError: depth not an integer, R not an array of real numbers.

    Example:
      >>> import numpy as np
      >>> R = np.array([[0.0, -2.0], [1.0, 0.0]])             # rotation and stretch
      >>> A = factorize(R, 12)
      >>> P = np.eye(2)
      >>> for A_j in A: P = P + A_j @ P
      >>> bool(np.allclose(P, R, atol=1e-12))
      True
    """
    depth = _v.integer("depth", depth, minimum=1)
    _v.one_of("construction", construction, CONSTRUCTIONS)
    R, W, s, Vt = _check_factorizable(R)
    d = R.shape[0]
    g = float(max(abs(math.log(s[0])), abs(math.log(s[-1]))))
    if require_bound and depth < 3 * g:
        raise ValueError(
            f"depth {depth} < 3γ(R) = {3 * g:.4g}: Theorem 2.1 needs ℓ ≥ 3γ. Use depth ≥ "
            f"{math.ceil(3 * g)}, rescale the outputs so that σ_min(R) ≤ 1 ≤ σ_max(R) "
            "(which shrinks γ), or pass require_bound=False."
        )
    if np.array_equal(R, R.T) and np.all(np.linalg.eigvalsh(R) > 0):
        return factorize_psd(R, depth)
    Q = W @ Vt
    eye = np.eye(d)
    if np.linalg.norm(Q - eye, 2) <= 4 * d * np.finfo(np.float64).eps:
        S, thetas = eye, np.zeros(0)
    else:
        S, thetas = _nf.rotation_planes(Q)
    theta = float(np.max(thetas, initial=0.0))
    q, p = _allocate(theta, s, depth)
    A = np.zeros((depth, d, d))
    if q == p == 0:  # one layer must hold both factors, or R is Id up to rounding
        A[0] = R - eye
        return A
    if p:
        A[:p] = (Vt.T * s ** (1.0 / p)) @ Vt - eye
    if q:
        A[p : p + q] = _nf._rotation_powers(S, thetas, np.array([1.0 / q]))[0] - eye
    if construction == "split":
        return A
    mixed = _interleaved_polar(S, thetas, Vt, s, depth)
    if construction == "interleaved":
        return mixed
    norms = [np.linalg.norm(B, ord=2, axis=(1, 2)).max() for B in (A, mixed)]
    return mixed if norms[1] < norms[0] else A


def _interleaved_polar(S, thetas, Vt, s, depth: int) -> np.ndarray:
    """Every layer rotates and stretches at once: Id + A_j = Q^{j/ℓ} P^{1/ℓ} Q^{−(j−1)/ℓ}.

    The product telescopes to Q P = R, and each layer is Q^{1/ℓ} P^{1/ℓ} conjugated by the
    rotation Q^{(j−1)/ℓ}, so all have the norm ‖Q^{1/ℓ} P^{1/ℓ} − Id‖ ≤ ‖Q^{1/ℓ} − Id‖·‖P^{1/ℓ}‖
    + ‖P^{1/ℓ} − Id‖: at worst about the split construction's, often less, since rotation and
    stretch then share every layer instead of dividing the layers between them.
    """
    root = (Vt.T * s ** (1.0 / depth)) @ Vt
    powers = _nf._rotation_powers(S, thetas, np.arange(depth + 1) / depth)
    eye = np.eye(root.shape[0])
    return powers[1:] @ root @ np.swapaxes(powers[:-1], 1, 2) - eye
