"""The training loop: mesh, sharding, checkpoints, metrics, evaluation, progress.

One jitted step, data-parallel over a ``jax.make_mesh`` of every device of every
process: the state is replicated, each batch is split along the mesh's ``data`` axis.
Several hosts: start one process per host with ``jax.distributed`` (``resjax train
--coordinator HOST:PORT --num-processes N --process-id I``); every process reads the
data and runs the same loop, orbax writes the checkpoints together, and process 0
alone writes metrics, plots and the progress bar. The batch order is
a function of (seed, step) and augmentation keys are folded from the step, so a run
resumed from a checkpoint continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from resjax import models

from . import data as data_mod
from . import step as step_mod
from . import workdir as workdir_mod
from .config import TrainConfig


class NonFiniteLoss(RuntimeError):
    pass


def compute_dtype(config: TrainConfig):
    if config.compute_dtype == "auto":
        return jnp.float32 if jax.default_backend() == "cpu" else jnp.bfloat16
    return jnp.dtype(config.compute_dtype)


def load_splits(config: TrainConfig):
    """(train ImageSet, test ImageSet) from an image folder, a folder of split tarballs,
    "tfds:NAME" (a prepared tensorflow-datasets set; $TFDS_DATA_DIR locates it), or
    "digits" (the embedded default, resjax.train.data.digits)."""
    if config.data == "digits":
        return data_mod.digits(config.train_split), data_mod.digits(config.test_split)
    if config.data.startswith("tfds:"):
        name = config.data.removeprefix("tfds:")
        return data_mod.load_tfds(name, config.train_split), data_mod.load_tfds(name, config.test_split)
    root = pathlib.Path(config.data)

    def one(split):
        tarball = root / f"{split}.tar.gz"
        return data_mod.load_image_folder(tarball if tarball.exists() else root, split=split)

    train, test = one(config.train_split), one(config.test_split)
    if train.class_names != test.class_names:
        raise ValueError(f"train and test classes differ under {root}: {train.class_names} vs {test.class_names}")
    return train, test


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The permutation of range(n) for one epoch, drawn once (it is on every step's path)."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(seed: int, step: int, batch: int, n: int) -> np.ndarray:
    """Indices of the batch at ``step``: epochs are independent permutations of range(n)."""
    pos = np.arange(step * batch, (step + 1) * batch)
    out = np.empty(batch, dtype=np.int32)
    for epoch in np.unique(pos // n):
        sel = pos // n == epoch
        out[sel] = _epoch_order(seed, int(epoch), n)[pos[sel] % n]
    return out


def split_cpu(count: int | None) -> None:
    """Asks for ``count`` virtual CPU devices unless XLA_FLAGS already chose a number. Call
    it before anything touches a device; it only matters where JAX's backend is the CPU."""
    if count and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        jax.config.update("jax_num_cpu_devices", count)


def validate(config: TrainConfig, train_set: data_mod.ImageSet, test_set: data_mod.ImageSet) -> None:
    """The rules that need the data and the devices, checked before anything compiles:
    num_classes equals the data's class count, the batch splits evenly over the devices,
    the network accepts the images' size. Raises ValueError."""
    names = train_set.class_names
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    if config.num_classes != len(names):
        raise ValueError(
            f"num_classes={config.num_classes}, but the data {config.data!r} has {len(names)} classes ({shown}); "
            f"set num_classes={len(names)}."
        )
    for split in (train_set, test_set):
        if len(split.labels) == 0 or split.labels.min() < 0 or split.labels.max() >= config.num_classes:
            raise ValueError(f"labels of {config.data!r} must lie in [0, {config.num_classes}) and not be empty.")
    if train_set.images.shape[1:] != test_set.images.shape[1:]:
        raise ValueError(f"train images {train_set.images.shape[1:]} and test images {test_set.images.shape[1:]} "
                         "differ in size; resize them to one size.")
    devices = jax.device_count()
    if config.batch_size % devices:
        raise ValueError(
            f"batch_size={config.batch_size} does not split evenly over {devices} devices; use a multiple of "
            f"{devices} (e.g. {max(devices, config.batch_size // devices * devices)})."
        )
    model = models.ResNet(num_classes=config.num_classes, **config.model)
    jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, *train_set.images.shape[1:]), jnp.float32))


