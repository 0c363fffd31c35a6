"""Reports: the table, the JSON file, witness files, and replay of a witness.

A witness file (format 2) carries the statement's id and a digest of its wording, the
format version, and the instance with its keys and dtypes. Replay refuses, with a
message that says what to do, a file of another format, an unknown id, a statement
whose wording changed since the file was written, keys, dtypes or dimensions that are
not the statement's, and an instance its evaluation cannot run on.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib

import jax
import numpy as np
from hypothesis import Phase, find, settings

import resjax
from resjax import validation as _v

from . import registry
from .runner import Result, evaluator
from .statement import Statement

WITNESS_FORMAT = 2


class WitnessError(ValueError):
    """A witness file that cannot be replayed; the message says why and what to do."""


def digest(statement: Statement) -> str:
    """Identifies a statement's wording: a witness is only evidence about the statement it was found for."""
    text = json.dumps([statement.id, statement.ref, statement.text, statement.printed])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_REFERENCES: dict[tuple, dict] = {}


def reference_instance(statement: Statement) -> dict:
    """One instance of the statement, from its simplest spec: the keys, dtypes and
    dimensions every instance of it has."""
    key = (statement.id, statement.specs, statement.build)
    if key not in _REFERENCES:
        quiet = settings(database=None, phases=[Phase.generate, Phase.shrink], max_examples=1)
        spec = find(statement.specs("quick"), lambda _: True, settings=quiet)
        _REFERENCES[key] = {k: np.asarray(v)[0] for k, v in statement.build(spec, 1).items()}
    return _REFERENCES[key]


def witness_file(result: Result, directory) -> pathlib.Path:
    """Writes the counterexample as JSON (floats round-trip exactly) and returns its path."""
    s = result.statement
    path = pathlib.Path(directory) / (s.id.replace("/", "__").replace(">", "gt") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": WITNESS_FORMAT,
        "statement": s.id,
        "statement_digest": digest(s),
        "keys": sorted(result.witness),
        "ref": s.ref,
        "text": s.text,
        "printed": s.printed,
        "target": s.target,
        "kind": s.witness_kind,
        "instance": {k: np.asarray(v).tolist() for k, v in result.witness.items()},
        "dtypes": {k: str(np.asarray(v).dtype) for k, v in result.witness.items()},
        "quantities": result.quantities,
        "replay": f"resjax check --replay {path}",
        "resjax": resjax.__version__,
        "jax": jax.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    path.write_text(json.dumps(payload, indent=1, allow_nan=True))
    return path


def load_witness(path, statements=registry.STATEMENTS, only=None) -> tuple[Statement, dict]:
    """(statement, instance) from a witness file, after checking that the file is a
    witness of this format, of a known statement in its current wording (one of
    ``only`` when given), and that its instance has that statement's keys, dtypes and
    dimensions. Raises WitnessError."""
    path = pathlib.Path(path)
    rerun = "run `resjax check --only ID` to write a fresh witness"
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise WitnessError(f"no witness file at {path}.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WitnessError(f"{path} is not a witness file written by resjax check ({e}).") from None
    if not isinstance(payload, dict) or payload.get("format") != WITNESS_FORMAT:
        found = payload.get("format", "none") if isinstance(payload, dict) else "none"
        raise WitnessError(f"{path} has witness format {found}, this resjax reads format {WITNESS_FORMAT}; {rerun}.")
    ids = [s.id for s in statements]
    sid = payload.get("statement")
    if sid not in ids:
        raise WitnessError(f"{path} is a witness of {sid!r}, which is not a statement of this checker"
                           f"{_v.suggest(sid, ids)}; known ids: {', '.join(ids)}.")
    if only and sid not in only:
        raise WitnessError(f"{path} is a witness of {sid!r}, not of {', '.join(only)}.")
    statement = registry.get(sid, statements)
    if payload.get("statement_digest") != digest(statement):
        raise WitnessError(f"{path} was written for a different wording of {sid} than this checker's "
                           f"(resjax {payload.get('resjax', '?')}); {rerun.replace('ID', sid)}.")
    return statement, _instance(path, payload, statement)


def _instance(path, payload: dict, statement: Statement) -> dict:
    """The witness's arrays, checked against the statement's reference instance."""
    want = reference_instance(statement)
    try:
        raw, dtypes, keys = dict(payload["instance"]), dict(payload["dtypes"]), list(payload["keys"])
    except (KeyError, TypeError, ValueError) as e:
        raise WitnessError(f"{path} has a damaged instance ({type(e).__name__}: {e}).") from None
    if not (sorted(raw) == sorted(dtypes) == keys == sorted(want)):
        raise WitnessError(f"{path} has instance keys {sorted(raw)} (listed: {keys}); {statement.id} takes {sorted(want)}.")
    try:
        instance = {k: np.asarray(raw[k], dtype=dtypes[k]) for k in keys}
    except (TypeError, ValueError) as e:
        raise WitnessError(f"{path} has a damaged instance ({type(e).__name__}: {e}).") from None
    for k, v in instance.items():
        if v.dtype.kind != want[k].dtype.kind or v.ndim != want[k].ndim:
            raise WitnessError(f"{path}: {k} is a {v.ndim}-dimensional {v.dtype} array; {statement.id} takes a "
                               f"{want[k].ndim}-dimensional {want[k].dtype.name} array.")
    return instance


def replay(path, statements=registry.STATEMENTS, only=None) -> Result:
    """Re-evaluates a witness on its own: the statement's slack at that one instance.
    Raises WitnessError for a file that is not a valid witness (see load_witness)."""
    statement, instance = load_witness(path, statements, only)
    try:
        with jax.enable_x64(True):
            out = evaluator(statement)({k: v[None] for k, v in instance.items()})
    except (ValueError, TypeError, IndexError, KeyError, np.linalg.LinAlgError) as e:
        raise WitnessError(f"{path}: the instance does not fit {statement.id} ({type(e).__name__}: {e}).") from None
    quantities = {k: float(np.asarray(v)[0]) for k, v in out.items()}
    slack = quantities["slack"]
    status = "falsified" if not slack >= 0 else "undecided" if quantities.get("undecided") == 1.0 else "verified"
    return Result(statement, status, 1, slack, quantities, witness=instance if status == "falsified" else None,
                  witness_path=str(path))


def _fmt(x: float) -> str:
    return f"{x:+.3e}" if np.isfinite(x) else str(x)


def table(results: list[Result]) -> str:
    """One row per entry: what it tests (printed or corrected; statement, proof step or
    reading) and the verdict about exactly that."""
    head = f"{'entry':<34} {'tests':<21} {'verdict':<10} {'instances':>9} {'min slack':>11}  witness"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.statement.id:<34} {r.statement.verdict_subject:<21} {r.status:<10} {r.instances:>9} "
            f"{_fmt(r.min_slack):>11}  {r.witness_path or '-'}"
        )
    return "\n".join(lines)


