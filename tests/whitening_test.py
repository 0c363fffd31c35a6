"""The patch-whitening initialisation of the stem (stem_init="whitening")."""

import numpy as np
import pytest

from resjax import models
from resjax.train import config, loop, whitening


def correlated_images(n=300, size=12, seed=0):
    """uint8 images whose neighbouring pixels and channels are correlated, like photographs."""
    rng = np.random.default_rng(seed)
    smooth = rng.normal(size=(n, size + 2, size + 2, 1)).cumsum(1).cumsum(2)[:, 2:, 2:]
    x = smooth + 0.3 * rng.normal(size=(n, size, size, 3))
    return np.clip(128 + 12 * x, 0, 255).astype(np.uint8)


def test_whitened_filters_decorrelate_the_patches_at_the_papers_output_scale():
    images = correlated_images()
    mean, std = images.reshape(-1, 3).mean(0) / 255, images.reshape(-1, 3).std(0) / 255
    kernel = whitening.stem_kernel(images, mean, std, 3, 16)
    assert kernel.shape == (3, 3, 3, 16) and kernel.dtype == np.float32
    covariance = whitening.patch_covariance(images, mean, std, 3)
    filters = kernel.reshape(27, 16).astype(np.float64)
    outputs = filters.T @ covariance @ filters  # the filters' output covariance over the patches
    scale2 = 27 * models.paper_std(3, 16, residual=False) ** 2  # the Section 4 stem's output variance: 3/16
    eigenvalues = np.sort(np.linalg.eigvalsh(covariance))[::-1][:16]
    np.testing.assert_allclose(outputs, scale2 * np.diag(eigenvalues / (eigenvalues + whitening.EPS)), atol=1e-6)
    assert outputs[0, 0] == pytest.approx(scale2, rel=1e-3)  # the main direction, far above EPS: scale2 exactly


def test_patch_covariance_is_that_of_the_flattened_kernel_windows():
    images = correlated_images(n=7, size=6)
    mean, std = np.full(3, 0.5), np.full(3, 0.2)
    x = (images / 255.0 - mean) / std
    patches = np.stack([x[n, i:i + 3, j:j + 3, :].reshape(-1) for n in range(7) for i in range(4) for j in range(4)])
    np.testing.assert_allclose(whitening.patch_covariance(images, mean, std, 3), np.cov(patches.T, bias=True),
                               atol=1e-12)


def test_a_stem_wider_than_its_patches_is_refused_before_training(folder):
    with pytest.raises(ValueError, match="the stem's 4 channels exceed the 3 dimensions of its 1x1x3 patches"):
        loop.validate(config.load("tiny").override(["stem_init=whitening", "model.stem=[1,4,1]", "num_classes=2"]),
                      ["dark", "light"], (None, None), (8, 8, 3))


def test_the_trainer_starts_from_the_whitened_stem_and_refuses_streamed_data(tmp_path, folder):
    cfg = config.load("tiny").override([f"data={folder}", "num_classes=2", "steps=2", "eval_every=2",
                                        "checkpoint_every=2", "stem_init=whitening"])
    train_set, test_set = loop.load_splits(cfg)
    trainer = loop.Trainer(cfg, tmp_path, train_set, test_set, progress=False)
    trainer._prepare()
    state = trainer.init_state()
    k, c, _ = trainer.model.stem
    expected = whitening.stem_kernel(train_set.images, trainer.feed.mean, trainer.feed.std, k, c)
    np.testing.assert_array_equal(state["params"]["stem"]["kernel"], expected)
    random = loop.Trainer(cfg.override(["stem_init=random"]), tmp_path / "r", train_set, test_set, progress=False)
    random._prepare()
    assert not np.array_equal(random.init_state()["params"]["stem"]["kernel"], expected)
    streamed = loop.load_splits(cfg, decode=False)
    with pytest.raises(ValueError, match="set input_pipeline='device'"):
        loop.Trainer(cfg.override(["input_pipeline=stream"]), tmp_path / "s", *streamed, progress=False)
