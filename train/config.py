"""Training configuration: one frozen, validated dataclass; files in ``configs/`` hold named instances.

Any field can be overridden from the command line: ``--set steps=1000 batch_size=256``;
``model.NAME=VALUE`` changes one field of the network and keeps the others.

Every configuration is validated completely when it is built, loaded or overridden,
before any device work: types (strict: ``steps=1.5``, ``augment=1`` or ``seed=true``
are refused, not rounded or cast), ranges, enumerations (with the nearest allowed value
for a typo), cross-field rules, and the network options (by ``resjax.models``). The
schema is a pydantic dataclass: the rules sit next to the fields they govern, every
violation is reported at once with its field, value and expected type, and
``dataclasses.replace`` re-validates. Rules that need the data or the devices (the
class count, the batch split) are checked by the trainer before it compiles.
"""

import dataclasses
import importlib
import json
import math
from typing import Annotated, Any, Literal

import pydantic
from pydantic import Field
from pydantic.dataclasses import dataclass

from resjax import models
from resjax import validation as _v

from . import configs

LR_SCHEDULES = ("piecewise", "cosine", "exponential")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
PIPELINES = ("auto", "device", "stream")
AUGMENTATIONS = ("cifar", "imagenet")
FLIPS = ("random", "alternating")
STEM_INITS = ("random", "whitening")
SHRINKS = ("resize", "crop")
STATE_LAYOUTS = ("default", "auto", "ohwi")
CHOICES = {"lr_schedule": LR_SCHEDULES, "compute_dtype": COMPUTE_DTYPES, "input_pipeline": PIPELINES,
           "augmentation": AUGMENTATIONS, "flip": FLIPS, "stem_init": STEM_INITS, "progressive_mode": SHRINKS,
           "state_layout": STATE_LAYOUTS}
# Fields that never change the trained parameters (what is logged and saved, how buffers
# are reused): a resumed run may change them freely (resjax.train.workdir).
BOOKKEEPING = ("log_every", "eval_every", "eval_from", "checkpoint_every", "keep_checkpoints", "loader_workers",
               "donate_state")

Positive = Annotated[int, Field(ge=1, lt=2**31)]  # step counters are int32 on the device
Rate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)]
XlaFlag = Annotated[str, Field(pattern=r"^--xla_[a-z0-9_]+(=\S*)?$")]  # one flag, as XLA_FLAGS spells it
Name = Annotated[str, Field(min_length=1)]


class ConfigError(ValueError):
    """A configuration that cannot be used, with every problem in one line."""


