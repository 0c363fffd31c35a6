"""CIFAR-10 to 80% on a 2-core CPU without batch norm: 6.4 minutes on a middling day.

Issue 10 asks for 80% within 20 minutes, measured as the first evaluation at or above
80%. Progressive resizing makes the early steps cheap: 16-pixel images (downscaled) to
step 1,000 and 24-pixel ones to step 1,600 cost a third and two thirds of a full-size
step, and the first evaluation at or above 80% came about 30% sooner than with the same
recipe at full size (294-295 s against 415 s from the command's start, the same day,
docs/section4.md). Crops shifted by at most 1 pixel instead of the paper's 4
(crop_padding=1, since 2026-12-07) let this short run fit faster: 80% comes at step
1,800 instead of 2,000 with both seeds, 0.5-1.0 points above it there, and the run ends
1.2-1.5 points higher (flip-averaged). The time to 80% is still the machine's speed: 6 min 25 s on
2026-12-07 (about 610 full-size images/s), 8 min 21 s that night with CI's test suite
running on the same 2 cores, and, scaled from the slowest day measured
(2026-12-01, 342 images/s) to the slowest seen (250 images/s), about 16 minutes (an
estimate).

Command:  resjax train --config cpu --workdir runs/cpu --set data=../shared/data/cifar10-jpeg
Network:  a small member of the Section 4 family: identity shortcuts, the fixed random
          head, no normalisation of any kind; widths 16, 32, 64, two blocks per stage,
          the fixup initialisation (blocks start exactly at the identity, and leave it
          faster than under sigma = 1/(k^2 c)), and per-channel convolution biases (not in
          the paper; 56.0% against 50.2% after 500 steps without them, docs/section4.md).
Recipe:   SGD with Nesterov momentum, batch 256, 2,200 steps (11.3 epochs), cosine decay
          from 0.2 after 150 warm-up steps, gradient clipping at norm 1, label smoothing
          0.1, the paper's augmentation with shifts of at most 1 pixel (crop_padding=1:
          random crops of the 1-pixel zero-padded image; the paper pads by 4) and random
          flips, then the training images downscaled to 16 x 16
          until step 1,000 and to 24 x 24 until step 1,600 (full size after); flip
          averaging at test time, every 200 steps from step 1,600; float32 on 16 virtual
          CPU devices, which share one copy of the training set (peak memory 2.67 GB for
          the whole command on the CIFAR-10 JPEGs, 2026-12-07; 4.6 GB for 120 steps when
          each device held its own).
Expected: (2026-12-07, the README's install: JAX 0.10.2, Python 3.11; an Intel Xeon
          host with AVX-512, 607 full-size images/s in the step benchmark; the machine
          otherwise idle; docs/results/cpu_crop_padding.json)
          seed 0: 80.47% flip-averaged at step 1,800, 385 s from the command's start;
                  final 80.77% single-view, 81.67% flip-averaged; 570 s in all.
          seed 1: 80.97% at step 1,800, 377 s from the start; final 80.78% / 82.12%;
                  561 s in all.
          Both again on an AMD EPYC host (2026-12-07 night, 640 images/s, the README's
          install in a fresh .venv; docs/results/cpu_amd_epyc_2026-12-07.json): the same
          evaluations to four digits, 80% after 387 s and 388 s.
Before:   crop_padding=4, the paper's (the rows below; 80% at step 2,000, just above:
          80.22% at step 2,000 on 2026-12-07's host, seed 0).
          (2026-11-29, the README's install: JAX 0.10.2, Python 3.11; the machine
          otherwise idle; docs/results/cpu_progressive_resizing.json)
          seed 0: 80.53% flip-averaged at step 2,000, 289 s from the command's start;
                  final 79.47% single-view, 80.72% flip-averaged; 342 s in all.
          seed 1: 80.37% at step 2,000, 279 s from the start; final 80.09% / 80.59%;
                  330 s in all.
          seed 0 on a slow evening (the same day, 428 full-size images/s in the step
                  benchmark; likely another host's processor: slightly different figures):
                  80.64% at step 2,000, 699 s (11 min 39 s) from the start; final
                  80.05% / 80.74%; 810 s in all.
          seed 0 again at 60489d2 (2026-11-30 night, after the step's gradient norm
                  became one reduction; another slow evening, about 400 full-size
                  images/s): 80.46% at step 2,000, 794 s (13 min 14 s) from the start;
                  final 79.88% / 80.60%; 951 s in all.
          seed 0 again at 52d28b7 (2026-12-01, a slower day: 342 full-size images/s in
                  the step benchmark): the same evaluations; 80.46% at step 2,000, 878 s
                  (14 min 38 s) from the start; 1,053 s in all.
          seed 0 again at 2ffa8a8 (2026-12-07, 434 full-size images/s in the step
                  benchmark that morning): the same evaluations; 80.46% at step 2,000,
                  571 s (9 min 31 s) from the start; 681 s in all; peak memory 2.67 GB.
Earlier (the same recipe at full size, evaluated every 200 steps and checkpointed every
          550): 80.91% and 80.82% (seeds 0, 1) in 28-29 minutes on a slow day (335
          images/s, JAX 0.12, 2026-11-27); on 2026-11-29 (about 1,060 images/s) 80% at
          step 1,800 after 7 min 21-25 s, final 81.23% and 81.47% (80.50%, 80.36%
          single-view) in about 9 minutes (docs/results/cpu_*, jpeg_quality_cpu.json).
Not adopted (2026-11-29, docs/section4.md): batch 128 (no more learnt per image), a
          parameter average (ema_decay=0.99: +4 points mid-run, but 80% still first at
          step 1,800), batch norm with the standard initialisation (82.65% and 82.69% at
          the end with seeds 0 and 1, +1.2 to 1.4 points, but its step is 1.55 times
          slower here: 80% after 12.7 and 11.4 minutes), progressive resizing by
          random windows instead of downscaling (progressive_mode=crop: 78.64%), and
          weight standardisation (model.weight_standardization=true, 2026-11-30: 79.41% /
          80.51% against 80.05% / 80.74% on the same kind of host, seed 0; it helps
          where a network overfits, which this recipe does not); on 2026-12-07 (with
          crop_padding=4, seed 0) a parameter average (ema_decay=0.99: 80.11% at step
          2,000 against 80.22% for its raw parameters), no label smoothing (79.79%) and
          crop_padding=2 (80.95%, 79.88% at step 1,800; seed 1: 80.03% at 1,800); with
          crop_padding=0 (flips only) it trained as with 1, within 0.3 points at every
          evaluation (seed 0); with crop_padding=1, label smoothing 0.2 instead of 0.1
          (79.91% at step 1,800, 80% first at step 2,000).
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig(
    model={"stem": (3, 16, 1), "widths": (16, 32, 64), "blocks": (2, 2, 2), "strides": (1, 2, 2),
           "init_scheme": "fixup", "conv_bias": True},
    # cheaper early steps: 16-pixel images (downscaled) to step 1,000, 24 to 1,600, then 32
    progressive_resizing=((1_000, 16), (1_600, 24)),
    crop_padding=1,  # shifts of at most 1 pixel: the short run fits faster than with the paper's 4
    steps=2_200,
    batch_size=256,
    lr_schedule="cosine",
    learning_rate=0.2,
    warmup_steps=150,
    grad_clip=1.0,
    nesterov=True,
    weight_decay=5e-4,
    label_smoothing=0.1,
    cpu_devices=16,
    log_every=50,
    eval_flip=True,
    eval_every=200,
    eval_from=1_600,
    checkpoint_every=1_100,
)
