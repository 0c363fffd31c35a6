"""Section 4's ImageNet recipe: the all-convolutional ResNet-34 variant, no batch norm.

Command:  TFDS_DATA_DIR=~/tensorflow_datasets resjax train --config imagenet34 --workdir runs/imagenet34
          (one host, all its GPUs; ImageNet prepared for tensorflow-datasets, docs/data.md)
Several hosts (N of them; run on host I = 0 .. N-1, the same workdir on shared storage):
          resjax train --config imagenet34 --workdir /shared/runs/imagenet34 --coordinator HOST0:12355 \\
              --num-processes N --process-id I --set batch_size=$((256 * N))
          Each process reads only its part of every batch (resjax.train.stream) and the
          global batch is assembled on the mesh; checkpoints, with the input pipeline's
          position, are written together, and a resumed run sees the same batches.
Network:  resjax.models.imagenet34: a 7x7 stride-2 stem with 64 channels, no max-pool,
          stages of 3, 4, 6, 3 residual blocks of 64, 128, 256, 512 channels, the fixed
          random head, no normalisation; Section 4's initialisation. 21.1M trainable
          parameters; the paper reports 35.7M, which the text does not let us derive.
Recipe:   the paper's: SGD with momentum 0.9, learning rate 0.1 multiplied by 0.94 every
          two epochs (10,009 steps of 256 images of ImageNet's 1,281,167), batch 256 per
          machine, 700,000 steps. Not stated in the paper, our choices: weight decay 1e-4
          on convolution kernels (as for CIFAR), Inception-style random-resized crops to
          224 and flips, evaluation on the centre 224 crop of the image resized to 256,
          bf16 compute. The paper trained asynchronously on 6 machines x 8 K40 GPUs with
          batch 256 per machine; this is synchronous data-parallel SGD, so with N hosts
          the global batch is 256·N: the closest synchronous reading.
Expected: the paper reports 35.29% top-1 and 14.17% top-5 error on the validation set
          (64.71% / 85.83% accuracy) after 700k steps, about a week; the model underfit.
          Not run here (no ImageNet, no GPU cluster): untested at full scale. A reduced
          copy (widths 4-16, 64-pixel crops, 2,000 generated images) trains through the
          same streaming path on 4 virtual CPU devices in tests/stream_test.py.
"""

from resjax.train.config import TrainConfig

CONFIG = TrainConfig(
    model={"stem": (7, 64, 2), "widths": (64, 128, 256, 512), "blocks": (3, 4, 6, 3), "strides": (2, 2, 2, 2)},
    num_classes=1000,
    data="tfds:imagenet2012",
    train_split="train",
    test_split="validation",
    augmentation="imagenet",
    image_size=224,
    input_pipeline="stream",
    steps=700_000,
    batch_size=256,
    learning_rate=0.1,
    lr_schedule="exponential",
    lr_decay=0.94,
    lr_decay_every=10_009,
    momentum=0.9,
    weight_decay=1e-4,
    log_every=100,
    eval_every=10_000,
    checkpoint_every=5_000,
)
