"""The imagenet34 network trained for speed on one host with 8 GPUs: our recipe, UNTESTED.

Command:  TFDS_DATA_DIR=~/tensorflow_datasets resjax train --config imagenet34-fast --workdir runs/imagenet34-fast
Changes from imagenet34 (each carried over from what worked for CIFAR-10 here, fast.py
          and docs/section4.md, not measured on ImageNet): batch 1,024 (128 per GPU), 32
          epochs (40,036 steps) instead of about 140, cosine decay from 0.4 (the linear
          scaling of 0.1 at 256) after a 2-epoch warm-up, Nesterov momentum, label
          smoothing 0.1, gradient clipping at norm 1, the fixup initialisation (every
          block starts exactly at the identity) and per-channel convolution biases; still
          no normalisation layer.
Expected: unknown. It has not been run: no ImageNet and no 8-GPU host were available. The
          input pipeline's measured rate (benchmarks/input_pipeline.py, docs/data.md)
          says how many CPU cores the host needs to feed the GPUs.
"""

import dataclasses

from resjax.train.configs.imagenet34 import CONFIG as PAPER

CONFIG = dataclasses.replace(
    PAPER,
    model={**PAPER.model, "init_scheme": "fixup", "conv_bias": True},
    steps=40_036,
    batch_size=1_024,
    learning_rate=0.4,
    lr_schedule="cosine",
    warmup_steps=2_502,
    nesterov=True,
    label_smoothing=0.1,
    grad_clip=1.0,
    eval_every=5_000,
)
