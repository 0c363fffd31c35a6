"""Stability margin of Section 4's networks without batch norm, per detail the paper leaves open.

A plain-JAX run of the paper's recipe on an H200 was reported to diverge to NaN near step
25k, at the constant learning rate 0.05 (issue 4); resjax's run of the same recipe did not
(docs/section4.md). Late divergence at a constant rate means the run sat close to the
edge of stability; this script measures how close each variant sits. A scaled-down
Table 1 network trains with the paper's optimiser (SGD, momentum 0.9, weight decay 1e-4
on kernels, batch 128, crops and flips) at constant learning rates, through the same
`resjax train` code; each cell is the step at which the loss became non-finite, or the
mean training loss of the last 50 steps. A variant that diverges at a rate where the
paper's own variant trains has less margin.

Run: python benchmarks/stability.py [--data ../shared/data/cifar10-jpeg] [--steps 100]
     [--rates 0.1 0.4 1.6]          (about 10 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile

SMALL = {"stem": (3, 16, 1), "widths": (16, 32, 64), "blocks": (3, 3, 3), "strides": (1, 2, 2)}
VARIANTS = {  # name -> (model fields, config fields)
    "paper: sigma=1/(k^2 c), fixed head N(0,1/c)": ({}, {}),
    "init read as variance: sigma^2=1/(k^2 c)": ({"init_scheme": "standard"}, {}),
    "trained head instead of the fixed one": ({"head": "trained"}, {}),
    "fixup init (C_2 = 0, C_1 He/sqrt(L))": ({"init_scheme": "fixup"}, {}),
    "paper + gradient clipping at norm 1": ({}, {"grad_clip": 1.0}),
}


def one_run(cfg, train_set, test_set) -> str:
    from resjax.train import loop

    with tempfile.TemporaryDirectory() as workdir:
        try:
            loop.Trainer(cfg, workdir, train_set, test_set, progress=False).run()
        except loop.NonFiniteLoss:
            rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
            return f"NaN by step {cfg.log_every * (len(rows) + 1)}"
        rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl")) if '"loss"' in line]
    return f"loss {sum(r['loss'] for r in rows[-5:]) / 5:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/cifar10-jpeg")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.4, 1.6])
    parser.add_argument("--devices", type=int, default=16, help="virtual CPU devices (ignored on GPU)")
    args = parser.parse_args()
    import jax

    from resjax.train import backend, loop
    from resjax.train.config import TrainConfig

    backend.split_cpu(args.devices)

    base = TrainConfig(data=args.data, steps=args.steps, lr_boundaries=(), log_every=10,
                       eval_every=10**9, checkpoint_every=10**9)
    train_set, test_set = loop.load_splits(base)
    test_set = dataclasses.replace(test_set, images=test_set.images[:1000], labels=test_set.labels[:1000])
    print(f"{SMALL}, batch 128, {args.steps} steps at constant rate, jax {jax.__version__} on "
          f"{jax.device_count()} {jax.default_backend()} devices")
    print(f"{'variant':46s}" + "".join(f"{'lr ' + format(r, 'g'):>18s}" for r in args.rates), flush=True)
    for name, (model, fields) in VARIANTS.items():
        cells = [one_run(dataclasses.replace(base, model={**SMALL, **model}, learning_rate=lr, **fields),
                         train_set, test_set) for lr in args.rates]
        print(f"{name:46s}" + "".join(f"{c:>18s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
