"""Reports: the table, the JSON file, witness files, and replay of a witness."""

from __future__ import annotations

import datetime
import json
import pathlib

import jax
import numpy as np

import resjax

from . import registry
from .runner import Result, evaluator


def witness_file(result: Result, directory) -> pathlib.Path:
    """Writes the counterexample as JSON (floats round-trip exactly) and returns its path."""
    s = result.statement
    path = pathlib.Path(directory) / (s.id.replace("/", "__").replace(">", "gt") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "statement": s.id,
        "ref": s.ref,
        "text": s.text,
        "printed": s.printed,
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


def load_witness(path) -> tuple[str, dict]:
    """Returns (statement id, instance) from a witness file, with a clear error if malformed."""
    path = pathlib.Path(path)
    try:
        payload = json.loads(path.read_text())
        instance = {k: np.asarray(v, dtype=payload["dtypes"][k]) for k, v in payload["instance"].items()}
        return payload["statement"], instance
    except FileNotFoundError:
        raise SystemExit(f"resjax check --replay: no witness file at {path}.") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise SystemExit(
            f"resjax check --replay: {path} is not a witness file written by resjax check ({e!r})."
        ) from None


def replay(path, statements=registry.STATEMENTS) -> Result:
    """Re-evaluates a witness on its own: the statement's slack at that one instance."""
    statement_id, instance = load_witness(path)
    statement = registry.get(statement_id, statements)
    with jax.enable_x64(True):
        out = evaluator(statement)({k: v[None] for k, v in instance.items()})
    quantities = {k: float(np.asarray(v)[0]) for k, v in out.items()}
    slack = quantities["slack"]
    status = "falsified" if not slack >= 0 else "verified"
    return Result(statement, status, 1, slack, quantities, witness=instance if status == "falsified" else None,
                  witness_path=str(path))


def _fmt(x: float) -> str:
    return f"{x:+.3e}" if np.isfinite(x) else str(x)


def table(results: list[Result]) -> str:
    head = f"{'statement':<22} {'form':<9} {'status':<10} {'instances':>9} {'min slack':>11}  witness"
    lines = [head, "-" * len(head)]
    for r in results:
        form = "printed" if r.statement.printed else "corrected"
        lines.append(
            f"{r.statement.id:<22} {form:<9} {r.status:<10} {r.instances:>9} {_fmt(r.min_slack):>11}  {r.witness_path or '-'}"
        )
    return "\n".join(lines)


def details(r: Result) -> str:
    """The statement and the quantities at its least-slack instance, one block."""
    q = ", ".join(f"{k}={_fmt(v)}" for k, v in r.quantities.items())
    note = f"\n    ({r.statement.note})" if r.statement.note else ""
    return f"{r.statement.id} [{r.statement.ref}] {r.status}: {r.statement.text}{note}\n    {q}"


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