def make_mesh():
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))


@dataclasses.dataclass
class Trainer:
    """Everything a run needs, built once; ``run()`` trains and returns the summary."""

    config: TrainConfig
    workdir: pathlib.Path
    train_set: data_mod.ImageSet
    test_set: data_mod.ImageSet
    progress: bool = True
    allow_config_change: bool = False  # resume a checkpoint with a configuration that changes training
    command: str = ""  # recorded in the workdir's lock, for whoever finds it in use
    started: float = dataclasses.field(default_factory=time.time)  # when the command began: wall_seconds

    def __post_init__(self):
        cfg = self.config
        validate(cfg, self.train_set, self.test_set)
        self.workdir = pathlib.Path(self.workdir)
        self.dtype = compute_dtype(cfg)
        self.model = models.ResNet(num_classes=cfg.num_classes, dtype=self.dtype, **cfg.model)
        self.mesh = make_mesh()
        self.replicated = NamedSharding(self.mesh, P())
        self.sharded = NamedSharding(self.mesh, P("data"))
        images = self.train_set.images
        mean = images.reshape(-1, images.shape[-1]).mean(0) / 255.0
        std = images.reshape(-1, images.shape[-1]).std(0) / 255.0
        self.tx, train_step, eval_step = step_mod.make_steps(self.model, cfg, jnp.asarray(mean), jnp.asarray(std), self.dtype)
        self.images = jax.device_put(images, self.replicated)
        self.labels = jax.device_put(self.train_set.labels.astype(np.int32), self.replicated)
        multi = cfg.steps_per_call > 1  # then idx is (K, B): K steps per call, each batch split along data
        self.idx_sharding = NamedSharding(self.mesh, P(None, "data")) if multi else self.sharded
        self.train_step = jax.jit(
            step_mod.several(train_step) if multi else train_step,
            in_shardings=(self.replicated, self.replicated, self.replicated,
                          self.idx_sharding, self.replicated),
            out_shardings=(self.replicated, self.replicated),
            donate_argnums=(0,),
        )
        self.eval_step = jax.jit(  # the test batch is split over the devices like a training batch
            eval_step,
            in_shardings=(self.replicated, self.replicated, self.sharded, self.sharded, self.sharded),
            out_shardings=self.replicated,
        )
        self.key = jax.random.key(cfg.seed)

    def init_state(self):
        shape = self.train_set.images.shape[1:]
        variables = self.model.init(jax.random.key(self.config.seed), jnp.zeros((1, *shape), self.dtype))
        params = variables["params"]
        state = {
            "step": jnp.zeros((), jnp.int32),
            "params": params,
            "opt_state": self.tx.init(params),
            "batch_stats": variables.get("batch_stats", {}),
        }
        return jax.device_put(state, self.replicated)

    def restore_or_init(self, latest: int | None):
        state = self.init_state()
        if latest is None:
            return state
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        return self.checkpoints.restore(latest, args=ocp.args.StandardRestore(abstract))

    def _last_good(self) -> str:
        latest, where = self.checkpoints.latest_step(), self.workdir / "checkpoints"
        if latest is None:
            return f"no checkpoint was saved before it (checkpoint_every={self.config.checkpoint_every})."
        return f"the last good checkpoint is step {latest} in {where}."

    def evaluate(self, state, batch: int = 1000) -> dict:
        """Test accuracy and loss, single-view and flip-averaged; test_accuracy and test_loss
        are the view that config.eval_flip chooses."""
        batch = -(-batch // jax.device_count()) * jax.device_count()
        images, labels = self.test_set.images, self.test_set.labels.astype(np.int32)
        sums = {}
        for start in range(0, len(labels), batch):
            x, y = images[start : start + batch], labels[start : start + batch]
            mask = np.ones(batch, bool)
            if len(y) < batch:  # pad to one shape: one compile
                mask[len(y):] = False
                x = np.concatenate([x, np.zeros((batch - len(y), *x.shape[1:]), x.dtype)])
                y = np.concatenate([y, np.zeros(batch - len(y), y.dtype)])
            x, y, mask = (jax.device_put(a, self.sharded) for a in (x, y, mask))  # every process holds all
            for k, v in self.eval_step(state["params"], state["batch_stats"], x, y, mask).items():
                sums[k] = sums.get(k, 0.0) + float(v)
        out = {}
        for view in ("single_view", "flip"):
            out[f"test_accuracy_{view}"] = sums[f"correct_{view}"] / len(labels)
            out[f"test_loss_{view}"] = sums[f"loss_{view}"] / len(labels)
        chosen = "flip" if self.config.eval_flip else "single_view"
        return {"test_accuracy": out[f"test_accuracy_{chosen}"], "test_loss": out[f"test_loss_{chosen}"], **out}

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
        from tqdm import tqdm

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
        state = self.restore_or_init(checkpoint_step)
        start_step = int(state["step"])
        log = MetricsLog(self.workdir if lead else None, purge_step=start_step + 1)
        n = len(self.train_set.labels)
        self.loop_started = time.time()
        t0 = time.perf_counter()
        last_t, last_step = t0, start_step
        bar = tqdm(total=cfg.steps, initial=start_step, disable=not (self.progress and lead), unit="step",
                   dynamic_ncols=True)
        latest = None  # the latest evaluation: after the loop, the last step's, reused by the summary
        try:
            per_call = cfg.steps_per_call
            for s in range(start_step, cfg.steps, per_call):
                idx = [batch_indices(cfg.seed, s + j, cfg.batch_size, n) for j in range(per_call)]
                idx = jax.device_put(np.stack(idx) if per_call > 1 else idx[0], self.idx_sharding)
                state, metrics = self.train_step(state, self.images, self.labels, idx, self.key)
                done = s + per_call
                if done % cfg.log_every == 0 or done == cfg.steps:
                    m = {k: float(v) for k, v in metrics.items()}
                    if not math.isfinite(m["loss"]):
                        raise NonFiniteLoss(f"non-finite loss {m['loss']} at step {done}; {self._last_good()}")
                    now = time.perf_counter()
                    m.update(step=done, images_per_s=(done - last_step) * cfg.batch_size / (now - last_t), time=now - t0)
                    last_t, last_step = now, done
                    log.write(m)
                    bar.set_postfix(loss=f"{m['loss']:.3f}", lr=f"{m['lr']:.3g}", img_s=f"{m['images_per_s']:.0f}")
                if done % cfg.eval_every == 0 or done == cfg.steps:
                    latest = self.evaluate(state)
                    log.write({"step": done, **latest, "time": time.perf_counter() - t0})
                    if not bar.disable:
                        bar.write(f"step {done}: test accuracy {latest['test_accuracy']:.4f}")
                if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                    if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state["params"])):
                        raise NonFiniteLoss(f"non-finite parameters at step {done}, not saved; {self._last_good()}")
                    self.checkpoints.save(done, args=ocp.args.StandardSave(state))
                bar.update(per_call)
        finally:
            bar.close()
            log.close()
        elapsed = time.perf_counter() - t0
        summary = {
            "config": dataclasses.asdict(cfg),
            "steps": cfg.steps,
            "resumed_from": start_step,
            "seconds": elapsed,
            "wall_seconds": time.time() - self.started,  # the whole command: data, compiles, evaluations
            "startup_seconds": self.loop_started - self.started,  # imports, data, state: before the first step
            "images_per_s": (cfg.steps - start_step) * cfg.batch_size / max(elapsed, 1e-9),
            "devices": jax.device_count(),
            "processes": jax.process_count(),
            "backend": jax.default_backend(),
            **(latest or self.evaluate(state)),  # None only when resumed at the last step
        }
        if lead:
            (self.workdir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
            plot_curves(self.workdir / "metrics.jsonl", self.workdir / "curves.png")
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
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
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
