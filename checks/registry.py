"""The registry: every statement the checker knows, by id, in the paper's order."""

from __future__ import annotations

from . import section2, section3
from .statement import Statement

STATEMENTS: tuple[Statement, ...] = section2.STATEMENTS + section3.STATEMENTS


def get(statement_id: str, statements=STATEMENTS) -> Statement:
    for s in statements:
        if s.id == statement_id:
            return s
    known = ", ".join(s.id for s in statements)
    raise KeyError(f"no statement {statement_id!r} in the registry; known ids: {known}")


def select(ids=None, statements=STATEMENTS) -> tuple[Statement, ...]:
    """The statements with these ids (all when ids is empty or None)."""
    return tuple(get(i, statements) for i in ids) if ids else tuple(statements)
