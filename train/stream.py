"""The streaming input pipeline: for data sets that do not fit on the device (ImageNet).

Each process reads, decodes and augments only its own part of every global batch, in
grain worker processes (``loader_workers`` per host), and a background thread puts
the batches onto the mesh ahead of the step: ``jax.make_array_from_process_local_data``
joins the processes' parts into one global array sharded along ``data``. What a batch
holds is a pure function of (seed, step) (resjax.train.order, resjax.train.transforms),
so one process with four devices and two processes with two each train on the same
images, cropped the same way.

Exact resume: with every checkpoint the trainer saves the pipeline's position (grain's
iterator state, with the step and the worker count it belongs to) and restores it;
a resumed run sees the batches an uninterrupted one would have seen.

  >>> feed = StreamFeed(config, train_records, test_records, mesh)   # doctest: +SKIP
  >>> for step, (images, labels, norm) in feed.batches(0, None): ...  # doctest: +SKIP
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import queue
import threading

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from . import order, transforms
from . import step as step_mod
from .config import TrainConfig
from .records import Records

STREAM_ABOVE_BYTES = 4 * 2**30  # input_pipeline="auto" streams a decoded training set larger than this
STATS_IMAGES = 512  # images whose pixels give the normalisation's mean and std


def wanted(config: TrainConfig, records: Records) -> bool:
    """Whether ``records`` (the training split) should stream: the configuration's
    choice, or for "auto", augmentation="imagenet" or a decoded size above 4 GiB."""
    if config.input_pipeline != "auto":
        return config.input_pipeline == "stream"
    if config.augmentation == "imagenet":
        return True
    first, _ = transforms.decode_record(records, 0)
    return first.nbytes * len(records) > STREAM_ABOVE_BYTES


def _grain():
    """grain, with absl's flags marked parsed: its worker processes read them."""
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    return grain


def workers(config: TrainConfig) -> int:
    """Loader processes of this training process: the configured count, else one per core
    (several training processes on one host should set loader_workers to share the cores)."""
    return (os.cpu_count() or 1) if config.loader_workers is None else config.loader_workers


