"""resjax.train.step: learning-rate schedules, label smoothing, augmentation."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from resjax.train import order, step
from resjax.train.config import TrainConfig

NORM = (jnp.zeros(3), jnp.ones(3))  # the steps' pixel statistics (mean, std): images as they are


def test_paper_schedule_divides_by_ten_at_30k_and_50k():
    lr = step.schedule(TrainConfig())
    assert [float(lr(s)) for s in (0, 29_999, 30_000, 50_000)] == pytest.approx([0.05, 0.05, 0.005, 0.0005])


def test_cosine_schedule_warms_up_then_decays_to_zero_at_the_last_step():
    cfg = TrainConfig(lr_schedule="cosine", learning_rate=0.2, warmup_steps=10, steps=110)
    lr = step.schedule(cfg)
    assert [float(lr(s)) for s in (0, 5, 10, 60, 110)] == pytest.approx([0.0, 0.1, 0.2, 0.1, 0.0], abs=1e-6)


def test_unknown_schedule_is_refused_by_the_configuration():
    with pytest.raises(ValueError, match="'piecewise', 'cosine' or 'exponential'"):
        TrainConfig(lr_schedule="linear")


def test_label_smoothing_raises_the_loss_of_a_confident_correct_prediction():
    class Confident:  # a stand-in model: logits 20 on the true class (labels are all 0)
        norm = None

        def apply(self, variables, x, train=False, mutable=False, rngs=None):
            return jnp.broadcast_to(jnp.array([20.0] + [0.0] * 9), (x.shape[0], 10))

    losses = []
    for smoothing in (0.0, 0.1):
        cfg = dataclasses.replace(TrainConfig(augment=False), label_smoothing=smoothing)
        train_step = step.make_steps(Confident(), cfg, jnp.float32).train_step
        state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.zeros(())}, "opt_state": (), "batch_stats": {}}
        state["opt_state"] = step.optimizer(cfg).init(state["params"])
        images, labels = jnp.zeros((4, 8, 8, 3), jnp.uint8), jnp.zeros(4, jnp.int32)
        _, metrics = train_step(state, images, labels, jnp.arange(4), jax.random.key(0), NORM)
        losses.append(float(metrics["loss"]))
    assert losses[0] < 1e-6
    # smoothed target: 0.91 on the true class, 0.01 elsewhere; cross-entropy = 0.09·20 + log Z
    assert losses[1] == pytest.approx(0.09 * 20 + np.log(np.exp(20) + 9) - 20, rel=1e-5)


def test_augmentation_crops_and_flips_within_the_padding():
    images = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.uint8).reshape(2, 8, 8, 3)
    out = step.augment(jax.random.key(0), images)
    assert out.shape == images.shape and out.dtype == images.dtype
    # every output pixel is zero padding or a pixel of the same image
    for o, i in zip(np.asarray(out), np.asarray(images)):
        assert set(map(tuple, o.reshape(-1, 3))) <= set(map(tuple, i.reshape(-1, 3))) | {(0, 0, 0)}


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """image (H, W, C) moved down dy and right dx pixels, zero-filled."""
    h, w, _ = image.shape
    out = np.zeros_like(image)
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                      max(-dx, 0):w - max(dx, 0)]
    return out


@pytest.mark.parametrize("padding", [0, 2, 4])
def test_crops_shift_each_image_by_every_offset_up_to_the_padding_and_no_further(padding):
    n = 1000
    images = np.asarray(jax.random.randint(jax.random.key(1), (n, 8, 8, 3), 1, 256), np.uint8)  # no zero pixel
    config = TrainConfig(crop_padding=padding)
    out, _ = step.training_batch(config, jnp.asarray(images), jnp.zeros(n, jnp.int32), jnp.arange(n),
                                 jax.random.key(0), 3)
    offsets = range(-padding, padding + 1)
    seen = set()
    for o, i in zip(np.asarray(out), images):
        views = {(dy, dx, f) for dy in offsets for dx in offsets for f in (False, True)
                 if np.array_equal(o, shifted(i[:, ::-1] if f else i, dy, dx))}
        assert len(views) == 1  # the image shifted within the padding, mirrored or not
        seen |= views
    assert {(dy, dx) for dy, dx, _ in seen} == {(dy, dx) for dy in offsets for dx in offsets}
    assert {f for *_, f in seen} == {False, True}


def test_alternating_flips_mirror_each_image_in_every_other_epoch_and_keep_the_crops():
    n, batch = 12, 8  # 3 epochs in 4.5 steps: batches straddle epoch boundaries
    images = jax.random.randint(jax.random.key(1), (n, 8, 8, 3), 0, 256).astype(jnp.uint8)
    labels = jnp.arange(n)
    alternating = TrainConfig(flip="alternating", seed=5)
    seen = {}  # record -> orientation in each epoch
    for s in range(4):
        idx = jnp.asarray((np.arange(batch) + 5 * s) % n)  # any order: flips follow (record, epoch)
        x, y = step.training_batch(alternating, images, labels, idx, jax.random.key(0), s)
        plain, _ = step.training_batch(TrainConfig(seed=5), images, labels, idx, jax.random.key(0), s)
        crops = step.augment(jax.random.fold_in(jax.random.key(0), s), images[idx], jnp.zeros(batch, bool))
        np.testing.assert_array_equal(y, labels[idx])
        epochs = (s * batch + np.arange(batch)) // n
        flips = order.alternating_flips(5, np.asarray(idx), epochs)
        for i, f in enumerate(flips):  # the crops of flip="random", mirrored exactly where the order says
            np.testing.assert_array_equal(x[i], crops[i][:, ::-1] if f else crops[i])
            assert np.array_equal(plain[i], crops[i]) or np.array_equal(plain[i], crops[i][:, ::-1])
            seen.setdefault(int(idx[i]), {})[int(epochs[i])] = bool(f)
    pairs = [(by[e], by[e + 1]) for by in seen.values() for e in by if e + 1 in by]
    assert len(pairs) >= 8 and all(a != b for a, b in pairs)  # seen both ways in consecutive epochs


def test_alternating_flips_are_one_function_on_the_host_and_the_device():
    records = np.arange(50_000)
    host = order.first_flip(7, records)
    np.testing.assert_array_equal(host, np.asarray(order.first_flip(7, jnp.asarray(records), jnp)))
    assert 0.49 < host.mean() < 0.51 and 0.49 < np.mean(host[1:] == host[:-1]) < 0.51  # balanced, no runs
    np.testing.assert_array_equal(order.alternating_flips(7, records, 1), ~host)
    np.testing.assert_array_equal(order.alternating_flips(7, records, 4), host)
    assert not np.array_equal(order.first_flip(8, records), host)  # another seed, other images


def test_flip_evaluation_averages_the_logits_of_the_image_and_its_mirror():
    class LeftEdge:  # a stand-in model: class 0 scores the leftmost column, class 1 the rightmost
        norm = None

        def apply(self, variables, x, train=False, mutable=False, rngs=None):
            return jnp.stack([x[:, 0, 0, 0], x[:, 0, -1, 0]] + [jnp.zeros(x.shape[0])] * 8, axis=-1)

    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[0, :, 0] = 255  # bright left edge: class 0 without flips, a tie with them
    images[1, :, -1] = 255
    labels, mask = jnp.array([0, 1]), jnp.array([True, True])
    eval_step = step.make_steps(LeftEdge(), TrainConfig(), jnp.float32).eval_step
    sums = eval_step({}, {}, jnp.asarray(images), labels, mask, (jnp.zeros(3), jnp.ones(3) / 255.0))
    assert int(sums["correct_single_view"]) == 2
    # flipped and averaged: both classes score 127.5, the tie goes to class 0
    assert int(sums["correct_flip"]) == 1
    assert float(sums["loss_flip"]) == pytest.approx(2 * np.log(2 + 8 * np.exp(-127.5)), rel=1e-6)


def test_cutout_zeroes_one_clipped_square_per_image_and_nothing_else():
    x = jnp.ones((64, 10, 12, 3))
    out = np.asarray(step.cutout(jax.random.key(0), x, 4))
    sizes = set()
    for image in out:
        zero = np.all(image == 0, axis=-1)
        assert np.all((image == 0) | (image == 1)) and np.all(zero == np.any(image == 0, axis=-1))
        rows, cols = np.flatnonzero(zero.any(1)), np.flatnonzero(zero.any(0))
        # the zeroed pixels form one rectangle: a 4 x 4 square, cut by the border
        assert zero.sum() == len(rows) * len(cols) and np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4
        sizes.add((len(rows), len(cols)))
    assert (4, 4) in sizes and len(sizes) > 1  # whole squares inside, clipped ones at the border


def test_cutout_reaches_the_network_in_training_only_when_augmenting():
    class PixelSum:  # a stand-in model: class 0 scores the sum of the normalised input
        norm = None

        def apply(self, variables, x, train=False, mutable=False, rngs=None):
            return jnp.stack([x.sum((1, 2, 3)) / 100.0] + [jnp.zeros(x.shape[0])] * 9, axis=-1)

    def first_loss(**fields):
        cfg = dataclasses.replace(TrainConfig(), **fields)
        train_step = step.make_steps(PixelSum(), cfg, jnp.float32).train_step
        state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.zeros(())}, "opt_state": (), "batch_stats": {}}
        state["opt_state"] = step.optimizer(cfg).init(state["params"])
        images, labels = jnp.full((4, 8, 8, 3), 255, jnp.uint8), jnp.zeros(4, jnp.int32)
        return float(train_step(state, images, labels, jnp.arange(4), jax.random.key(0), NORM)[1]["loss"])

    plain = first_loss(augment=False)
    assert first_loss(augment=False, cutout=4) == plain  # no augmentation, no cutout
    assert first_loss(augment=True, cutout=4) > first_loss(augment=True)  # fewer bright pixels: less for class 0
    with pytest.raises(ValueError, match="cutout"):
        TrainConfig(cutout=-1)


def test_mixup_mixes_images_and_targets_with_one_weight_and_a_pairing():
    n = 8
    x = jnp.broadcast_to(jnp.arange(n, dtype=jnp.float32)[:, None, None, None], (n, 4, 4, 3))
    targets = jnp.eye(n)  # image i has class i: the targets reveal the pairing
    weights = set()
    for seed in range(5):
        mixed, mixed_targets = step.mixup(jax.random.key(seed), x, targets, 1.0)
        t = np.asarray(mixed_targets)
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
        lam = float(np.min(np.diag(t)))  # λ, or 1 where an image was paired with itself
        pair = [int(np.argmax(row - np.eye(n)[i] * row[i])) if row[i] < 1 - 1e-6 else i for i, row in enumerate(t)]
        assert sorted(pair) == list(range(n))  # a permutation of the batch
        expected = lam * np.arange(n) + (1 - lam) * np.array(pair)
        np.testing.assert_allclose(np.asarray(mixed)[:, 0, 0, 0], expected, rtol=1e-5, atol=1e-5)
        assert 0 <= lam <= 1
        weights.add(round(lam, 4))
    assert len(weights) == 5  # a new λ for every key


class RowReader:
    """A stand-in model that reads the class off the image: class k scores w times row k's
    mean (k < 8; classes 8 and 9 never win)."""

    norm = None

    def apply(self, variables, x, train=False, mutable=False, rngs=None):
        rows = variables["params"]["w"] * x.mean((2, 3))
        return jnp.concatenate([rows, jnp.full((x.shape[0], 2), -1e3)], axis=-1)


def test_training_accuracy_under_mixup_is_against_each_mixed_images_dominant_label():
    # image c is bright in row c only: the reader classifies every mixed image as the label
    # that weighs more in it, so it is right on every image, whichever way λ falls
    images = jnp.asarray(255 * np.eye(8)[:, :, None, None] * np.ones((8, 8, 8, 3)), jnp.uint8)
    labels = jnp.arange(8, dtype=jnp.int32)
    for seed in range(5):  # five λ: some below 1/2, where an image's own label is the lighter one
        cfg = dataclasses.replace(TrainConfig(), augment=False, mixup=1.0, seed=seed)
        train_step = step.make_steps(RowReader(), cfg, jnp.float32).train_step
        state = scaled_sum_state(cfg, w=1.0)  # RowReader has ScaledSum's one parameter
        metrics = train_step(state, images, labels, jnp.arange(8), jax.random.key(0), NORM)[1]
        assert float(metrics["accuracy"]) == 1.0


class ScaledSum:
    """A stand-in model with one parameter: class 0 scores w times the input's mean."""

    norm = None

    def apply(self, variables, x, train=False, mutable=False, rngs=None):
        score = variables["params"]["w"] * x.mean((1, 2, 3))
        return jnp.stack([score] + [jnp.zeros(x.shape[0])] * 9, axis=-1)