def details(r: Result) -> str:
    """The statement and the quantities at its least-slack instance, one block (a
    quantity that was not computed on that instance, NaN, is left out)."""
    q = ", ".join(f"{k}={_fmt(v)}" for k, v in r.quantities.items() if k == "slack" or not np.isnan(v))
    note = f"\n    ({r.statement.note})" if r.statement.note else ""
    if r.status == "falsified":
        note += f"\n    witness: a {r.statement.witness_kind}"
    return (f"{r.statement.id} [{r.statement.ref}]: {r.statement.verdict_subject} {r.status}: {r.statement.text}{note}"
            f"\n    {q}")


def to_json(results: list[Result], profile: str) -> dict:
    return {
        "profile": profile,
        "resjax": resjax.__version__,
        "jax": jax.__version__,
        "statements": [
            {
                "id": r.statement.id,
                "ref": r.statement.ref,
                "text": r.statement.text,
                "printed": r.statement.printed,
                "target": r.statement.target,
                "witness_kind": r.statement.witness_kind if r.status == "falsified" else None,
                "claimed": r.statement.claimed,
                "corrects": r.statement.corrects,
                "status": r.status,
                "instances": r.instances,
                "min_slack": r.min_slack if np.isfinite(r.min_slack) else None,
                "witness": r.witness_path,
                "quantities": {k: (v if np.isfinite(v) else None) for k, v in r.quantities.items()},
                "seconds": round(r.seconds, 3),
            }
            for r in results
        ],
    }


def exit_code(results: list[Result]) -> int:
    """Non-zero only when something resjax itself claims is falsified."""
    return int(any(r.status == "falsified" and r.statement.claimed for r in results))
