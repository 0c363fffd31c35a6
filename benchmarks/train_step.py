"""Throughput of the training step: images/s and TFLOP/s, batch 128 and 512, bf16 and float32.

The Table 1 network (a scaled-down one on CPU unless --full), the same jitted step as
`resjax train` (on-device gather, augmentation, SGD with momentum), over all devices.
FLOPs: 3 x the forward convolutions' multiply-adds x 2 (forward, and the two
backward products), counted from the architecture: 11.9 GFLOP per image for Table 1.

Run: python benchmarks/train_step.py [--full | --config cpu] [--steps 50] [--batches 128 512]
                                     [--dtypes bfloat16 float32] [--cpu-devices 16]
--config NAME takes the network of a training configuration (train/configs/NAME.py) and,
on a host without an accelerator, its cpu_devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from resjax import models
from resjax.train import config as config_mod
from resjax.train import loop, step
from resjax.train.config import TrainConfig

SMALL = {"stem": (3, 16, 1), "widths": (32, 64, 128), "blocks": (2, 2, 2), "strides": (1, 2, 2)}


def train_flops_per_image(model: models.ResNet, size: int = 32) -> float:
    """3 x Σ_conv 2·k²·c_in·c_out·H_out·W_out (the head and the elementwise work are negligible)."""
    k, c, s = model.stem
    h, total, c_in = size // s, 2 * k * k * 3 * c * (size // s) ** 2, c
    for width, count, stride in zip(model.widths, model.blocks, model.strides):
        for i in range(count):
            h //= stride if i == 0 else 1
            total += 2 * 9 * (c_in if i == 0 else width) * width * h * h + 2 * 9 * width * width * h * h
        c_in = width
    return 3.0 * total


def measure(model_kwargs: dict, batch: int, dtype: str, steps: int) -> dict:
    cfg = dataclasses.replace(TrainConfig(), model=model_kwargs, batch_size=batch, compute_dtype=dtype)
    model = models.ResNet(num_classes=10, dtype=jnp.dtype(dtype), **model_kwargs)
    mesh = loop.make_mesh()
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    shard = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, (4096, 32, 32, 3), dtype=np.uint8), rep)
    labels = jax.device_put(rng.integers(0, 10, 4096).astype(np.int32), rep)
    tx, train_step, _ = step.make_steps(model, cfg, jnp.full(3, 0.5), jnp.full(3, 0.25), jnp.dtype(dtype))
    params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.dtype(dtype)))["params"]
    state = jax.device_put({"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
                            "batch_stats": {}}, rep)
    fn = jax.jit(train_step, in_shardings=(rep, rep, rep, shard, rep), out_shardings=(rep, rep), donate_argnums=(0,))
    key = jax.random.key(1)
    # at least the 3 warm-up steps' batches
    idx = [jax.device_put(rng.integers(0, 4096, batch).astype(np.int32), shard) for _ in range(max(steps, 3))]
    flops = train_flops_per_image(model) * batch
    for i in range(3):  # warm up
        state, m = fn(state, images, labels, idx[i], key)
    jax.block_until_ready(m)
    t = time.perf_counter()
    for i in range(steps):
        state, m = fn(state, images, labels, idx[i], key)
    jax.block_until_ready(m)
    seconds = (time.perf_counter() - t) / steps
    return {"batch": batch, "dtype": dtype, "images_per_s": batch / seconds, "tflops": flops / seconds / 1e12,
            "gflop_per_image": flops / batch / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--full", action="store_true", help="the Table 1 network even on CPU")
    which.add_argument("--config", help="the network (and cpu_devices) of this training configuration")
    parser.add_argument("--cpu-devices", type=int, help="virtual CPU devices (default: the config's, else 1)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: expected at least 1 timed step.")
    try:
        config = config_mod.load(args.config) if args.config else None
    except ValueError as e:
        parser.error(str(e))
    loop.split_cpu(args.cpu_devices or (config.cpu_devices if config else None))
    cpu = jax.default_backend() == "cpu"
    if config:
        model_kwargs, name = config.model, f"the {args.config} config's network {config.model}"
    elif args.full or not cpu:
        model_kwargs, name = {}, "Table 1"
    else:
        model_kwargs, name = SMALL, f"scaled-down Table 1 {SMALL}"
    dtypes = [d for d in args.dtypes if not (cpu and d == "bfloat16")] if not args.full else args.dtypes
    print(f"{name} on {jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}")
    if cpu and "bfloat16" in args.dtypes and "bfloat16" not in dtypes:
        print("(bfloat16 skipped on CPU: its convolutions are emulated and very slow)")
    for batch in args.batches:
        for dtype in dtypes:
            r = measure(model_kwargs, batch, dtype, args.steps)
            print(f"batch {r['batch']:4d} {r['dtype']:>8}: {r['images_per_s']:10,.0f} images/s  "
                  f"{r['tflops']:7.2f} TFLOP/s  ({r['gflop_per_image']:.2f} GFLOP/image/step)", flush=True)


if __name__ == "__main__":
    main()
