"""Input checks at the library's boundary: what is wrong, and what to do instead.

Public resjax functions call these on their arguments. Shapes and dtypes are static, so
they are checked everywhere, under ``jit``, ``grad`` and ``vmap`` too, at trace time and
for free. Values (finiteness, symmetry, definiteness, a determinant's sign) can only be
checked on concrete arrays: inside a traced function they are not known, and those
checks are skipped (:func:`concrete` says which case applies). Each helper raises
``TypeError`` for a value of the wrong kind and ``ValueError`` for a value of the right
kind that breaks a rule, with the argument's name in the message.
"""

from __future__ import annotations

import difflib
import numbers

import jax
import numpy as np


def suggest(value, options) -> str:
    """' (did you mean 'x'?)' for the option nearest to a misspelt value, or ''."""
    names = [o for o in options if isinstance(o, str)]
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_of(name: str, value, allowed) -> object:
    """value if it is one of ``allowed``; else a ValueError listing them (and the nearest)."""
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not one of {listed}{suggest(value, allowed)}.")
    return value


def integer(name: str, value, minimum: int | None = None) -> int:
    """A Python or NumPy integer (not a bool, not a float), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def real(name: str, value, *, minimum: float | None = None) -> float:
    """A finite real number (int or float, not a bool), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        if not (concrete(value) and np.ndim(value) == 0 and np.asarray(value).dtype.kind in "fiu"):
            raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return value


def concrete(x) -> bool:
    """True when x has known values (not a tracer inside jit, grad or vmap)."""
    return not isinstance(x, jax.core.Tracer)


def array(name: str, x, shape: tuple | None = None):
    """x as an array of real numbers with the given shape (None entries match any size).

    JAX arrays and tracers are returned as they are; anything else goes through
    ``np.asarray``. Raises TypeError for non-numeric, boolean or complex data and
    ValueError for a wrong shape.
    """
    if not isinstance(x, (jax.Array, np.ndarray)):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as e:  # ragged nested lists, objects without __array__
            raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}: {e}") from None
    kind = np.dtype(x.dtype).kind
    if kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}.")
    if shape is not None and (
        x.ndim != len(shape) or any(want is not None and got != want for got, want in zip(x.shape, shape))
    ):
        wanted = "(" + ", ".join("·" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {wanted}, got {tuple(x.shape)}.")
    return x


def finite(name: str, x) -> None:
    """Refuses nan or inf entries (concrete arrays only)."""
    if concrete(x) and not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{name} has non-finite entries (nan or inf); pass finite values.")


def symmetric_psd(name: str, S) -> None:
    """Refuses a concrete S that is not symmetric positive semi-definite.

    Tolerance, relative to ‖S‖₂: 64·d·ε of S's dtype for both the asymmetry ‖S − Sᵀ‖₂ and
    the most negative eigenvalue (rounding in S = L Lᵀ stays far inside it).
    """
    if not concrete(S):
        return
    S = np.asarray(S, dtype=np.float64 if np.dtype(S.dtype).kind != "f" else S.dtype)
    finite(name, S)
    tol = 64 * S.shape[0] * float(np.finfo(S.dtype).eps) * max(float(np.linalg.norm(S, 2)), np.finfo(S.dtype).tiny)
    asym = float(np.linalg.norm(S - S.T, 2))
    if asym > tol:
        raise ValueError(f"{name} must be symmetric (a second moment E[x xᵀ]); ‖{name} − {name}ᵀ‖ = {asym:.3g}.")
    low = float(np.linalg.eigvalsh(S.astype(np.float64))[0])
    if low < -tol:
        raise ValueError(
            f"{name} must be positive semi-definite (a second moment E[x xᵀ]); its smallest eigenvalue is "
            f"{low:.3g}. Build it as L @ L.T, or as the average of x xᵀ over data."
        )


def prng_key(name: str, key) -> None:
    """Refuses anything but a JAX PRNG key (jax.random.key or jax.random.PRNGKey)."""
    is_typed = isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    is_raw = isinstance(key, jax.Array) and key.shape == (2,) and key.dtype == np.uint32
    if not (is_typed or is_raw):
        raise TypeError(f"{name} must be a JAX PRNG key such as jax.random.key(0), got {type(key).__name__}.")