def scaled_sum_state(cfg, w=0.5):
    state = {"step": jnp.zeros((), jnp.int32), "params": {"w": jnp.array(w)}, "batch_stats": {}}
    state["opt_state"] = step.optimizer(cfg).init(state["params"])
    return state


def test_ema_averages_the_parameters_after_every_step():
    cfg = dataclasses.replace(TrainConfig(), ema_decay=0.75, augment=False, learning_rate=0.5, weight_decay=0.0)
    train_step = step.make_steps(ScaledSum(), cfg, jnp.float32).train_step
    state = {**scaled_sum_state(cfg), "ema": {"w": jnp.array(0.5)}}
    images, labels = jnp.full((4, 8, 8, 3), 255, jnp.uint8), jnp.zeros(4, jnp.int32)
    seen = []
    for t in range(1, 4):
        state, _ = train_step(state, images, labels, jnp.arange(4), jax.random.key(0), NORM)
        seen.append(float(state["params"]["w"]))
        weights = [0.75 ** (t - s) for s in range(1, t + 1)]  # of the iterates 1..t; none for the initial 0.5
        expected = sum(w * p for w, p in zip(weights, seen)) / sum(weights)
        np.testing.assert_allclose(float(state["ema"]["w"]), expected, rtol=1e-6)
    assert len(set(seen)) == 3  # the parameters moved, and the average followed
    np.testing.assert_allclose(float(step.ema_rate(0.999, jnp.array(1))), 1.0)  # the first step replaces the start
    np.testing.assert_allclose(float(step.ema_rate(0.999, jnp.array(10**6))), 1e-3, rtol=1e-4)  # then 1 - decay


