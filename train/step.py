"""The pure training and evaluation steps (jitted and sharded by the loop).

Device pipeline: the whole training set lives on the device as uint8; ``train_step``
receives the indices of its batch, gathers, augments (random crops from 4-pixel
padding, horizontal flips: random or alternating) and normalises on the device, so
input never waits on the host. Streaming pipeline: ``stream_step`` receives the batch
itself, augmented on the host (resjax.train.stream). Both end in the same update.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from resjax import models

from . import beta, grad_norm, order
from .config import TrainConfig

State = dict[str, Any]  # {"step", "params", "opt_state", "batch_stats"[, "ema"]}


def schedule(config: TrainConfig) -> optax.Schedule:
    """Piecewise constant learning rate (Section 4's CIFAR recipe), a staircase exponential
    decay (its ImageNet recipe: ×0.94 every two epochs), or a cosine decay to zero at the
    last step (short runs), after an optional linear warm-up."""
    if config.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, config.warmup_steps, config.steps)
    if config.lr_schedule == "exponential":
        steps = optax.exponential_decay(config.learning_rate, config.lr_decay_every, config.lr_decay, staircase=True)
    else:
        steps = optax.piecewise_constant_schedule(
            config.learning_rate, {b: config.lr_decay for b in config.lr_boundaries}
        )
    if not config.warmup_steps:
        return steps
    warm = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
    return optax.join_schedules([warm, lambda s: steps(s + config.warmup_steps)], [config.warmup_steps])


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """SGD with momentum; weight decay on convolution kernels only (models.is_kernel)."""
    conv_only = lambda params: jax.tree.map(models.is_kernel, params)
    parts = [grad_norm.clip_by_global_norm(config.grad_clip)] if config.grad_clip else []
    parts += [
        optax.add_decayed_weights(config.weight_decay, mask=conv_only),
        optax.sgd(schedule(config), momentum=config.momentum, nesterov=config.nesterov),
    ]
    return optax.chain(*parts)


def windows(images: jax.Array, offsets: jax.Array, h: int, w: int) -> jax.Array:
    """The h x w window of each image at its (row, column) offset.

    images: (B, H, W, C), offsets: (B, 2) int -> (B, h, w, C).
    """
    c = images.shape[-1]
    return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (h, w, c)))(images, offsets)


def augment(key: jax.Array, images: jax.Array, flips: jax.Array | None = None, padding: int = 4) -> jax.Array:
    """Random crops of the images zero-padded by ``padding`` pixels (Section 4: 4) and
    horizontal flips: random, or where ``flips`` says.

    images: (B, H, W, C) uint8, flips: (B,) bool or None -> (B, H, W, C) uint8.
    """
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    k_crop, k_flip = jax.random.split(key)
    offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * padding + 1)
    crop = windows(padded, offsets, h, w)
    flip = jax.random.bernoulli(k_flip, 0.5, (b,)) if flips is None else flips
    return jnp.where(flip[:, None, None, None], crop[:, :, ::-1], crop)


def training_batch(config: TrainConfig, images, labels, idx, key, step):
    """The device pipeline's batch at ``step``: the images at ``idx`` of the training set
    (all n of them on the device), augmented as the configuration says.

    images: (n, H, W, C) uint8, labels: (n,), idx: (B,) -> ((B, H, W, C) uint8, (B,)).
    """
    x, y = images[idx], labels[idx]
    if not config.augment:
        return x, y
    flips = None
    if config.flip == "alternating":  # the epoch of each position of the stream (resjax.train.order)
        epochs = (step * idx.shape[0] + jnp.arange(idx.shape[0])) // images.shape[0]
        flips = order.alternating_flips(config.seed, idx, epochs, jnp)
    return augment(jax.random.fold_in(key, step), x, flips, config.crop_padding), y


def cutout(key: jax.Array, x: jax.Array, size: int) -> jax.Array:
    """Cutout (DeVries & Taylor, 2017): in each image a size x size square around a uniformly
    drawn centre, clipped at the border, set to zero (the mean pixel, after normalisation).

    x: (B, H, W, C) -> same shape and dtype.
    """
    b, h, w, _ = x.shape
    centre = jax.random.randint(key, (b, 2), 0, jnp.array([h, w]))
    low = centre - size // 2
    rows = (jnp.arange(h)[None, :] >= low[:, :1]) & (jnp.arange(h)[None, :] < low[:, :1] + size)
    cols = (jnp.arange(w)[None, :] >= low[:, 1:]) & (jnp.arange(w)[None, :] < low[:, 1:] + size)
    return jnp.where((rows[:, :, None] & cols[:, None, :])[..., None], jnp.zeros((), x.dtype), x)


def mixup(key: jax.Array, x: jax.Array, targets: jax.Array, alpha: float) -> tuple[jax.Array, jax.Array]:
    """Mixup (Zhang et al., 2018): each image and its target mixed with those of a randomly
    paired image of the batch, λx_i + (1-λ)x_j, one λ ~ Beta(alpha, alpha) per batch, drawn
    without jax.random.beta's rejection loops (resjax.train.beta).

    x: (B, H, W, C), targets: (B, classes) -> same shapes and dtypes.
    """
    k_lam, k_pair = jax.random.split(key)
    lam = beta.sample(k_lam, alpha, alpha)
    pair = jax.random.permutation(k_pair, x.shape[0])
    mixed = (lam * x.astype(jnp.float32) + (1 - lam) * x[pair].astype(jnp.float32)).astype(x.dtype)
    return mixed, lam * targets + (1 - lam) * targets[pair]


def shrink(key: jax.Array, x: jax.Array, side: int, mode: str) -> jax.Array:
    """Progressive resizing's smaller training images (Howard, 2018, fast.ai's DAWNBench
    entries; FFCV's ImageNet recipes): each image of the batch downscaled to side x side
    pixels (mode "resize": linear, antialiased; the whole view at a coarser scale) or a
    random side x side window of it (mode "crop": the same scale, a part of the view).

    x: (B, H, W, C) float -> (B, side, side, C), same dtype.
    """
    b, h, w, c = x.shape
    if mode == "resize":
        return jax.image.resize(x, (b, side, side, c), "linear", antialias=True)
    offsets = jax.random.randint(key, (b, 2), 0, jnp.array([h - side + 1, w - side + 1]))
    return windows(x, offsets, side, side)


def normalise(images: jax.Array, mean: jax.Array, std: jax.Array, dtype) -> jax.Array:
    return ((images.astype(jnp.float32) / 255.0 - mean) / std).astype(dtype)


def norm_argument(mean, std, sharding) -> tuple[jax.Array, jax.Array]:
    """The steps' ``norm``: the per-channel (mean, std) as float32 arrays placed by ``sharding``."""
    return jax.device_put((np.asarray(mean, np.float32), np.asarray(std, np.float32)), sharding)


def norm_shape(channels: int, sharding) -> tuple[jax.ShapeDtypeStruct, jax.ShapeDtypeStruct]:
    """norm_argument's shapes, for compiling before the statistics are known."""
    return (jax.ShapeDtypeStruct((channels,), jnp.float32, sharding=sharding),) * 2


def call_sharding(mesh, steps_per_call: int) -> NamedSharding:
    """How one call's batch, (B, ...) or with several steps per call (K, B, ...), lies on
    the mesh: B split along its data axis."""
    return NamedSharding(mesh, P(None, "data") if steps_per_call > 1 else P("data"))


def several(train_step, scanned=(2,)):
    """``train_step`` K times in one call (lax.scan): fewer dispatches from the host. The
    arguments after the state at positions ``scanned`` carry a leading K axis (a (K, B)
    block of batch indices by default); the others are the same for every step. Returns
    the state after K steps and the last step's metrics."""

    def train_steps(state: State, *args):
        def body(st, per_step):
            full = list(args)
            for i, x in zip(scanned, per_step):
                full[i] = x
            return train_step(st, *full)

        state, metrics = jax.lax.scan(body, state, tuple(args[i] for i in scanned))
        return state, jax.tree.map(lambda m: m[-1], metrics)

    return train_steps


def ema_rate(decay: float, step: jax.Array) -> jax.Array:
    """The weight of step ``step``'s parameters (step >= 1) in their running average:
    (1 - decay) / (1 - decay**step). The average is then the exponentially weighted mean
    of the parameters after steps 1..step alone, as the bias-corrected average that starts
    from zero is (optax.ema with debias; Adam's moments): the first step replaces the
    initial point. With the plain rate 1 - decay the initial point keeps the weight
    decay**step, 37% after 1,000 steps at decay 0.999, and the early evaluations
    measure mostly the untrained network."""
    d = jnp.float32(decay)
    return (1 - d) / (1 - d ** step.astype(jnp.float32))


def donated(config: TrainConfig) -> tuple[int, ...]:
    """The training step's donated arguments (jax.jit's donate_argnums): the state, unless
    config.donate_state is off."""
    return (0,) if config.donate_state else ()


def initial_state(model, tx: optax.GradientTransformation, config: TrainConfig, shape: tuple[int, ...], dtype,
                  key: jax.Array, stem: jax.Array | None = None) -> State:
    """The state a run starts from: ``model`` initialised for images of ``shape`` (H, W, C)
    with ``key``, ``tx``'s state for its parameters and, with ``config.ema_decay``, their
    average; ``stem``: the stem's kernel in place of the initialised one (stem_init)."""
    variables = model.init(key, jnp.zeros((1, *shape), dtype))
    params = variables["params"]
    if stem is not None:
        params = {**params, "stem": {**params["stem"], "kernel": stem}}
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "batch_stats": variables.get("batch_stats", {}),
        **({"ema": params} if config.ema_decay else {}),  # its shape: the first step replaces it (ema_rate)
    }