class StreamFeed:
    """Training batches and evaluation batches of two Records splits, as global arrays on ``mesh``.

    shape: (H, W, C) of every image the network sees; mean, std: per-channel pixel
    statistics (of the first STATS_IMAGES images of the training stream, as evaluation
    sees them) for normalisation.
    """

    def __init__(self, config: TrainConfig, train: Records, test: Records, mesh):
        self.config, self.train, self.test, self.mesh = config, train, test, mesh
        self.class_names, self.labels = train.class_names, (train.labels, test.labels)
        self.processes, self.process = jax.process_count(), jax.process_index()
        self.workers = workers(config)
        self.shape = self.image_shape(config, train)
        self.mean, self.std = self._statistics()
        self.norm = step_mod.norm_argument(self.mean, self.std, NamedSharding(mesh, P()))
        self.sharding = step_mod.call_sharding(mesh, config.steps_per_call)
        self.eval_sharding = NamedSharding(mesh, P("data"))
        self._skipped = 0  # a device scalar once counting starts: read only when logged
        self.position = None  # the pipeline state after the last batch handed out

    def element(self, split: Records, train: bool, augment: bool) -> transforms.Element:
        return transforms.Element(split, self.config.augmentation, self.shape, self.config.seed, train=train,
                                  augment=augment, skip_corrupt=self.config.skip_corrupt, flip=self.config.flip,
                                  crop_padding=self.config.crop_padding)

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        count = min(STATS_IMAGES, len(self.train))
        element = self.element(self.train, train=True, augment=False)
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
            images = np.stack([e["image"] for e in pool.map(element, range(count))])
        return transforms.pixel_statistics(images)

    @staticmethod
    def image_shape(config: TrainConfig, train: Records) -> tuple[int, ...]:
        """(H, W, C) of every image the network sees."""
        if config.augmentation == "imagenet":
            return (config.image_size, config.image_size, 3)
        return transforms.decode_record(train, 0)[0].shape

    @staticmethod
    def jit(config: TrainConfig, mesh, steps: step_mod.Steps, side: int | None = None, state=None):
        """The jitted stream_step, training on side x side images (None: full size): the
        batch as the pipeline shards it; ``state`` as DeviceFeed.jit takes it (replicated
        by default)."""
        rep, batch = NamedSharding(mesh, P()), step_mod.call_sharding(mesh, config.steps_per_call)
        state = rep if state is None else state
        fn = functools.partial(steps.stream_step, side=side)
        if config.steps_per_call > 1:
            fn = step_mod.several(fn, scanned=(0, 1))
        return jax.jit(fn, in_shardings=(state, batch, batch, rep), out_shardings=(state, rep),
                       donate_argnums=step_mod.donated(config))

    @staticmethod
    def abstract_batch(config: TrainConfig, mesh, count: int, shape) -> tuple:
        """What batches() yields after the step, as shapes (count, the training set's size,
        does not enter them): for compiling ahead of the data."""
        batch, rep = step_mod.call_sharding(mesh, config.steps_per_call), NamedSharding(mesh, P())
        lead = (config.steps_per_call, config.batch_size) if config.steps_per_call > 1 else (config.batch_size,)
        return (jax.ShapeDtypeStruct((*lead, *shape), np.uint8, sharding=batch),
                jax.ShapeDtypeStruct(lead, np.int32, sharding=batch), step_mod.norm_shape(shape[-1], rep))

    @property
    def skipped(self) -> int:
        """Images replaced because they did not decode (skip_corrupt), over all processes."""
        return int(jax.device_get(self._skipped))

    def _dataset(self, element, batch: int, count: int, group: int = 1):
        """Process-local batches: ``count`` global batches of ``batch`` elements each, in
        groups of ``group`` (a leading axis) when group > 1."""
        grain = _grain()
        local = batch // self.processes
        shard = order.Shard(local, batch, self.process)
        ds = grain.MapDataset.range(0, count * local).map(shard).map(element).batch(local)
        return ds.batch(group) if group > 1 else ds

    def _iterator(self, ds, state=None):
        grain = _grain()
        options = grain.ReadOptions(num_threads=1 if self.workers else (os.cpu_count() or 1), prefetch_buffer_size=2)
        it = ds.to_iter_dataset(options)
        if self.workers:
            it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.workers, per_worker_buffer_size=2))
        it = iter(it)
        if state is not None:
            it.set_state(state)
        return it

    def _global(self, local: dict, sharding) -> tuple:
        """(images, labels, skipped, mask) as global arrays: the processes' parts joined along
        the sharded (batch) axis."""
        axis = list(sharding.spec).index("data")

        def put(x):
            shape = list(x.shape)
            shape[axis] *= self.processes
            return jax.make_array_from_process_local_data(sharding, x, tuple(shape))

        return tuple(put(local[k]) for k in ("image", "label", "skipped", "mask"))

    def batches(self, start: int, saved: dict | None):
        """Yields (step, (images, labels, norm)) from step ``start`` to config.steps, in calls
        of steps_per_call (images (B, H, W, C) or (K, B, H, W, C) uint8; norm: the pixel
        statistics, an argument of the step). ``saved`` is the
        position a checkpoint stored at ``start`` (None: from the step alone)."""
        cfg = self.config
        per_call = cfg.steps_per_call
        ds = self._dataset(self.element(self.train, True, cfg.augment), cfg.batch_size, cfg.steps, per_call)
        offset, state = self._restorable(saved, start)
        prefetch = Prefetch(self._iterator(ds[offset:], state), lambda b: self._global(b, self.sharding))
        try:
            for s in range(start, cfg.steps, per_call):
                (images, labels, skipped, _), grain_state = next(prefetch)
                if cfg.skip_corrupt:  # else nothing is ever skipped: no extra dispatch per step
                    self._skipped = _count(skipped, self._skipped)
                self.position = {"step": s + per_call, "workers": self.workers, "processes": self.processes,
                                 "offset": offset, "grain": grain_state}
                yield s, (images, labels, self.norm)
        finally:
            prefetch.close()

    def _restorable(self, saved: dict | None, start: int) -> tuple[int, dict | None]:
        """(offset, grain state): where the stream of calls starts and grain's iterator state
        within it. The saved state is used if it belongs to this step, worker count and
        process count; else the stream restarts at the step's call (the same batches)."""
        if saved and (saved.get("step"), saved.get("workers"), saved.get("processes")) == (
                start, self.workers, self.processes):
            return saved["offset"], saved["grain"]
        return start // self.config.steps_per_call, None

    def eval_batches(self, batch: int):
        """Yields (images, labels, mask) over the whole test split; padding has mask False."""
        count = -(-len(self.test) // batch)
        it = self._iterator(self._dataset(self.element(self.test, False, False), batch, count))
        try:
            for _ in range(count):
                images, labels, _, mask = self._global(_next(it), self.eval_sharding)
                yield images, labels, mask
        finally:
            it.close()


def _next(it):
    """next(it), with a corrupt image's error as one line: grain appends a note on its
    traceback filtering to errors from its workers."""
    try:
        return next(it)
    except transforms.CorruptImage as e:
        raise transforms.CorruptImage(str(e).split("\n")[0]) from None


@jax.jit
def _count(skipped, total=0):
    return total + skipped.sum()


class Prefetch:
    """Pulls batches from a grain iterator in a thread, puts them on the devices, and keeps
    two ready: ``next()`` returns (device batch, grain state after it). An error in the
    pipeline (a corrupt image, a worker that died) is raised by the ``next()`` that
    would have returned its batch."""

    def __init__(self, it, put, depth: int = 2):
        self.it, self.put = it, put
        self.queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, daemon=True)
        self.thread.start()

    def _fill(self):
        try:
            while not self.stop.is_set():
                batch = _next(self.it)
                self._offer((self.put(batch), self.it.get_state()))
        except BaseException as e:  # handed to the consumer, raised there
            self._offer(e)

    def _offer(self, item):
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __next__(self):
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self.stop.set()
        self.thread.join()
        close = getattr(self.it, "close", None)
        if close:
            close()
