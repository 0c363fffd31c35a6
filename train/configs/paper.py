"""Section 4's CIFAR-10 recipe: the Table 1 network, no batch norm, fixed random head.

Command:  resjax train --config paper --workdir runs/paper
Recipe:   SGD with momentum 0.9, batch 128, weight decay 1e-4 on convolution kernels,
          learning rate 0.05 divided by 10 at 30k and 50k steps, 60k steps, random crops
          from 4-pixel padding and horizontal flips; bf16 compute, float32 parameters on GPU.
Expected: the paper reports 6.38% test error (93.62% accuracy), peaking near 50k steps.
Measured: 89.22% test accuracy (single view) in 371 s of training on one H200 (JAX
          0.11.2, seed 0, the CIFAR-10 JPEGs; docs/results/paper_h200_*): no divergence,
          but overfit (training loss 4e-4, test loss 0.78). Seed 1 (2026-11-30,
          docs/results/paper_h200_seed1_*): 89.18% single-view, 90.32% flip-averaged,
          412.4 s for the whole command, no divergence (largest gradient norm 3.65), test
          loss 0.79. A run with bfloat16 logits (model.float32_head=false) is
          benchmarks/gpu.sh part g.
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig()