def test_mixup_changes_the_loss_only_when_on():
    def first_loss(**fields):
        cfg = dataclasses.replace(TrainConfig(), augment=False, **fields)
        train_step = step.make_steps(ScaledSum(), cfg, jnp.float32).train_step
        images = jnp.concatenate([jnp.full((4, 8, 8, 3), 255, jnp.uint8), jnp.zeros((4, 8, 8, 3), jnp.uint8)])
        labels = jnp.array([0] * 4 + [1] * 4, jnp.int32)
        state = scaled_sum_state(cfg)
        return float(train_step(state, images, labels, jnp.arange(8), jax.random.key(0), NORM)[1]["loss"])

    assert first_loss(mixup=0.0) == first_loss()
    assert first_loss(mixup=1.0) != first_loss()
    with pytest.raises(ValueError, match="mixup"):
        TrainConfig(mixup=-1.0)
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


def test_shrink_downscales_the_whole_image_or_takes_a_window_of_it():
    rows = jnp.broadcast_to(jnp.arange(8.0)[None, :, None, None], (64, 8, 8, 3))  # pixel value: its row
    resized = np.asarray(step.shrink(jax.random.key(0), rows, 4, "resize"))
    assert resized.shape == (64, 4, 4, 3)
    # output row r averages input rows 2r and 2r+1 (inside, where the kernel is whole)
    np.testing.assert_allclose(resized[:, 1:3], np.broadcast_to(np.array([2.5, 4.5])[:, None, None], (64, 2, 4, 3)),
                               atol=1e-5)
    x = jnp.arange(64 * 8 * 8 * 3, dtype=jnp.float32).reshape(64, 8, 8, 3)
    windows = np.asarray(step.shrink(jax.random.key(0), x, 5, "crop"))
    assert windows.shape == (64, 5, 5, 3)
    corners = set()
    for window, image in zip(windows, np.asarray(x)):
        r, c = np.argwhere(image[..., 0] == window[0, 0, 0])[0]
        np.testing.assert_array_equal(window, image[r : r + 5, c : c + 5])  # a window, inside the image
        corners.add((r, c))
    assert corners == {(r, c) for r in range(4) for c in range(4)}  # every position drawn


