"""The training loop: mesh, sharding, checkpoints, metrics, evaluation, progress.

One jitted step, data-parallel over a ``jax.make_mesh`` of every device of every
process: the state is replicated, each batch is split along the mesh's ``data`` axis.
Several hosts: start one process per host with ``jax.distributed`` (``resjax train
--coordinator HOST:PORT --num-processes N --process-id I``); every process runs the
same loop, orbax writes the checkpoints together, and process 0 alone writes metrics,
plots and the progress bar.

Two input pipelines (``input_pipeline``): "device" puts the whole training set on every
device and each process reads all of it (CIFAR); "stream" reads, decodes and augments
on the host, each process only its part of every batch (ImageNet; resjax.train.stream).
The batch order is a function of (seed, step) (resjax.train.order) and so is the
augmentation, so a run resumed from a checkpoint continues exactly as an uninterrupted
one would.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import os
import pathlib
import platform
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental.layout import Format, Layout
from jax.sharding import NamedSharding, PartitionSpec as P

from resjax import models

from . import backend as backend_mod
from . import data as data_mod
from . import order
from . import records as records_mod
from . import step as step_mod
from . import stream
from . import transforms
from . import whitening
from . import workdir as workdir_mod
from .config import TrainConfig


MAX_IN_FLIGHT_CPU = 8  # training calls queued ahead of the host on a multi-device CPU
EVAL_BATCH = 1000  # test images per evaluation call (rounded up to a multiple of the devices)


class NonFiniteLoss(RuntimeError):
    pass


def compute_dtype(config: TrainConfig):
    if config.compute_dtype == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return jnp.dtype(config.compute_dtype)


def open_splits(config: TrainConfig):
    """(train Records, test Records) of an image folder, a folder of split tarballs, or
    "tfds:NAME" (a prepared tensorflow-datasets set; $TFDS_DATA_DIR locates it)."""
    if config.data.startswith("tfds:"):
        name = config.data.removeprefix("tfds:")
        train, test = records_mod.open_tfds(name, config.train_split), records_mod.open_tfds(name, config.test_split)
    else:
        root = pathlib.Path(config.data)

        def one(split):
            packed = [root / f"{split}{suffix}" for suffix in (".tar", ".tar.gz")]
            return records_mod.open_folder(next((t for t in packed if t.exists()), root), split=split)

        train, test = one(config.train_split), one(config.test_split)
    if train.class_names != test.class_names:
        raise ValueError(f"train and test classes differ in {config.data}: {train.class_names} vs {test.class_names}")
    return train, test


def load_splits(config: TrainConfig, decode: bool = True):
    """(train, test) for the input pipeline the configuration asks for (resjax.train.stream.wanted):
    ImageSets decoded into memory for the device pipeline ("digits", the embedded default,
    is one), Records for the streaming one. decode=False leaves the device pipeline's
    Records undecoded too: Trainer decodes them while the steps compile."""
    if config.data == "digits":
        if config.input_pipeline == "stream" or config.augmentation == "imagenet":
            raise ValueError("the embedded digits are arrays in memory: input_pipeline='stream' and "
                             "augmentation='imagenet' need an image folder or a tfds:NAME data set.")
        return data_mod.digits(config.train_split), data_mod.digits(config.test_split)
    train, test = open_splits(config)
    if not decode or stream.wanted(config, train):
        return train, test
    return tuple(data_mod.in_memory_splits([train, test], config.data, stream.workers(config)))


def validate(config: TrainConfig, class_names, labels, shape) -> None:
    """The rules that need the data and the devices, checked before anything compiles:
    num_classes equals the data's class count, labels lie in range (those known: a pair
    of arrays or None), the batch splits evenly over the devices, the network accepts
    images of ``shape`` (H, W, C), a whitened stem has no more channels than its patches
    have dimensions. Raises ValueError."""
    shown = ", ".join(class_names[:12]) + (", ..." if len(class_names) > 12 else "")
    if class_names and config.num_classes != len(class_names):
        raise ValueError(
            f"num_classes={config.num_classes}, but the data {config.data!r} has {len(class_names)} classes ({shown}); "
            f"set num_classes={len(class_names)}."
        )
    validate_labels(config, labels)
    devices = jax.device_count()
    if config.batch_size % devices:
        raise ValueError(
            f"batch_size={config.batch_size} does not split evenly over {devices} devices; use a multiple of "
            f"{devices} (e.g. {max(devices, config.batch_size // devices * devices)})."
        )
    model = models.ResNet(num_classes=config.num_classes, **config.model)
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, *shape), jnp.float32))
    for side in {s for s in config.sides() if s is not None}:
        if side > min(shape[:2]):
            raise ValueError(f"progressive_resizing asks for {side} x {side} training images, larger than the "
                             f"{shape[0]} x {shape[1]} images of {config.data!r}; use sides up to {min(shape[:2])}.")
        try:
            jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, side, side, shape[2]), jnp.float32))
        except ValueError as e:
            why, total = str(e).rstrip("."), model.stem[2] * math.prod(model.strides)
            raise ValueError(f"progressive_resizing: the network does not take {side} x {side} images ({why}); use "
                             f"sides divisible by its total stride {total}.") from None
    if config.stem_init == "whitening":
        whitening.check(model.stem[0], model.stem[1], shape[-1])


def validate_labels(config: TrainConfig, labels) -> None:
    for split in labels:
        if split is not None and (len(split) == 0 or split.min() < 0 or split.max() >= config.num_classes):
            raise ValueError(f"labels of {config.data!r} must lie in [0, {config.num_classes}) and not be empty.")


class InFlight:
    """Bounds the training calls queued ahead of the host: ``add`` each call's output, and
    it blocks on the oldest once more than MAX_IN_FLIGHT_CPU are pending, on a CPU split
    into several devices only. There XLA's collectives can deadlock with many
    data-parallel calls in flight: on 2 cores, 8 or 16 virtual devices and 100 calls
    between host syncs ended in an all-reduce rendezvous that never completed (abort)."""

    def __init__(self):
        cpu_parallel = jax.default_backend() == "cpu" and jax.device_count() > 1
        self.limit, self.pending = (MAX_IN_FLIGHT_CPU if cpu_parallel else 0), collections.deque()

    def add(self, output: jax.Array) -> None:
        if self.limit:
            self.pending.append(output)
            if len(self.pending) > self.limit:
                self.pending.popleft().block_until_ready()


# XLA CPU's default backend optimisation level (3, as `XLA_FLAGS=--help` lists it) compiles
# an initialiser slowly: 3.4-7.9 s (JAX 0.10.2) and 4.3-17.7 s (0.12) for the configurations'
# networks, 7 s even for the tiny one's five kernels (one jax.random.bits alone: 1 s); level 1
# takes 1.0-4.4 s and gave bitwise the same parameters for every configuration on both
# (tests/train_test.py checks one).
HOST_INIT_OPTIONS = {"xla_backend_optimization_level": 1}


def on_host(fn, seed: int, *args):
    """``fn(jax.random.key(seed), *args)`` as one jitted call on the host's CPU, compiled
    with HOST_INIT_OPTIONS; host (numpy) arrays, or None without a CPU backend. For
    initialisers: run eagerly, each initialiser would compile on its own. Nothing runs on
    an accelerator (the step's compile may be timing kernels there)."""
    try:
        host = jax.local_devices(backend="cpu")[0]
    except RuntimeError:  # JAX_PLATFORMS without cpu
        return None
    with jax.default_device(host):
        args = jax.device_put((jax.random.key(seed), *args), host)  # committed: the call compiles for the host
        return jax.device_get(jax.jit(fn).lower(*args).compile(HOST_INIT_OPTIONS)(*args))


# XLA's CPU client lends its devices a host array's memory instead of copying it when the
# data is 64-byte aligned, and replicated over virtual CPU devices they then share one
# buffer: the `cpu` configuration's 16 devices otherwise held 16 copies of the 150-MB
# training set (4.6 GB peak for the command, 2026-12-07). The lent array must not change
# afterwards (jax-ml/jax#37830): it is a read-only copy of its own.
CPU_ALIGNMENT = 64


def replicate(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """``array`` on every device of ``sharding``; on CPU devices as one buffer they share,
    a private read-only aligned copy of ``array``."""
    if sharding.mesh.devices.flat[0].platform != "cpu":
        return jax.device_put(array, sharding)
    buffer = np.empty(array.nbytes + CPU_ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % CPU_ALIGNMENT
    aligned = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    np.copyto(aligned, array)
    aligned.flags.writeable = False
    return jax.device_put(aligned, sharding, may_alias=True)


def chosen_by_xla(state, sharding: NamedSharding):
    """The state's format for the first training step compiled under state_layout='auto':
    ``sharding``, in the layout XLA chooses (a tree prefix of ``state``, the step's shapes)."""
    return Format(Layout.AUTO, sharding)


# (H, W, I, O) kernels with the output channels major and the input channels minor: (O, H,
# W, I) in memory, cuDNN's order for the kernel of an NHWC convolution (KRSC)
OUTPUT_MAJOR = (3, 0, 1, 2)


def output_major(leaf) -> tuple[int, ...]:
    """OUTPUT_MAJOR for a kernel (models.is_kernel) with ``ndim`` - 4 leading axes
    (model.scan_blocks stacks a stage's kernels on one: blocks, then O, H, W, I); row-major
    for any other leaf."""
    if not models.is_kernel(leaf):
        return tuple(range(leaf.ndim))
    lead = leaf.ndim - 4
    return tuple(range(lead)) + tuple(lead + axis for axis in OUTPUT_MAJOR)


def kernels_output_major(state, sharding: NamedSharding):
    """The state's formats under state_layout='ohwi': ``sharding``, every kernel (the
    convolution kernels, their optimiser state and average: 4-D, or 5-D stacked) laid out
    output_major and the rest row-major; ``state``: the step's shapes. On a GPU a kernel
    so laid out is what cuDNN reads and what its weight gradient is, so its update needs
    no transpose."""
    return jax.tree.map(lambda a: Format(Layout(output_major(a)), sharding), state)


def placement(layout: str, state, sharding: NamedSharding):
    """What the first training step compiles the state for under state_layout ``layout``
    (None: row-major, as jax.device_put places it), ``state`` being its shapes."""
    if layout == "default":
        return None
    return (chosen_by_xla if layout == "auto" else kernels_output_major)(state, sharding)


def state_formats(compiled) -> dict:
    """The state's formats (layouts and shardings) as ``compiled``, a training step, takes
    it; RuntimeError where it would give it back otherwise (a donated state goes round)."""
    formats = compiled.input_formats[0][0]
    if formats != compiled.output_formats[0]:
        raise RuntimeError("state_layout='auto': XLA laid out the training step's state differently in its input and "
                           "its output, so the step cannot take its own output; use state_layout='default'.")
    return formats


def abstract(shape, dtype, sharding) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), dtype, sharding=sharding)


class DeviceFeed:
    """The device pipeline: the whole training set on the devices as uint8, batches as
    index blocks (resjax.train.order), augmented by the step. Same interface as
    resjax.train.stream.StreamFeed."""

    position = None  # nothing to checkpoint: the step says where the stream is
    skipped = 0

    def __init__(self, config: TrainConfig, train: data_mod.ImageSet, test: data_mod.ImageSet, mesh):
        if train.images.shape[1:] != test.images.shape[1:]:
            raise ValueError(f"train images {train.images.shape[1:]} and test images {test.images.shape[1:]} "
                             "differ in size; resize them to one size.")
        self.config, self.test = config, test
        self.class_names, self.shape, self.labels = train.class_names, train.images.shape[1:], (train.labels, test.labels)
        self.mean, self.std = transforms.pixel_statistics(train.images)
        self.replicated, self.sharded, self.idx_sharding = self.shardings(config, mesh)
        self.norm = step_mod.norm_argument(self.mean, self.std, self.replicated)
        # the step gathers from these; idx is (K, B) with K steps per call, each batch split along data
        self.images = replicate(train.images, self.replicated)
        self.train_labels = replicate(train.labels.astype(np.int32), self.replicated)
        self._test_batches = None  # eval_batches's, once made
        # made by a jitted call: device_put cannot place a key array on other processes' devices
        self.key = jax.jit(functools.partial(jax.random.key, config.seed), out_shardings=self.replicated)()

    @staticmethod
    def image_shape(config: TrainConfig, images: data_mod.ImageSet | records_mod.Records) -> tuple[int, ...]:
        """(H, W, C) of the first image: of all of them (checked when decoded)."""
        if isinstance(images, data_mod.ImageSet):
            return images.images.shape[1:]
        return transforms.decode_record(images, 0)[0].shape

    @staticmethod
    def shardings(config: TrainConfig, mesh) -> tuple[NamedSharding, NamedSharding, NamedSharding]:
        """(replicated, split along data, the batch indices')."""
        return NamedSharding(mesh, P()), NamedSharding(mesh, P("data")), step_mod.call_sharding(mesh, config.steps_per_call)

    @classmethod
    def jit(cls, config: TrainConfig, mesh, steps: step_mod.Steps, side: int | None = None, state=None):
        """The jitted train_step, training on side x side images (None: full size); ``state``:
        how the state lies on the devices, a sharding or a jax.experimental.layout.Format
        (its layout too, e.g. the one XLA chooses), replicated by default."""
        rep, _, idx = cls.shardings(config, mesh)
        state = rep if state is None else state
        fn = functools.partial(steps.train_step, side=side)
        return jax.jit(step_mod.several(fn) if config.steps_per_call > 1 else fn,
                       in_shardings=(state, rep, rep, idx, rep, rep), out_shardings=(state, rep),
                       donate_argnums=step_mod.donated(config))

    @classmethod
    def abstract_batch(cls, config: TrainConfig, mesh, count: int, shape) -> tuple:
        """What batches() yields after the step, as shapes: for compiling ahead of the data."""
        rep, _, idx = cls.shardings(config, mesh)
        per_call = config.steps_per_call
        return (abstract((count, *shape), np.uint8, rep), abstract((count,), np.int32, rep),
                abstract((per_call, config.batch_size) if per_call > 1 else (config.batch_size,), np.int32, idx),
                abstract((), jax.random.key(0).dtype, rep), step_mod.norm_shape(shape[-1], rep))

    def batches(self, start: int, saved=None):
        cfg, n = self.config, len(self.labels[0])
        for s in range(start, cfg.steps, cfg.steps_per_call):
            idx = [order.batch_indices(cfg.seed, s + j, cfg.batch_size, n) for j in range(cfg.steps_per_call)]
            idx = jax.device_put(np.stack(idx) if cfg.steps_per_call > 1 else idx[0], self.idx_sharding)
            yield s, (self.images, self.train_labels, idx, self.key, self.norm)

    def eval_batches(self, batch: int) -> list[tuple]:
        """(images, labels, mask) batches of the whole test set, padding masked: put on the
        devices once, at the first evaluation."""
        if self._test_batches is None:
            images, labels = self.test.images, self.test.labels.astype(np.int32)
            self._test_batches = []
            for start in range(0, len(labels), batch):
                x, y = images[start : start + batch], labels[start : start + batch]
                mask = np.ones(batch, bool)
                if len(y) < batch:  # pad to one shape: one compile
                    mask[len(y):] = False
                    x = np.concatenate([x, np.zeros((batch - len(y), *x.shape[1:]), x.dtype)])
                    y = np.concatenate([y, np.zeros(batch - len(y), y.dtype)])
                # every process holds all
                self._test_batches.append(tuple(jax.device_put(a, self.sharded) for a in (x, y, mask)))
        return self._test_batches


def host_description(cpuinfo: str = "/proc/cpuinfo") -> dict:
    """The machine a run's figures belong to. On one host training is bitwise repeatable;
    another processor may train to slightly different figures, since XLA compiles for its
    instruction set (docs/section4.md), so the summary names the processor and the vector
    extensions that XLA's CPU code uses."""
    info = {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "jax": jax.__version__, "device_kind": jax.devices()[0].device_kind}
    try:
        lines = pathlib.Path(cpuinfo).read_text().splitlines()
    except OSError:  # not Linux
        return info
    fields = {}
    for key, colon, value in (line.partition(":") for line in lines):
        if colon:
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    flags = set(fields.get("flags", "").split())
    return {**info, "processor": fields.get("model name", info["processor"]),
            "simd": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]}


