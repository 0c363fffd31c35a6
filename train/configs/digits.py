"""The embedded default: a small Table 1-style network on scikit-learn's 8x8 digits.

Command:  resjax train --config digits
Data:     1,500 training and 297 test images that ship with scikit-learn (no download).
Expected: 98.3% test accuracy in about 40 s on a 2-core CPU (26 s of training, 1,470 images/s).
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig(
    model={"stem": (3, 16, 1), "widths": (32, 64), "blocks": (2, 2), "strides": (1, 2)},
    data="digits",
    augment=False,  # 4-pixel crops would cut half of an 8x8 digit
    steps=600,
    batch_size=64,
    learning_rate=0.05,
    lr_boundaries=(400,),
    log_every=50,
    eval_every=200,
    checkpoint_every=200,
)
