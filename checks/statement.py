"""What the checker checks: a statement, its instances, and its slack.

A statement is an inequality or identity over instances (dicts of float64 arrays).
``evaluate(instance)`` returns a dict of named quantities with at least ``slack``:
slack ≥ 0 where the statement holds on the instance (rounding allowances are built
into each statement's slack), slack < 0 on a counterexample. Slacks are relative
(in [−1, 1] for inequalities lhs ≥ rhs: (lhs − rhs)/(|lhs| + |rhs|)) so that the
smallest slack is comparable across instances.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

Instance = dict[str, Any]

# What an entry's verdict is about, so that it is quoted no more strongly than it was shown:
# "statement": the result's conclusion under its hypotheses (falsified only by an instance
#   that meets every hypothesis and violates the conclusion);
# "proof step": a construction, constant or inequality used inside its proof;
# "reading": one reading of a garbled or ambiguous printed line.
TARGETS = ("statement", "proof step", "reading")
# What a falsifying witness is: a "counterexample" (an instance on which a universal
# statement's conclusion fails), or a "certificate" (an instance with an obstruction,
# proved in the docs and checked on it, showing that nothing an existence statement asks
# for exists). An optimiser's failure to find something is neither: at most "undecided".
WITNESS_KINDS = ("counterexample", "certificate")


@dataclasses.dataclass(frozen=True)
class Profile:
    """How hard to look: hypothesis examples, instances per example, and the attack on
    the worst instances of the worst batch (how many, how many steps)."""

    name: str
    examples: int
    batch: int
    attack_instances: int
    attack_steps: int
    attack_seconds: float
    shrink: bool
    derandomize: bool


PROFILES = {
    "quick": Profile("quick", 8, 64, attack_instances=8, attack_steps=400, attack_seconds=1.5, shrink=False, derandomize=True),
    "thorough": Profile(
        "thorough", 400, 256, attack_instances=64, attack_steps=5000, attack_seconds=300.0, shrink=True, derandomize=False
    ),
}


@dataclasses.dataclass(frozen=True)
class Statement:
    """One statement of the paper, as printed or in a corrected form.

    Attributes:
      id: registry key, e.g. ``"ineq-2.3"`` (printed) or ``"ineq-2.3/corrected"``.
      ref: where it is in the paper, e.g. ``"Inequality (2.3)"``.
      text: the statement as checked, in words and symbols.
      printed: True when checked exactly as printed.
      target: what the verdict is about, one of TARGETS.
      witness_kind: what a falsifying witness is, one of WITNESS_KINDS. An evaluate may
        return the quantity ``undecided`` = 1 on an instance it can neither confirm nor
        refute; the verdict is then "undecided" unless something falsifies it.
      claimed: True when resjax relies on it; its falsification fails ``resjax check``.
      specs: profile name -> hypothesis strategy of instance specs (plain dicts).
      build: (spec, batch size) -> instance dict whose arrays have a leading batch axis;
        every built instance lies in the statement's domain.
      evaluate: one instance -> dict with ``slack`` and other named quantities.
      batched: evaluate is pure JAX, so it is vmapped and jitted; else it runs per instance.
      domain: maps any raw instance into the statement's domain (differentiably, and the
        identity on it); the gradient attack optimises raw instances through it, and
        attacked instances are mapped by it before they are evaluated.
      attack_objective: name of the quantity the attack minimises (default ``slack``).
      adversarial: specs always tried first (hypothesis explicit examples).
      corrects: the printed statement's id that this corrected form replaces.
      note: one line for the report (interpretation, how it is checked).
      max_batch: caps the profile's instances per example for costly statements.
    """

    id: str
    ref: str
    text: str
    printed: bool
    claimed: bool
    specs: Callable[[str], Any]
    build: Callable[[dict, int], Instance]
    evaluate: Callable[[Instance], dict]
    batched: bool = True
    domain: Callable[[Instance], Instance] | None = None
    attack_objective: str | None = None
    adversarial: tuple[dict, ...] = ()
    corrects: str | None = None
    note: str = ""
    max_batch: int | None = None  # instances per example, when each one is costly
    target: str = "statement"
    witness_kind: str = "counterexample"

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"statement {self.id}: target {self.target!r} is not one of {TARGETS}.")
        if self.witness_kind not in WITNESS_KINDS:
            raise ValueError(f"statement {self.id}: witness_kind {self.witness_kind!r} is not one of {WITNESS_KINDS}.")

    @property
    def verdict_subject(self) -> str:
        """How the verdict is quoted: the target, and whose wording is checked: "printed"
        (the paper's), "corrected" (resjax's correction of a printed entry) or "added"
        (a statement resjax adds, such as a sharper bound or a lower bound)."""
        form = "printed" if self.printed else "corrected" if self.corrects else "added"
        return f"{form} {self.target}"

    def valid(self, instance: Instance) -> Instance:
        return self.domain(instance) if self.domain else instance


def relative_slack(lhs, rhs, xp=np):
    """(lhs − rhs)/(|lhs| + |rhs|), 0 when both vanish: the slack of lhs ≥ rhs."""
    den = xp.abs(lhs) + xp.abs(rhs)
    return xp.where(den > 0, (lhs - rhs) / xp.where(den > 0, den, 1.0), 0.0)
