"""Claim C.1: the real normal form of a real normal matrix.

These are host-side (NumPy/SciPy, float64) constructions: they choose a block
structure from the spectrum, which is data-dependent and so not traceable.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from resjax import validation as _v

# A 2x2 Schur block whose subdiagonal is below this (relative to the matrix norm)
# is a pair of real eigenvalues that LAPACK left unsplit.
_SPLIT_TOL = 1e-13


def _as_square_float64(M, name: str) -> np.ndarray:
    """M as a finite float64 (d, d) NumPy array, d ≥ 1, or a TypeError/ValueError saying why not."""
    M = np.asarray(_v.array(name, M), dtype=np.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 1:
        raise ValueError(f"{name} must be a square matrix of shape (d, d), d ≥ 1; got shape {M.shape}.")
    _v.finite(name, M)
    return M


def normal_form(M) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Claim C.1 (corrected form): M = S D Sᵀ for a real normal matrix M.

    S is orthogonal and D is block diagonal with 1x1 blocks (the real eigenvalues)
    and 2x2 blocks [[a, b], [-b, a]] (the complex pairs a ± ib). The printed claim
    adds "all blocks 2x2 when d is even", which fails whenever a real eigenvalue has
    odd multiplicity, e.g. M = diag(1, 2); see docs/section2.md.

    Args:
      M: (d, d) real normal matrix (M Mᵀ = Mᵀ M).
    Returns:
      S: (d, d) orthogonal; D: (d, d) block diagonal; blocks: list of (start, size).
    Raises:
      ValueError: M is not square, not finite, or not normal.
    """
    M = _as_square_float64(M, "M")
    scale = max(np.linalg.norm(M, 2), 1.0)
    defect = np.linalg.norm(M @ M.T - M.T @ M, 2) / scale**2
    if defect > 1e-8:
        raise ValueError(
            f"M is not normal: ‖M Mᵀ − Mᵀ M‖ / ‖M‖² = {defect:.2e}. Claim C.1 applies only to "
            "normal matrices (symmetric, skew-symmetric, orthogonal, ...)."
        )
    T, S = scipy.linalg.schur(M, output="real")
    d = M.shape[0]
    D = np.zeros_like(T)
    blocks = []
    i = 0
    while i < d:
        if i + 1 < d and abs(T[i + 1, i]) > _SPLIT_TOL * scale:
            a = 0.5 * (T[i, i] + T[i + 1, i + 1])
            b = 0.5 * (T[i, i + 1] - T[i + 1, i])
            D[i : i + 2, i : i + 2] = [[a, b], [-b, a]]
            blocks.append((i, 2))
            i += 2
        else:
            D[i, i] = T[i, i]
            blocks.append((i, 1))
            i += 1
    return S, D, blocks


def rotation(theta: float) -> np.ndarray:
    """T(θ) = [[cos θ, −sin θ], [sin θ, cos θ]], the 2x2 rotation of Claim C.1."""
    theta = _v.real("theta", theta)
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def rotation_planes(Q) -> tuple[np.ndarray, np.ndarray]:
    """Q = S diag(T(θ_1), …, T(θ_m), 1, …, 1) Sᵀ for Q in SO(d) (Claim C.1 for rotations).

    Real eigenvalues −1 come in pairs when det Q = 1; each pair becomes one plane
    rotated by π, so at most one 1x1 block (+1) remains when d is odd and none when
    d is even.

    Args:
      Q: (d, d) orthogonal with det Q = +1.
    Returns:
      S: (d, d) orthogonal, its columns ordered plane by plane (columns 2k, 2k+1
      span plane k), then the fixed directions; thetas: (m,) angles in [0, π].
    """
    Q = _as_square_float64(Q, "Q")
    d = Q.shape[0]
    if np.linalg.norm(Q.T @ Q - np.eye(d), 2) > 1e-8 or np.linalg.det(Q) <= 0:
        raise ValueError("Q must be a rotation: orthogonal with det Q = +1.")
    S, D, blocks = normal_form(Q)
    planes, thetas, fixed, flips = [], [], [], []
    for start, size in blocks:
        if size == 2:
            c, s = D[start, start], D[start + 1, start]
            # D block is [[c, -s], [s, c]] = T(θ); order columns so θ >= 0.
            cols = [start, start + 1] if s >= 0 else [start + 1, start]
            planes.append(cols)
            thetas.append(np.arctan2(abs(s), c))
        elif D[start, start] < 0:
            flips.append(start)
        else:
            fixed.append(start)
    if len(flips) % 2:
        raise ValueError("Q has an odd number of eigenvalues −1, so det Q = −1, not +1.")
    for k in range(0, len(flips), 2):
        planes.append([flips[k], flips[k + 1]])
        thetas.append(np.pi)
    order = [c for cols in planes for c in cols] + fixed
    return S[:, order], np.asarray(thetas, dtype=np.float64)


def rotation_power(S: np.ndarray, thetas: np.ndarray, t: float) -> np.ndarray:
    """Q^t = S diag(T(t θ_1), …, T(t θ_m), 1, …) Sᵀ, from :func:`rotation_planes` output.

    S: (d, d) orthogonal; thetas: (m,) finite angles, m ≤ d/2; t: a finite real.
    """
    S = _as_square_float64(S, "S")
    d = S.shape[0]
    if np.linalg.norm(S.T @ S - np.eye(d), 2) > 1e-8:
        raise ValueError("S must be orthogonal (Sᵀ S = Id), as rotation_planes returns it.")
    thetas = np.asarray(_v.array("thetas", thetas, (None,)), dtype=np.float64)
    _v.finite("thetas", thetas)
    if 2 * len(thetas) > d:
        raise ValueError(f"{len(thetas)} rotation angles need 2·{len(thetas)} dimensions, but S is {d} x {d}.")
    return _rotation_powers(S, thetas, np.array([_v.real("t", t)]))[0]


def _rotation_powers(S: np.ndarray, thetas: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Q^t for every t in ``ts`` at once: (k, d, d), unvalidated (callers check S and thetas).

    The inner loop of :func:`resjax.linear.factorize`, which needs every Q^{j/ℓ}: the
    public :func:`rotation_power` checks S's orthogonality with an SVD, which cost more
    than the power itself there. S: (d, d); thetas: (m,); ts: (k,).
    """
    d, m = S.shape[0], len(thetas)
    angles = np.multiply.outer(ts, thetas)  # (k, m)
    c, s = np.cos(angles), np.sin(angles)
    D = np.tile(np.eye(d), (len(ts), 1, 1))
    i = 2 * np.arange(m)
    D[:, i, i], D[:, i, i + 1], D[:, i + 1, i], D[:, i + 1, i + 1] = c, -s, s, c  # T(t θ_k) blocks
    return S @ D @ S.T
