"""The accelerator's bf16 matrix-multiply ceiling: the rate the step benchmark is a fraction of.

Times an n x n x n bfloat16 product (float32 accumulation, XLA's default) on random
data: the mean of --repeats products after 3 warm-ups, 2·n³ FLOP each. On an H200,
n = 8192 gave about 786 TFLOP/s (one run, ../shared/notes/stack-facts.md).

Run: python benchmarks/ceiling.py [--size 8192] [--repeats 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp


def measure(size: int, repeats: int) -> dict:
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.bfloat16)
    b = jax.random.normal(kb, (size, size), jnp.bfloat16)
    matmul = jax.jit(jnp.matmul)
    for _ in range(3):
        matmul(a, b).block_until_ready()
    t = time.perf_counter()
    for _ in range(repeats):
        out = matmul(a, b)
    out.block_until_ready()
    seconds = (time.perf_counter() - t) / repeats
    return {"size": size, "repeats": repeats, "seconds": seconds, "tflops": 2 * size**3 / seconds / 1e12,
            "device": jax.devices()[0].device_kind, "jax": jax.__version__}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--json", help="write the result as JSON to this file")
    args = parser.parse_args()
    if args.size < 1 or args.repeats < 1:
        parser.error("--size and --repeats must be at least 1.")
    r = measure(args.size, args.repeats)
    print(f"bf16 matmul {r['size']}^3 on {r['device']}: {r['tflops']:.1f} TFLOP/s ({r['seconds'] * 1e3:.2f} ms each)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