def test_progressive_resizing_feeds_the_network_smaller_images_only_where_asked():
    seen = []

    class Recorder(ScaledSum):
        def apply(self, variables, x, train=False, mutable=False, rngs=None):
            seen.append(x.shape)
            return super().apply(variables, x, train, mutable, rngs)

    for mode in ("resize", "crop"):
        cfg = dataclasses.replace(TrainConfig(), progressive_resizing=((100, 4),), progressive_mode=mode)
        train_step = step.make_steps(Recorder(), cfg, jnp.float32).train_step
        images, labels = jnp.full((4, 8, 8, 3), 255, jnp.uint8), jnp.zeros(4, jnp.int32)
        for side in (4, None):
            train_step(scaled_sum_state(cfg), images, labels, jnp.arange(4), jax.random.key(0), NORM, side)
    assert seen == [(4, 4, 4, 3), (4, 8, 8, 3)] * 2


def tiny_run(donate: bool):
    """(config, steps, initial state) of a one-block network on 8x8 images, 2 classes,
    batch 4, with the state donated to the training step or not."""
    from resjax import models

    cfg = TrainConfig(model={"stem": (3, 4, 1), "widths": (8,), "blocks": (1,), "strides": (1,)}, num_classes=2,
                      batch_size=4, donate_state=donate)
    model = models.ResNet(num_classes=2, dtype=jnp.float32, **cfg.model)
    steps = step.make_steps(model, cfg, jnp.float32)
    return cfg, steps, step.initial_state(model, steps.tx, cfg, (8, 8, 3), jnp.float32, jax.random.key(0))


