"""The loop every float64 grid experiment shares."""

from __future__ import annotations

from typing import Callable, Iterable

import jax


def run_cells(cells: Iterable[tuple], one: Callable[..., dict], progress=None) -> list[dict]:
    """``one(*cell)`` for every cell, in order, with float64 enabled; ``progress(1)`` after each."""
    rows = []
    with jax.enable_x64(True):
        for cell in cells:
            rows.append(one(*cell))
            if progress:
                progress(1)
    return rows
