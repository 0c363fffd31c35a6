"""How far from optimal is Theorem 2.1's factorisation? factorize's |||A*||| over the lower bound.

Draws R from the checker's generator of Theorem 2.1 instances (random, π and near-π
rotations, no rotation; condition numbers up to e^8; det R > 0; depth ⌈3γ⌉ plus 0-64
extra layers, or a fixed depth 1-9 for the shallow group), factorises each with both
constructions of `linear.factorize` ("split": rotation and stretch in separate layers;
"interleaved": both in every layer; "best" is what factorize returns) and prints, per
depth group, the worst and median ratio |||A*||| / factorization_lower_bound(R, ℓ) and
how much "best" gains over "split".

Run: python benchmarks/factorize_ratio.py [--instances 400] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from resjax import linear
from resjax.checks import section2

KINDS = ("random", "pi", "near_pi", "none")


def draw(rng: np.random.Generator, shallow: bool) -> dict:
    """A spec of the checker's Theorem 2.1 instances (section2.factor_instance)."""
    return {"d": int(rng.choice([1, 2, 3, 4, 8, 16])), "extra_depth": int(rng.integers(0, 65)),
            "log_cond": float(rng.uniform(0, 8)), "log_scale": float(rng.uniform(-4, 4)),
            "angles": str(rng.choice(KINDS)), "det_sign": 1, "psd": False, "min_depth": 1,
            "depth": int(rng.integers(1, 10)) if shallow else None, "seed": int(rng.integers(0, 2**31 - 1))}


def max_norm(A: np.ndarray) -> float:
    return float(np.max(np.linalg.norm(A, ord=2, axis=(1, 2))))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=400, help="per depth group")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances must be at least 1.")
    rng = np.random.default_rng(args.seed)
    print(f"{'group':<18} {'construction':<12} {'worst ratio':>11} {'median':>7}   best over split")
    for name, shallow in (("depth 1-9", True), ("depth ⌈3γ⌉+extra", False)):
        ratios = {c: [] for c in ("split", "interleaved", "best")}
        for _ in range(args.instances):
            spec = draw(rng, shallow)
            inst = section2.factor_instance(np.random.default_rng(spec["seed"]), spec)
            R, depth = inst["R"], int(inst["depth"])
            bound = linear.factorization_lower_bound(R, depth)
            if bound <= 0:
                continue
            for c in ratios:
                ratios[c].append(max_norm(linear.factorize(R, depth, construction=c)) / bound)
        gain = np.array(ratios["split"]) / np.array(ratios["best"])
        for c, r in ratios.items():
            extra = (f"   median x{np.median(gain):.3f}, max x{gain.max():.3f}, better on {np.mean(gain > 1 + 1e-9):.0%}"
                     if c == "best" else "")
            print(f"{name:<18} {c:<12} {max(r):11.3f} {np.median(r):7.3f}{extra}")


if __name__ == "__main__":
    main()