@pytest.mark.parametrize("donate", [True, False])
def test_donate_state_decides_whether_both_pipelines_steps_update_the_state_in_place(donate):
    from resjax.train import loop, stream

    cfg, steps, state = tiny_run(donate)
    images, labels = jnp.zeros((4, 8, 8, 3), jnp.uint8), jnp.zeros(4, jnp.int32)
    mesh = loop.make_mesh()
    device = loop.DeviceFeed.jit(cfg, mesh, steps).lower(state, images, labels, jnp.arange(4), jax.random.key(1), NORM)
    streamed = stream.StreamFeed.jit(cfg, mesh, steps).lower(state, images, labels, NORM)
    for lowered in (device, streamed):  # XLA's aliasing of the state's buffers to the new state's
        assert ("input_output_alias" in lowered.compile().as_text().split("\n", 1)[0]) is donate


def test_a_step_with_the_state_donated_or_not_gives_bitwise_the_same_state():
    from resjax.train import loop

    states = []
    images = jax.random.randint(jax.random.key(2), (4, 8, 8, 3), 0, 256).astype(jnp.uint8)
    for donate in (True, False):
        cfg, steps, state = tiny_run(donate)
        fn = loop.DeviceFeed.jit(cfg, loop.make_mesh(), steps)
        for _ in range(2):
            state, _ = fn(state, images, jnp.array([0, 1, 0, 1]), jnp.arange(4), jax.random.key(1), NORM)
        states.append(jax.device_get(state))
    jax.tree.map(np.testing.assert_array_equal, *states)


def test_weight_decay_reaches_every_kernel_stacked_or_not_and_nothing_else():
    cfg = TrainConfig(learning_rate=0.1, weight_decay=0.5, momentum=0.0)
    params = {"kernel": jnp.ones((3, 3, 2, 2)), "stacked": jnp.ones((4, 3, 3, 2, 2)),  # model.scan_blocks's
              "scale": jnp.ones(2), "bias": jnp.ones(2)}
    tx = step.optimizer(cfg)
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    moved = {name: float(u.reshape(-1)[0]) for name, u in updates.items()}
    assert moved == pytest.approx({"kernel": -0.05, "stacked": -0.05, "scale": 0.0, "bias": 0.0})
