"""The paper's phenomena as experiments anyone can rerun (installed as ``resjax.experiments``).

Each experiment is a module with a frozen ``Config`` (its defaults are the documented
run; ``QUICK`` is a tiny one for CI), ``run(config, progress) -> list of row dicts`` (a
pure function of the config: seeded, float64 where it matters), ``plot(rows, path)``
and ``COLUMNS`` (the table's columns). ``resjax experiment NAME`` prints the table and
writes ``rows.json`` and ``NAME.png`` to its workdir; docs/experiments.md holds the results.

``configure`` applies ``KEY=VALUE`` overrides (``resjax experiment NAME --set KEY=VALUE``)
to an experiment's config, refusing unknown fields and values of the wrong type.
"""

import dataclasses
import json
import types
import typing

from resjax import validation as _v

from . import ablation, hypotheses, linear_gd, plain_gd, random_labels

EXPERIMENTS = {"linear-gd": linear_gd, "plain-gd": plain_gd, "hypotheses": hypotheses, "random-labels": random_labels, "ablation": ablation}


def configure(module, quick: bool = False, assignments: typing.Sequence[str] = ()):
    """``module.QUICK`` or ``module.Config()`` with ``KEY=VALUE`` assignments applied: values
    are JSON (lists become tuples), else the plain string. Raises ValueError naming the
    field and what it takes; the module's ``check(config)``, if any, runs last."""
    config = module.QUICK if quick else module.Config()
    hints = typing.get_type_hints(module.Config)
    changes = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or key not in hints:
            reason = "expected KEY=VALUE" if not sep else f"unknown field {key!r}{_v.suggest(key, hints)}"
            raise ValueError(f"cannot apply {item!r}: {reason}; the fields are {', '.join(hints)}.")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        value = _tuples(value)
        if not _fits(value, hints[key]):
            raise ValueError(f"cannot apply {item!r}: {key} takes {_name(hints[key])}, not {value!r}.")
        changes[key] = value
    config = dataclasses.replace(config, **changes)
    if hasattr(module, "check"):
        module.check(config)
    return config


def _tuples(value):
    """JSON lists as tuples, nested ones too (configs are frozen and hashable)."""
    return tuple(map(_tuples, value)) if isinstance(value, list) else value


def _fits(value, hint) -> bool:
    """Whether a parsed JSON value has the field's type (int for float is allowed, bool for int is not)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is tuple:
        return isinstance(value, tuple) and all(_fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