def eval_batch_size() -> int:
    """Test images per evaluation call: EVAL_BATCH, rounded up to a multiple of the device count."""
    return -(-EVAL_BATCH // jax.device_count()) * jax.device_count()


def compile_order(config: TrainConfig, start: int) -> list[int | str | None]:
    """The steps a run from step ``start`` compiles, in the order it first calls them: the
    training step of each side still ahead (config.sides(); None: full size) and
    "evaluate". An evaluation after step s comes before training step s."""
    begins = [0] + [until for until, _ in config.progressive_resizing]
    ends = begins[1:] + [config.steps]
    first = {}
    for side, b, e in zip(config.sides(), begins, ends):
        if e > start:
            first.setdefault(side, max(b, start))  # a side may come twice
    evaluation = max(config.eval_from, start + 1)
    first_eval = min(config.steps, -(-evaluation // config.eval_every) * config.eval_every)
    order = sorted([((first_eval, 0), "evaluate")] + [((s, 1), side) for side, s in first.items()],
                   key=lambda item: item[0])
    return [key for _, key in order]


def compile_name(key: int | str | None) -> str:
    """A compiled step's name in the summary: evaluate, train (full size), train_16 (side 16)."""
    return key if isinstance(key, str) else "train" if key is None else f"train_{key}"


def make_mesh():
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass
class Trainer:
    """Everything a run needs, built once; ``run()`` trains and returns the summary."""

    config: TrainConfig
    workdir: pathlib.Path
    train_set: data_mod.ImageSet | records_mod.Records  # as load_splits returns them
    test_set: data_mod.ImageSet | records_mod.Records
    progress: bool = True
    allow_config_change: bool = False  # resume a checkpoint with a configuration that changes training
    command: str = ""  # recorded in the workdir's lock, for whoever finds it in use
    started: float = dataclasses.field(default_factory=time.time)  # when the command began: wall_seconds
    # ends of the setup's parts before the trainer, in order, e.g. the CLI's {"imports": t, "listing": t}
    setup_marks: dict[str, float] = dataclasses.field(default_factory=dict)
    # the thread that started JAX's backend beside the imports and the listing (the CLI's), for its time
    backend_start: backend_mod.Start | None = None

    def __post_init__(self):
        self.marks = {"started": self.started, **self.setup_marks}  # phase ends, for the summary's "phases"
        self._compiling = {}  # step: the future of its compile (_start_compiles)
        self._initialising = None  # the future of the host's initial state (_prepare)
        self.formats = None  # state_layout other than "default": the state's formats, as the first step compiled them
        cfg = self.config
        backend_mod.add_xla_flags(cfg.xla_flags)  # before make_mesh starts the backend
        if self.backend_start:
            self.backend_start.wait()  # raises BackendError where it could not start
        self.workdir = pathlib.Path(self.workdir)
        self.dtype = compute_dtype(cfg)
        self.model = models.ResNet(num_classes=cfg.num_classes, dtype=self.dtype, **cfg.model)
        self.mesh = make_mesh()
        self.marks["backend"] = time.time()
        if cfg.model.get("scan_blocks") and jax.default_backend() == "cpu":
            warnings.warn("model.scan_blocks=true on a CPU: XLA's CPU backend computes the scanned blocks' weight "
                          "gradients about 35 times slower than unrolled ones (docs/section4.md); it is a lever on "
                          "a GPU's compile. Leave it false here.", stacklevel=2)
        self.replicated = NamedSharding(self.mesh, P())
        train, test = self.train_set, self.test_set
        # the pipeline load_splits chose, or would have chosen for Records it left undecoded
        self.streaming = isinstance(train, records_mod.Records) and stream.wanted(cfg, train)
        self.feed_type = stream.StreamFeed if self.streaming else DeviceFeed
        self.shape = self.feed_type.image_shape(cfg, train)
        validate(cfg, train.class_names, (train.labels, test.labels), self.shape)
        if cfg.stem_init == "whitening" and self.streaming:
            raise ValueError("stem_init='whitening' computes the stem from the training images in memory, but this "
                             "run streams them; set input_pipeline='device' (if they fit) or stem_init='random'.")
        self.steps = step_mod.make_steps(self.model, cfg, self.dtype)
        self.tx = self.steps.tx

    def _prepare(self, start: int = 0, initialise: bool = False) -> None:
        """Starts compiling the steps in a thread, and with ``initialise`` (a fresh run)
        initialising the state in another, then decodes the data (Records that load_splits
        left undecoded) and builds the feed: the compiles overlap these and the state's
        initialisation (on a GPU they take seconds: cuDNN's kernels are timed)."""
        self.marks["setup"] = time.time()
        cfg, train, test = self.config, self.train_set, self.test_set
        self._start_compiles(len(train), start)
        if initialise and cfg.stem_init != "whitening":  # the whitened stem needs the data
            pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="resjax-init")
            self._initialising = pool.submit(self._host_state)
            pool.shutdown(wait=False)
        if not self.streaming and isinstance(train, records_mod.Records):
            self.train_set, self.test_set = data_mod.in_memory_splits([train, test], cfg.data, stream.workers(cfg))
            validate_labels(cfg, (self.train_set.labels, self.test_set.labels))
        self.feed = self.feed_type(cfg, self.train_set, self.test_set, self.mesh)
        self.marks["data"] = time.time()

    def _init(self, key, stem=None) -> step_mod.State:
        return step_mod.initial_state(self.model, self.tx, self.config, self.shape, self.dtype, key, stem)

    def _host_state(self, stem=None) -> step_mod.State | None:
        """The initial state as host arrays, computed by the host's CPU (None without a CPU
        backend): on an H200, made on the GPU beside the step's compile, it took 15-20 s
        (``phases`` in docs/results/*h200*_result.json)."""
        return on_host(self._init, self.config.seed, stem)

    def init_state(self) -> step_mod.State:
        stem = None
        if self.config.stem_init == "whitening":
            k, c, _ = self.model.stem
            stem = whitening.stem_kernel(self.train_set.images, self.feed.mean, self.feed.std, k, c)
        state = self._initialising.result() if self._initialising else self._host_state(stem)
        if state is None:
            return jax.jit(self._init, out_shardings=self.replicated)(jax.random.key(self.config.seed), stem)
        return jax.device_put(state, self.replicated)  # host values: the same in every process

    def abstract_state(self) -> step_mod.State:
        """The state's shapes, dtypes and (replicated) shardings, without initialising it."""
        return jax.tree.map(lambda a: abstract(a.shape, a.dtype, self.replicated),
                            jax.eval_shape(self._init, jax.random.key(0)))

    def _start_compiles(self, count: int, start: int) -> None:
        """Compiles, one after another in a thread of their own, the steps a run from
        ``start`` needs (compile_order) for ``count`` training images of self.shape, from
        shapes alone: it can start before the data is decoded, and the loop waits only for
        the step it calls next, so that with progressive_resizing the later sides compile
        while the first trains (all before the loop, they delayed its start by a compile
        per side)."""
        self.compiles = {}  # name: {"seconds": compiling, "waited": the loop's wait for it}
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="resjax-compile")  # in submission order
        self._compiling = {key: pool.submit(self._compile, key, count) for key in compile_order(self.config, start)}
        pool.shutdown(wait=False)  # the thread ends with its last compile

    def _compile(self, key: int | str | None, count: int):
        """The step ``key`` (a side, None: full size, or "evaluate"), compiled."""
        began = time.perf_counter()
        cfg, mesh, rep, shape, feed_type = self.config, self.mesh, self.replicated, self.shape, self.feed_type
        state, formats = self.abstract_state(), self.formats
        choose = cfg.state_layout != "default" and formats is None  # compile steps run one at a time, in order
        if key != "evaluate":
            batch = feed_type.abstract_batch(cfg, mesh, count, shape)
            placed = placement(cfg.state_layout, state, rep) if choose else formats
            lowered = feed_type.jit(cfg, mesh, self.steps, key, state=placed).lower(state, *batch)
        else:
            sharded, n = NamedSharding(mesh, P("data")), eval_batch_size()
            test = (abstract((n, *shape), np.uint8, sharded), abstract((n,), np.int32, sharded),
                    abstract((n,), np.bool_, sharded), step_mod.norm_shape(shape[-1], rep))
            params, stats = (formats["params"], formats["batch_stats"]) if formats else (rep, rep)
            lowered = jax.jit(  # the test batch is split over the devices like a training batch
                self.steps.eval_step, in_shardings=(params, stats, sharded, sharded, sharded, rep), out_shardings=rep
            ).lower(state["params"], state["batch_stats"], *test)
        compiled = lowered.compile()
        if choose and key != "evaluate":
            self.formats = state_formats(compiled)
        self.compiles.setdefault(compile_name(key), {})["seconds"] = time.perf_counter() - began
        return compiled

    def compiled(self, key: int | str | None):
        """The compiled step ``key`` (a side, None: full size, or "evaluate"), once its compile
        has finished; the time spent waiting for it is recorded."""
        future = self._compiling[key]
        if not future.done():
            began = time.perf_counter()
            future.result()
            self.compiles.setdefault(compile_name(key), {})["waited"] = time.perf_counter() - began
        return future.result()

    def phases(self) -> dict[str, float]:
        """Seconds of each phase of the command so far: ``setup_marks``' (the CLI's: the imports and
        the configuration, then listing the data), backend (to the end of starting JAX's
        backend, or of waiting for the thread that started it, backend_start), setup (the
        rest: building the trainer, checking the workdir), data (decoding it, to the
        devices, statistics; the steps compile meanwhile), the state (initialised or
        restored), the first training call (waiting for the compile, when it has not finished)."""
        names = list(self.marks)
        return {f"{b}_seconds": self.marks[b] - self.marks[a] for a, b in zip(names, names[1:])}

    def restore_or_init(self, latest: int | None):
        """(state, the pipeline's saved position or None) at checkpoint ``latest``, or fresh."""
        if latest is None:
            return self.init_state(), None
        items = {"default": ocp.args.StandardRestore(self.abstract_state())}  # nothing initialised to be replaced
        if (self.workdir / "checkpoints" / str(latest) / "pipeline").absolute().is_dir():
            items["pipeline"] = ocp.args.JsonRestore()
        restored = self.checkpoints.restore(latest, args=ocp.args.Composite(**items))
        return restored["default"], restored.get("pipeline") if "pipeline" in items else None

    def save(self, step: int, state) -> None:
        """A checkpoint of the state, with the streaming pipeline's position."""
        items = {"default": ocp.args.StandardSave(state)}
        if self.feed.position is not None:
            items["pipeline"] = ocp.args.JsonSave(self.feed.position)
        self.checkpoints.save(step, args=ocp.args.Composite(**items))

    def _last_good(self) -> str:
        latest, where = self.checkpoints.latest_step(), self.workdir / "checkpoints"
        if latest is None:
            return f"no checkpoint was saved before it (checkpoint_every={self.config.checkpoint_every})."
        return f"the last good checkpoint is step {latest} in {where}."

    def evaluate(self, state) -> dict:
        """Test accuracy and loss, single-view and flip-averaged; test_accuracy and test_loss
        are the view that config.eval_flip chooses. With ema_decay, of the averaged
        parameters, and of the raw ones under the same names ending in _no_ema."""
        out = self._test_metrics(state.get("ema", state["params"]), state["batch_stats"])
        if "ema" in state:
            raw = self._test_metrics(state["params"], state["batch_stats"])
            out.update({f"{k}_no_ema": v for k, v in raw.items()})
        chosen = "flip" if self.config.eval_flip else "single_view"
        headline = {"test_accuracy": out[f"test_accuracy_{chosen}"], "test_loss": out[f"test_loss_{chosen}"]}
        if f"test_top5_accuracy_{chosen}" in out:
            headline["test_top5_accuracy"] = out[f"test_top5_accuracy_{chosen}"]
        return {**headline, **out}

    def _test_metrics(self, params, batch_stats) -> dict:
        eval_step = self.compiled("evaluate")
        if self.formats is not None:  # the average may lie otherwise than the parameters it was compiled for
            params, batch_stats = jax.device_put((params, batch_stats), eval_step.input_formats[0][:2])
        parts = jax.device_get([eval_step(params, batch_stats, x, y, mask, self.feed.norm)  # one wait, at the end
                                for x, y, mask in self.feed.eval_batches(eval_batch_size())])
        sums = {k: sum(float(p[k]) for p in parts) for k in parts[0]}
        n = len(self.test_set)
        top5 = self.config.num_classes > 5  # else every label is among the top five
        out = {}
        for view in ("single_view", "flip"):
            out[f"test_accuracy_{view}"] = sums[f"correct_{view}"] / n
            out[f"test_loss_{view}"] = sums[f"loss_{view}"] / n
            if top5:
                out[f"test_top5_accuracy_{view}"] = sums[f"correct_top5_{view}"] / n
        return out

    def run(self) -> dict:
        """Trains from the workdir's latest checkpoint (or from scratch) to ``config.steps``,
        holding the workdir's lock; returns the summary. A run already at ``steps`` returns
        its stored summary (``already_complete``) and writes nothing.

        Raises:
          workdir.WorkdirError: the workdir is in use, its checkpoint was trained with a
            different configuration (unless allow_config_change), or it is beyond ``steps``.
          NonFiniteLoss: the loss or the parameters became nan or inf.
        """
        with workdir_mod.Lock(self.workdir, jax.process_index(), self.command) as lock:
            self.checkpoints = ocp.CheckpointManager(
                (self.workdir / "checkpoints").absolute(),
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.config.keep_checkpoints, enable_async_checkpointing=False, create=True
                ),
                item_names=("default", "pipeline"),  # the state; the streaming pipeline's position
            )
            with self.checkpoints:
                return self._run(self.checkpoints.latest_step(), lock.stale_note())

    def check_resume(self, checkpoint_step: int | None) -> dict:
        """Refuses, writing nothing, a resume that cannot be done as asked: a configuration
        that differs from the checkpoint's (unless allow_config_change), or a checkpoint
        beyond ``steps``. Returns the configuration's differences."""
        diff = workdir_mod.reconcile(self.workdir, self.config, checkpoint_step, self.allow_config_change, write=False)
        if checkpoint_step is not None and checkpoint_step % self.config.steps_per_call:
            raise workdir_mod.WorkdirError(
                f"the run in {self.workdir} is at step {checkpoint_step}, not a multiple of steps_per_call="
                f"{self.config.steps_per_call}: resume it with a steps_per_call that divides {checkpoint_step}."
            )
        old, new = diff.get("ema_decay", (0.0, 0.0))
        if bool(old) != bool(new):
            raise workdir_mod.WorkdirError(
                f"the run in {self.workdir} was trained with ema_decay={old}: an average of the parameters cannot be "
                f"{'started' if new else 'dropped'} on resume (its checkpoint {'lacks' if new else 'holds'} one). "
                f"Resume with ema_decay={old}, or start afresh in another --workdir."
            )
        if checkpoint_step is not None and checkpoint_step > self.config.steps:
            raise workdir_mod.WorkdirError(
                f"the run in {self.workdir} is already at step {checkpoint_step}, beyond steps={self.config.steps}: nothing "
                "to do, and nothing was changed. Training cannot go back; use another --workdir to train to "
                f"step {self.config.steps}."
            )
        return diff

    def _finished(self) -> dict | None:
        """The stored summary of a run whose checkpoint is at ``steps``: nothing is trained or written."""
        path = self.workdir / "summary.json"
        if path.exists():
            return {**json.loads(path.read_text()), "already_complete": True}
        return None  # killed after its last checkpoint, before its summary: _run evaluates and writes it

    def _run(self, checkpoint_step: int | None, stale_lock: str | None) -> dict:
        cfg = self.config
        lead = jax.process_index() == 0
        self.check_resume(checkpoint_step)
        if checkpoint_step == cfg.steps:
            finished = self._finished()
            if finished is not None:
                return finished
        if lead:
            if stale_lock:
                print(f"resjax train: {stale_lock}", file=sys.stderr)
            workdir_mod.reconcile(self.workdir, cfg, checkpoint_step, self.allow_config_change)
            workdir_mod.trim_metrics(self.workdir, checkpoint_step or 0)
        try:
            self._prepare(checkpoint_step or 0, initialise=checkpoint_step is None)
            return self._train(checkpoint_step)
        finally:
            for future in self._compiling.values():  # a run that stops early leaves no compile queued
                future.cancel()

    def _train(self, checkpoint_step: int | None) -> dict:
        from tqdm import tqdm

        cfg = self.config
        lead = jax.process_index() == 0
        state, position = self.restore_or_init(checkpoint_step)
        start_step = int(state["step"])
        log = MetricsLog(self.workdir if lead else None, purge_step=start_step + 1)
        self.loop_started = self.marks["state"] = time.time()
        if start_step < cfg.steps:  # else only the evaluation is left
            self.compiled(cfg.side_at(start_step))  # waits for the first step's compile, if it has not finished
            if self.formats is not None:  # state_layout "auto" or "ohwi": where that compile wants the state
                state = jax.device_put(state, self.formats)
        t0 = time.perf_counter()
        last_t, last_step = t0, start_step
        bar = tqdm(total=cfg.steps, initial=start_step, disable=not (self.progress and lead), unit="step",
                   dynamic_ncols=True)
        latest = None  # the latest evaluation: after the loop, the last step's, reused by the summary
        per_call = cfg.steps_per_call
        in_flight = InFlight()
        try:
            with contextlib.closing(self.feed.batches(start_step, position)) as batches:
                for s, batch in batches:
                    state, metrics = self.compiled(cfg.side_at(s))(state, *batch)
                    self.marks.setdefault("first_call", time.time())  # returns once dispatched, before it runs
                    in_flight.add(metrics["loss"])
                    done = s + per_call
                    if done % cfg.log_every == 0 or done == cfg.steps:
                        m = {k: float(v) for k, v in metrics.items()}
                        if not math.isfinite(m["loss"]):
                            raise NonFiniteLoss(f"non-finite loss {m['loss']} at step {done}; {self._last_good()}")
                        now = time.perf_counter()
                        m.update(step=done, images_per_s=(done - last_step) * cfg.batch_size / (now - last_t),
                                 time=now - t0)
                        if cfg.skip_corrupt:
                            m["skipped_images"] = self.feed.skipped
                        last_t, last_step = now, done
                        log.write(m)
                        bar.set_postfix(loss=f"{m['loss']:.3f}", lr=f"{m['lr']:.3g}", img_s=f"{m['images_per_s']:.0f}")
                    if (done % cfg.eval_every == 0 and done >= cfg.eval_from) or done == cfg.steps:
                        latest = self.evaluate(state)
                        log.write({"step": done, **latest, "time": time.perf_counter() - t0})
                        if not bar.disable:
                            bar.write(f"step {done}: test accuracy {latest['test_accuracy']:.4f}")
                    if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                        if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state["params"])):
                            raise NonFiniteLoss(f"non-finite parameters at step {done}, not saved; {self._last_good()}")
                        self.save(done, state)
                    bar.update(per_call)
        finally:
            bar.close()
            log.close()
        elapsed = time.perf_counter() - t0
        results = latest or self.evaluate(state)  # None only when resumed at the last step
        if lead:  # before wall_seconds is taken: the plot is part of the command
            plot_curves(self.workdir / "metrics.jsonl", self.workdir / "curves.png")
        summary = {
            "config": dataclasses.asdict(cfg),
            "steps": cfg.steps,
            "resumed_from": start_step,
            "seconds": elapsed,
            "wall_seconds": time.time() - self.started,  # all but writing this and exiting: data, compiles, plot
            "startup_seconds": self.loop_started - self.started,  # imports, data, state: before the first step
            "phases": self.phases(),
            **({"backend_start_seconds": self.backend_start.seconds} if self.backend_start else {}),
            # in a thread, overlapping data, state and, with progressive_resizing, the first side's training
            "compile_seconds": sum(c.get("seconds", 0.0) for c in self.compiles.values()),
            "compiles": self.compiles,
            "images_per_s": (cfg.steps - start_step) * cfg.batch_size / max(elapsed, 1e-9),
            "devices": jax.device_count(),
            "processes": jax.process_count(),
            "backend": jax.default_backend(),
            "host": host_description(),
            "input_pipeline": "stream" if self.streaming else "device",
            **({"skipped_images": self.feed.skipped} if cfg.skip_corrupt else {}),
            **results,
        }
        if lead:
            (self.workdir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        self.final_state = state
        return summary


class MetricsLog:
    """Metrics as JSON lines (metrics.jsonl) and TensorBoard scalars (tensorboard/); a
    process other than the first passes workdir=None and writes nothing."""

    def __init__(self, workdir: pathlib.Path | None, purge_step: int | None = None):
        self.jsonl = self.board = None
        if workdir is not None:
            from tensorboardX import SummaryWriter

            self.jsonl = (workdir / "metrics.jsonl").open("a")
            # TensorBoard hides the events a killed run logged after the checkpoint resumed from
            self.board = SummaryWriter(str(workdir / "tensorboard"), purge_step=purge_step)

    def write(self, row: dict) -> None:
        if self.jsonl is None:
            return
        self.jsonl.write(json.dumps(row) + "\n")
        self.jsonl.flush()
        for key, value in row.items():
            if key != "step":
                self.board.add_scalar(("test/" if key.startswith("test_") else "train/") + key, value, row["step"])
        self.board.flush()

    def close(self) -> None:
        if self.jsonl is not None:
            self.jsonl.close()
            self.board.close()


def latest_step(workdir) -> int | None:
    """The step of the workdir's latest checkpoint, None when it has none."""
    path = (pathlib.Path(workdir) / "checkpoints").absolute()
    if not path.is_dir():
        return None
    with ocp.CheckpointManager(path) as manager:
        return manager.latest_step()


def load_checkpoint(workdir, step: int | None = None) -> dict:
    """The saved state of a run (latest step by default), as host arrays, whatever the
    device topology that saved it."""
    path = (pathlib.Path(workdir) / "checkpoints").absolute()
    step = latest_step(workdir) if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint under {path}")
    item = path / str(step) / "default"
    checkpointer = ocp.StandardCheckpointer()
    meta = checkpointer.metadata(item)
    tree = getattr(getattr(meta, "item_metadata", meta), "tree", getattr(meta, "item_metadata", meta))
    device = jax.sharding.make_single_device_sharding(jax.devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    return jax.tree.map(np.asarray, checkpointer.restore(item, target))


def plot_curves(metrics: pathlib.Path, out: pathlib.Path) -> None:
    """Training loss, train batch accuracy and test accuracy against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "loss" in r]
    test = [r for r in rows if "test_accuracy" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([r["step"] for r in train], [r["loss"] for r in train])
    a.set(xlabel="step", ylabel="training loss", yscale="log")
    b.plot([r["step"] for r in train], [r["accuracy"] for r in train], label="train batch")
    b.plot([r["step"] for r in test], [r["test_accuracy"] for r in test], marker="o", label="test")
    b.set(xlabel="step", ylabel="accuracy")
    b.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
