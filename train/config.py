"""Training configuration: one frozen dataclass; files in ``configs/`` hold named instances.

Any field can be overridden from the command line: ``--set steps=1000 batch_size=256``;
``model.NAME=VALUE`` changes one field of the network and keeps the others.
"""

from __future__ import annotations

import dataclasses
import importlib
import json


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # model (resjax.models.ResNet fields; empty means Table 1)
    model: dict = dataclasses.field(default_factory=dict)
    num_classes: int = 10
    # data: an image folder (directory or .tar.gz per split, or a directory holding
    # train.tar.gz and test.tar.gz), or "digits" (the embedded default)
    data: str = "../shared/data/cifar10-jpeg"
    train_split: str = "train"
    test_split: str = "test"
    augment: bool = True  # random crops from 4-pixel padding and horizontal flips, on device
    eval_flip: bool = False  # test accuracy from the average logits of each image and its mirror image
    # optimisation (Section 4's recipe by default)
    steps: int = 60_000
    batch_size: int = 128
    learning_rate: float = 0.05
    lr_schedule: str = "piecewise"  # "piecewise" (divide by 1/lr_decay at lr_boundaries) or "cosine" (to 0 at steps)
    lr_boundaries: tuple[int, ...] = (30_000, 50_000)
    lr_decay: float = 0.1
    warmup_steps: int = 0
    momentum: float = 0.9
    nesterov: bool = False
    label_smoothing: float = 0.0
    weight_decay: float = 1e-4  # on convolution kernels only
    grad_clip: float | None = None
    compute_dtype: str = "auto"  # "auto": bfloat16 on GPU/TPU, float32 on CPU
    # on a host without an accelerator, split the CPU into this many virtual devices: XLA's CPU
    # convolutions use two cores far better as 16 small data-parallel shards than as one big batch
    cpu_devices: int | None = None
    # bookkeeping
    seed: int = 0
    log_every: int = 100
    eval_every: int = 5_000
    checkpoint_every: int = 1_000
    keep_checkpoints: int = 3

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Applies ``key=value`` strings (``model.name=value`` for one network field); values
        are JSON (numbers, lists, objects) or plain strings."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {"model": dict(self.model)}
        for item in assignments:
            key, sep, raw = item.partition("=")
            head, dot, sub = key.partition(".")
            if not sep or head not in fields or (dot and (head != "model" or not sub)):
                raise ValueError(
                    f"cannot apply {item!r}: expected key=value with key one of {', '.join(fields)}, "
                    "or model.NAME for one field of the network."
                )
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            if isinstance(value, list):
                value = tuple(value)
            if key == "model" and not isinstance(value, dict):
                raise ValueError(f"cannot apply {item!r}: model takes a JSON object, e.g. model='{{\"widths\": [16, 32]}}'.")
            if dot:
                changes["model"][sub] = value
            else:
                changes[key] = value
        return dataclasses.replace(self, **changes)


def load(name: str) -> TrainConfig:
    """The CONFIG of ``resjax.train.configs.<name>``."""
    try:
        module = importlib.import_module(f"resjax.train.configs.{name}")
    except ModuleNotFoundError:
        raise ValueError(f"no configuration {name!r}; available: paper, fast, cpu, digits, tiny.") from None
    return module.CONFIG