@dataclass(frozen=True, config=pydantic.ConfigDict(extra="forbid", strict=True))
class TrainConfig:
    # model (resjax.models.ResNet options; empty means Table 1)
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    # "random": the network's own initialisation of the stem; "whitening": its filters along
    # the principal directions of the training images' patches, at the same output scale
    # (resjax.train.whitening; the training set in memory: the device pipeline)
    stem_init: Literal[STEM_INITS] = "random"
    num_classes: Positive = 10
    # data: an image folder (directory or .tar.gz per split, or a directory holding
    # train.tar.gz and test.tar.gz), "tfds:NAME", or "digits" (the embedded default)
    data: Name = "../shared/data/cifar10-jpeg"
    train_split: Name = "train"
    test_split: Name = "test"
    augment: bool = True  # random crops and horizontal flips of the training images (see augmentation)
    # "cifar": crops from crop_padding-pixel zero padding (Section 4: 4); "imagenet":
    # random-resized crops to image_size for training, resize and centre crop for
    # evaluation (streaming only)
    augmentation: Literal[AUGMENTATIONS] = "cifar"
    # augmentation="cifar": each training image is zero-padded by this many pixels on every
    # side and cropped back to its size at a random offset (shifts of up to this many
    # pixels); 0: no crops, flips only
    crop_padding: Annotated[int, Field(ge=0, le=64)] = 4
    image_size: Positive = 224  # the side of augmentation="imagenet"'s crops
    # with augment: "random" mirrors each training image with probability 1/2 at every
    # step; "alternating" mirrors it in every other epoch, from a random first orientation
    # (Jordan, 2024), so that it is seen both ways in every two epochs (resjax.train.order)
    flip: Literal[FLIPS] = "random"
    # with augment: in every training image a cutout x cutout square around a random centre
    # is set to the mean pixel (DeVries & Taylor, 2017); 0: none
    cutout: Annotated[int, Field(ge=0, lt=2**31)] = 0
    # progressive resizing: ((until_step, side), ...), until_step increasing: training images
    # of side x side pixels before until_step (and from the previous one on), made from the
    # augmented images as progressive_mode says; full size from the last until_step on.
    # Cheaper early steps (a step's cost goes with the pixels); evaluation is at full size.
    # E.g. --set 'progressive_resizing=[[1000, 16], [1600, 24]]'
    progressive_resizing: Annotated[tuple[Annotated[tuple[Positive, Positive], Field(strict=False)], ...],
                                    Field(strict=False)] = ()
    # "resize": the whole image downscaled (antialiased); "crop": a random window of it
    progressive_mode: Literal[SHRINKS] = "resize"
    # "device": the training set on the device as uint8, augmented there; "stream": read,
    # decoded and augmented on the host by worker processes (resjax.train.stream); "auto":
    # stream when augmentation="imagenet" or the decoded training set exceeds 4 GiB
    input_pipeline: Literal[PIPELINES] = "auto"
    # processes per host decoding images (in memory: once; streaming: every batch); None: one per core, 0: none
    loader_workers: Annotated[int, Field(ge=0, le=1024)] | None = None
    skip_corrupt: bool = False  # streaming: replace an image that does not decode by the next one, and count it
    eval_flip: bool = False  # test accuracy from the average logits of each image and its mirror image
    # optimisation (Section 4's recipe by default)
    steps: Positive = 60_000
    batch_size: Positive = 128
    learning_rate: Rate = 0.05
    # piecewise: multiply by lr_decay at lr_boundaries; cosine: to 0 at steps; exponential:
    # multiply by lr_decay every lr_decay_every steps
    lr_schedule: Literal[LR_SCHEDULES] = "piecewise"
    lr_boundaries: Annotated[tuple[Positive, ...], Field(strict=False)] = (30_000, 50_000)
    lr_decay: Rate = 0.1
    lr_decay_every: Positive = 10_000
    warmup_steps: Annotated[int, Field(ge=0, lt=2**31)] = 0
    momentum: Fraction = 0.9
    nesterov: bool = False
    label_smoothing: Fraction = 0.0
    weight_decay: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1e-4  # on convolution kernels only
    grad_clip: Rate | None = None
    # mixup (Zhang et al., 2018): train on x = λx_i + (1-λ)x_j with targets mixed alike,
    # λ ~ Beta(mixup, mixup) per batch, j a random pairing; 0: off
    mixup: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    # evaluate an exponential moving average of the parameters, updated every step with
    # this decay (the raw parameters' accuracy is reported beside it, as *_no_ema); 0: off
    ema_decay: Fraction = 0.0
    compute_dtype: Literal[COMPUTE_DTYPES] = "auto"  # "auto": bfloat16 on GPU/TPU, float32 on CPU
    # on a host without an accelerator, split the CPU into this many virtual devices: XLA's CPU
    # convolutions use two cores far better as 16 small data-parallel shards than as one big batch
    cpu_devices: Positive | None = None
    # training steps per jitted call (a lax.scan over on-device batch indices): fewer
    # dispatches; must divide steps and the logging, evaluation and checkpoint intervals
    steps_per_call: Positive = 1
    # each training call updates the state in place (jit's donation); false keeps the old
    # state until the call returns (twice its memory) and spares the copies XLA adds on a
    # GPU after writing each transposed parameter update to a fresh buffer (docs/section4.md)
    donate_state: bool = True
    # where the state (parameters, optimiser state, average) lies in device memory: "default",
    # row-major, as jax.device_put places it; "auto", as XLA chooses for the first training
    # step it compiles (every other step is compiled for that choice). On a GPU we expect
    # the convolution kernels in cuDNN's order, so that their updates need neither
    # transposes nor copies (docs/section4.md); XLA's CPU backend keeps them row-major.
    # "ohwi" lays them out so without asking XLA: each kernel (H, W, I, O) output channels
    # major, (O, H, W, I) in memory, and the rest row-major (on a CPU it costs transposes).
    # The same training but for the order of floating-point sums.
    state_layout: Literal[STATE_LAYOUTS] = "default"
    # XLA flags for this run (e.g. ["--xla_gpu_autotune_level=1"]): `resjax train` appends
    # them to the XLA_FLAGS environment variable before JAX starts its backend, so that
    # where both set a flag these win. XLA itself refuses a flag it does not know.
    xla_flags: Annotated[tuple[XlaFlag, ...], Field(strict=False)] = ()
    # bookkeeping
    seed: Annotated[int, Field(ge=0, lt=2**31)] = 0
    log_every: Positive = 100
    eval_every: Positive = 5_000
    # no evaluation before this step but the last step's (an early one costs time and says little)
    eval_from: Annotated[int, Field(ge=0, lt=2**31)] = 0
    checkpoint_every: Positive = 1_000
    keep_checkpoints: Positive = 3

    def __post_init__(self):
        """The rules that join fields (run after each field is valid on its own)."""
        if any(b >= a for a, b in zip(self.lr_boundaries[1:], self.lr_boundaries)):
            raise ValueError(f"lr_boundaries={list(self.lr_boundaries)} must be strictly increasing")
        if self.warmup_steps >= self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be below steps={self.steps}")
        intervals = {k: getattr(self, k) for k in ("steps", "log_every", "eval_every", "checkpoint_every")}
        bad = {k: v for k, v in intervals.items() if v % self.steps_per_call}
        if bad:
            common = math.gcd(*intervals.values())
            divisors = [k for k in range(1, min(common, 64) + 1) if common % k == 0]
            raise ValueError(
                f"steps_per_call={self.steps_per_call} must divide "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f" (a call never crosses a log, evaluation or checkpoint); use one of {divisors} or change them"
            )
        self._check_progressive_resizing()
        if self.augmentation == "imagenet" and self.input_pipeline == "device":
            raise ValueError("augmentation='imagenet' crops images of any size on the host: it needs "
                             "input_pipeline='stream' (or 'auto'), not 'device'")
        try:
            models.check_names(self.model)
            models.ResNet(num_classes=self.num_classes, **self.model)  # runs resjax.models.check_options
        except (TypeError, ValueError) as e:
            raise ValueError(f"model: {str(e).rstrip('.')}") from None
        if self.stem_init == "whitening" and self.model.get("weight_standardization"):
            raise ValueError("stem_init='whitening' sets the stem's filters to the data's whitening transform, whose "
                             "scales model.weight_standardization=true would standardise away; use one of them")

    def _check_progressive_resizing(self) -> None:
        until = [u for u, _ in self.progressive_resizing]
        if any(b <= a for a, b in zip(until, until[1:])) or (until and until[-1] >= self.steps):
            raise ValueError(f"progressive_resizing's steps {until} must be strictly increasing and below "
                             f"steps={self.steps} (with fewer steps, scale them too, or set progressive_resizing=[] "
                             "to train at full size throughout)")
        off = [u for u in until if u % self.steps_per_call]
        if off:
            raise ValueError(f"progressive_resizing's steps {off} are not multiples of steps_per_call="
                             f"{self.steps_per_call}: a call trains at one size")

    def side_at(self, step: int) -> int | None:
        """The side of the training images at ``step`` (progressive_resizing); None: full size."""
        return next((side for until, side in self.progressive_resizing if step < until), None)

    def sides(self) -> list[int | None]:
        """Every side the training images take, in order (None: full size)."""
        return [side for _, side in self.progressive_resizing] + [None]

    def override(self, assignments: list[str]) -> "TrainConfig":
        """Applies ``key=value`` strings (``model.name=value`` for one network field).

        Values of text fields (data, splits, enumerations) are taken as written; others
        are JSON (numbers, true/false, null, lists, objects), else the plain string, which
        the schema then refuses with the field's expected type. Raises ConfigError.
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        changes = {"model": dict(self.model)}
        for item in assignments:
            key, sep, raw = item.partition("=")
            head, dot, sub = key.partition(".")
            if not sep or (dot and (head != "model" or not sub)):
                raise ConfigError(f"cannot apply {item!r}: expected KEY=VALUE, or model.NAME=VALUE for one network option.")
            if head not in fields:
                raise ConfigError(f"cannot apply {item!r}: unknown field {head!r}{_v.suggest(head, fields)}; "
                                  f"the fields are {', '.join(fields)}.")
            value = raw if not dot and isinstance(fields[head].default, str) else _parse(raw)
            if key == "model" and not isinstance(value, dict):
                raise ConfigError(f"cannot apply {item!r}: model takes a JSON object, e.g. model='{{\"widths\": [16, 32]}}'.")
            if dot:
                changes["model"][sub] = value
            else:
                changes[key] = value
        return build(dataclasses.replace, self, **changes)


def _parse(raw: str):
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return tuple(value) if isinstance(value, list) else value


def describe(error: pydantic.ValidationError) -> str:
    """Every problem of a failed validation, one clause each: field, value, what was expected."""
    problems = []
    for e in error.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        if e["type"] == "unexpected_keyword_argument":
            names = [f.name for f in dataclasses.fields(TrainConfig)]
            problems.append(f"unknown field {loc!r}{_v.suggest(loc, names)}")
        elif e["type"] == "value_error":
            problems.append(str(e["ctx"]["error"]).rstrip("."))
        elif e["type"] == "literal_error":
            problems.append(f"{loc}={e['input']!r} is not one of {e['ctx']['expected']}"
                            f"{_v.suggest(e['input'], CHOICES.get(loc, ()))}")
        else:
            problems.append(f"{loc}={e['input']!r}: {e['msg'][0].lower()}{e['msg'][1:]}")
    return "; ".join(problems) + "."


def build(factory, *args, **kwargs) -> TrainConfig:
    """factory(*args, **kwargs) (TrainConfig or dataclasses.replace), with a ConfigError
    naming every problem instead of pydantic's multi-line report."""
    try:
        return factory(*args, **kwargs)
    except pydantic.ValidationError as e:
        raise ConfigError(f"invalid configuration: {describe(e)}") from None


def load(name: str) -> TrainConfig:
    """The CONFIG of ``resjax.train.configs.<name>`` (dashes in name stand for the module's underscores)."""
    available = configs.names()
    name = name.replace("_", "-")
    if name not in available:
        raise ConfigError(f"no configuration {name!r}{_v.suggest(name, available)}; available: {', '.join(available)}.")
    return importlib.import_module(f"resjax.train.configs.{name.replace('-', '_')}").CONFIG
