"""How many instances of inequality (2.3) the checker evaluates per second.

Each instance (d = 8, ℓ = 8, float64): ∇f by jax.grad of the closed-form risk, the
excess risk, σ_min(Σ), and both sides of the corrected (2.3). Compared:
  batched   the checker's evaluator: one jit of vmap over the batch;
  loop      a per-instance Python loop calling the same evaluation with eager jax.grad;
  loop+jit  the same loop with the per-instance evaluation jitted (a stronger baseline).

Run: python benchmarks/gradient_bound.py [--batch 8192] [--loop 200]
"""

from __future__ import annotations

import argparse
import time

import jax

from resjax.checks import registry, runner

D, DEPTH = 8, 8


def timed(fn, repeats):
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8192)
    parser.add_argument("--loop", type=int, default=200, help="instances in the per-instance loops")
    args = parser.parse_args()
    statement = registry.get("ineq-2.3/corrected")
    spec = {"d": D, "depth": DEPTH, "tau": 0.5, "log_cond": 2.0, "log_scale": 0.0, "mode": "random", "seed": 0}
    with jax.enable_x64(True):
        batch = statement.build(spec, args.batch)
        evaluate = runner.evaluator(statement)
        t_batched = timed(lambda: evaluate(batch), 3)
        rows = [runner.row(batch, i) for i in range(args.loop)]
        one = lambda inst: statement.evaluate(inst)["slack"]
        t_loop = timed(lambda: [float(one(r)) for r in rows], 1)
        jitted = jax.jit(one)
        t_loop_jit = timed(lambda: [float(jitted(r)) for r in rows], 2)
    rate = args.batch / t_batched
    rate_loop, rate_loop_jit = args.loop / t_loop, args.loop / t_loop_jit
    print(f"device: {jax.devices()[0].platform}, jax {jax.__version__}, d={D}, depth={DEPTH}, float64")
    print(f"batched  (vmap+jit, batch {args.batch}): {rate:12,.0f} instances/s")
    print(f"loop     (eager jax.grad per instance): {rate_loop:12,.1f} instances/s   ratio {rate / rate_loop:10,.0f}x")
    print(f"loop+jit (jitted, one call per instance): {rate_loop_jit:10,.1f} instances/s   ratio {rate / rate_loop_jit:10,.0f}x")


if __name__ == "__main__":
    main()
