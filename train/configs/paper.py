"""Section 4's CIFAR-10 recipe: the Table 1 network, no batch norm, fixed random head.

Command:  resjax train --config paper --workdir runs/paper
Recipe:   SGD with momentum 0.9, batch 128, weight decay 1e-4 on convolution kernels,
          learning rate 0.05 divided by 10 at 30k and 50k steps, 60k steps, random crops
          from 4-pixel padding and horizontal flips; bf16 compute, float32 parameters on GPU.
Expected: the paper reports 6.38% test error (93.62% accuracy), peaking near 50k steps.
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig()