class Steps(NamedTuple):
    """The optimiser and the pure functions to be jitted (see make_steps)."""

    tx: optax.GradientTransformation
    train_step: Callable
    stream_step: Callable
    eval_step: Callable


def make_steps(model, config: TrainConfig, dtype) -> Steps:
    """The optax optimiser and three pure functions to be jitted.

    train_step(state, images, labels, idx, key, norm, side=None) -> (state, metrics), where
    images and labels are the whole training set on the device and idx the batch's
    indices. stream_step(state, images, labels, norm, side=None) -> (state, metrics) for a
    batch already augmented. side (static: bind it before jitting): train on side x side
    images made by ``shrink`` (config.progressive_resizing); None: at full size.
    eval_step(params, batch_stats, images, labels, mask, norm) -> {correct_V,
    correct_top5_V, loss_V: sums} for the views V = single_view, flip (top-5 counts the
    label among the five highest logits, or all of them with fewer than five classes).
    norm: (mean, std), each (C,) float32, the pixel statistics that normalise the images:
    an argument, not a constant, so that the steps compile before the data is read
    (resjax.train.loop).
    """
    tx = optimizer(config)
    lr = schedule(config)
    # independent of the crops' keys (the feed's): cutout, mixup, stochastic depth (model.drop_path), shrink
    seed = jax.random.key(config.seed)
    cutout_key, mixup_key, drop_key, shrink_key = (jax.random.fold_in(seed, i) for i in (1, 2, 3, 4))
    has_bn = model.norm == "batch"

    def variables(params, batch_stats):
        return {"params": params, **({"batch_stats": batch_stats} if has_bn else {})}

    def loss_fn(params, batch_stats, x, targets, key):
        mutable = ["batch_stats"] if has_bn else False
        out = model.apply(variables(params, batch_stats), x, train=True, mutable=mutable, rngs={"drop_path": key})
        logits, updates = out if has_bn else (out, {})
        # in the logits' dtype: float32 unless the model's float32_head is off
        loss = optax.softmax_cross_entropy(logits, targets.astype(logits.dtype)).mean()
        return loss, (logits, updates.get("batch_stats", batch_stats))

    def train_step(state: State, images, labels, idx, key, norm, side=None):
        return stream_step(state, *training_batch(config, images, labels, idx, key, state["step"]), norm, side)

    def stream_step(state: State, x, y, norm, side=None):
        x = normalise(x, *norm, dtype)
        if config.augment and config.cutout:  # here, not in augment: both pipelines pass through
            x = cutout(jax.random.fold_in(cutout_key, state["step"]), x, config.cutout)
        if side is not None:  # after cutout: its square keeps its share of the image
            x = shrink(jax.random.fold_in(shrink_key, state["step"]), x, side, config.progressive_mode)
        targets = jax.nn.one_hot(y, config.num_classes)  # one-hot: no sharding type errors
        if config.label_smoothing:
            targets = optax.smooth_labels(targets, config.label_smoothing)
        if config.mixup:
            x, targets = mixup(jax.random.fold_in(mixup_key, state["step"]), x, targets, config.mixup)
        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"], state["batch_stats"], x, targets, jax.random.fold_in(drop_key, state["step"])
        )
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        new = {
            "step": state["step"] + 1,
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            "batch_stats": batch_stats,
        }
        if config.ema_decay:
            new["ema"] = optax.incremental_update(new["params"], state["ema"], ema_rate(config.ema_decay, new["step"]))
        metrics = {
            "loss": loss,
            # against each image's dominant label: y itself, except under mixup, where it is the
            # label of whichever image weighs more (an image's own label, half the time, says
            # nothing about whether the training set is fit)
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1)),
            "lr": lr(state["step"]),
            "grad_norm": grad_norm.global_norm(grads),
        }
        return new, metrics

    def eval_step(params, batch_stats, images, labels, mask, norm):
        """Sums over the batch's unmasked images, single-view and flip-averaged (the logits of
        each image and its mirror averaged: the training augmentation flips too)."""
        x = normalise(images, *norm, dtype)
        logits = model.apply(variables(params, batch_stats), x, train=False).astype(jnp.float32)
        mirror = model.apply(variables(params, batch_stats), x[:, :, ::-1], train=False).astype(jnp.float32)
        onehot = jax.nn.one_hot(labels, config.num_classes)
        sums = {}
        for view, out in (("single_view", logits), ("flip", (logits + mirror) / 2)):
            top = jax.lax.top_k(out, min(5, config.num_classes))[1]
            sums[f"correct_{view}"] = jnp.sum((top[:, 0] == labels) & mask)
            sums[f"correct_top5_{view}"] = jnp.sum(jnp.any(top == labels[:, None], -1) & mask)
            sums[f"loss_{view}"] = jnp.sum(jnp.where(mask, optax.softmax_cross_entropy(out, onehot), 0.0))
        return sums

    return Steps(tx, train_step, stream_step, eval_step)
