"""A tiny network for tests and smoke runs (seconds on CPU).

Command:  resjax train --config tiny --workdir runs/tiny --set data=PATH
Expected: it runs and checkpoints; accuracy is not the point.
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig(
    model={"stem": (3, 4, 1), "widths": (8, 16), "blocks": (1, 1), "strides": (1, 2)},
    steps=20,
    batch_size=16,
    learning_rate=0.02,
    lr_boundaries=(),
    log_every=5,
    eval_every=10,
    checkpoint_every=5,
)
