"""Runs statements: hypothesis sampling, then the gradient attack, then a verdict."""

from __future__ import annotations

import dataclasses
import time

import jax
import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings, target

from . import attack as attack_mod
from .statement import PROFILES, Instance, Profile, Statement

_EVALUATORS: dict[tuple, object] = {}
# Per-instance 0/1 flags an evaluate may return; a verified or undecided verdict reports
# their totals (how many instances met the hypotheses, were constructed, or left undecided).
COUNTED = ("in_domain", "constructed", "certificate", "undecided")


@dataclasses.dataclass
class Result:
    """The verdict on one statement."""

    statement: Statement
    status: str  # "verified", "falsified", or "undecided" (some instance neither confirmed nor refuted)
    instances: int
    min_slack: float
    quantities: dict  # at the instance of least slack
    witness: Instance | None = None  # the counterexample, when falsified
    witness_path: str | None = None
    seconds: float = 0.0


class _Falsified(Exception):
    def __init__(self, instance: Instance, quantities: dict):
        super().__init__("counterexample")
        self.instance, self.quantities = instance, quantities


def evaluator(statement: Statement):
    """Batch of instances (already in the statement's domain) -> dict of NumPy arrays.

    Cached by (evaluate, domain), so statements that share a formula share its compiles.
    """
    key = (statement.evaluate, statement.domain, statement.batched)
    if key not in _EVALUATORS:
        if statement.batched:
            fn = jax.jit(jax.vmap(statement.evaluate))
            _EVALUATORS[key] = lambda batch: {k: np.asarray(v) for k, v in fn(batch).items()}
        else:

            def loop(batch):
                n = len(next(iter(batch.values())))
                rows = [statement.evaluate(row(batch, i)) for i in range(n)]
                keys = dict.fromkeys(k for r in rows for k in r)  # a quantity some rows do not compute is NaN there
                return {k: np.asarray([r.get(k, np.nan) for r in rows], dtype=np.float64) for k in keys}

            _EVALUATORS[key] = loop
    return _EVALUATORS[key]


def row(batch: dict, i: int) -> dict:
    return {k: np.asarray(v)[i] for k, v in batch.items()}


def _slacks(out: dict) -> np.ndarray:
    """NaN slack means the evaluation broke down: count it as a failure, never skip it."""
    return np.where(np.isnan(out["slack"]), -np.inf, out["slack"])


class _Tracker:
    def __init__(self):
        self.instances, self.min_slack, self.quantities = 0, np.inf, {}
        self.worst_batch = None
        self.counts = dict.fromkeys(COUNTED, 0)  # per-instance flags an evaluate may return, summed

    def update(self, batch: dict, out: dict, keep: int = 0) -> int:
        """Counts a batch; keeps its ``keep`` least-slack instances if it holds the least slack."""
        slacks = _slacks(out)
        i = int(np.argmin(slacks))
        self.instances += len(slacks)
        for key in COUNTED:
            self.counts[key] += int(np.nansum(out.get(key, 0.0)))
        if slacks[i] < self.min_slack or self.worst_batch is None:
            self.min_slack = float(slacks[i])
            self.quantities = {k: float(v[i]) for k, v in out.items()}
            worst = np.argsort(slacks)[:keep]
            self.worst_batch = {k: np.asarray(v)[worst] for k, v in batch.items()}
        return i


def _sample(statement: Statement, profile, tracker: _Tracker, evaluate) -> None:
    phases = [Phase.explicit, Phase.generate, Phase.target] + ([Phase.shrink] if profile.shrink else [])

    @settings(
        max_examples=profile.examples,
        deadline=None,
        database=None,
        derandomize=profile.derandomize,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @given(statement.specs(profile.name))
    def probe(spec):
        batch = statement.build(spec, min(profile.batch, statement.max_batch or profile.batch))
        out = evaluate(batch)
        i = tracker.update(batch, out, keep=profile.attack_instances)
        slack = _slacks(out)[i]
        target(float(np.clip(-slack, -1e300, 1e300)), label="negative slack")
        if slack < 0:
            raise _Falsified(row(batch, i), {k: float(v[i]) for k, v in out.items()})

    for spec in statement.adversarial:
        probe = example(spec)(probe)
    probe()


def check(statement: Statement, profile: str | Profile = "quick") -> Result:
    """Samples, then attacks, one statement; returns its verdict (float64 throughout).

    ``profile`` is a name in PROFILES ("quick", "thorough") or a Profile.
    """
    profile = PROFILES[profile] if isinstance(profile, str) else profile
    tracker = _Tracker()
    start = time.perf_counter()
    evaluate = evaluator(statement)
    with jax.enable_x64(True):
        try:
            _sample(statement, profile, tracker, evaluate)
            if statement.domain is not None and tracker.worst_batch is not None:
                attacked = attack_mod.attack(statement, tracker.worst_batch, profile.attack_steps, profile.attack_seconds)
                valid = jax.vmap(statement.valid)(attacked)
                valid = {k: np.asarray(v) for k, v in valid.items()}
                out = evaluate(valid)
                i = tracker.update(valid, out)
                if _slacks(out)[i] < 0:
                    raise _Falsified(row(valid, i), {k: float(v[i]) for k, v in out.items()})
        except _Falsified as found:
            q = found.quantities
            return Result(statement, "falsified", tracker.instances, min(q["slack"], tracker.min_slack), q,
                          witness=found.instance, seconds=time.perf_counter() - start)
    status = "undecided" if tracker.counts["undecided"] else "verified"
    counted = {f"{k}_instances": float(v) for k, v in tracker.counts.items() if v}
    quantities = {**tracker.quantities, **counted}
    return Result(statement, status, tracker.instances, tracker.min_slack, quantities,
                  seconds=time.perf_counter() - start)


def run(statements, profile: str | Profile = "quick", progress=None) -> list[Result]:
    """Checks each statement in turn; ``progress(statement)`` is called before each."""
    results = []
    for s in statements:
        if progress:
            progress(s)
        results.append(check(s, profile))
    return results
