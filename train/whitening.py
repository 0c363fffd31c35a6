"""Patch-whitening initialisation of the stem, from the training images.

The stem's filters start along the principal directions of the training set's patches
(Page, 2018, "How to train your ResNet"; Jordan, 2024, "94% on CIFAR-10 in 3.29 seconds":
there a frozen first layer), each scaled so that its output has the variance that the
Section 4 initialisation gives on unit-variance input, 27·σ² for the 3x3 stem of 3
channels with σ = 1/(k√c): only the filters' directions change, not the signal's scale
that the rest of the network (fixup's identity blocks, the fixed head) starts from. The
filters stay trainable. ``TrainConfig.stem_init="whitening"``.
"""

from __future__ import annotations

import numpy as np

from resjax import models

EPS = 5e-4  # added to each eigenvalue: the smallest directions are not blown up (airbench's value)
IMAGES = 5_000  # images whose patches give the covariance (evenly spaced through the set)
CHUNK = 250  # images per pass: 250 CIFAR images' 3x3 patches are 49 MB in float64


def check(kernel: int, channels: int, c_in: int) -> int:
    """The patches' dimension k²C, or ValueError if the stem has more channels than that."""
    dims = kernel * kernel * c_in
    if channels > dims:
        raise ValueError(f"stem_init='whitening': the stem's {channels} channels exceed the {dims} dimensions of its "
                         f"{kernel}x{kernel}x{c_in} patches; use stem_init='random' or a larger stem kernel.")
    return dims


def patch_covariance(images: np.ndarray, mean: np.ndarray, std: np.ndarray, kernel: int) -> np.ndarray:
    """Covariance of the kernel x kernel patches (no padding) of the normalised images,
    flattened as a convolution kernel's (kh, kw, c) axes.

    images: (N, H, W, C) uint8, mean and std: (C,) on the [0, 1] scale -> (k²C, k²C) float64.
    """
    dims = kernel * kernel * images.shape[-1]
    total, outer, count = np.zeros(dims), np.zeros((dims, dims)), 0
    for start in range(0, len(images), CHUNK):
        x = (images[start : start + CHUNK].astype(np.float64) / 255.0 - mean) / std
        windows = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(1, 2))  # (N, H', W', C, k, k)
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dims)
        total += patches.sum(0)
        outer += patches.T @ patches
        count += len(patches)
    centre = total / count
    return outer / count - np.outer(centre, centre)


def stem_kernel(images: np.ndarray, mean: np.ndarray, std: np.ndarray, kernel: int, channels: int) -> np.ndarray:
    """The whitened stem: filter j along the j-th principal direction of the patches, scaled
    by scale / √(λ_j + EPS) with scale = √(k²C)·σ, the output standard deviation of the
    Section 4 stem (σ = 1/(k√channels)) on unit-variance input.

    images: (N, H, W, C) uint8 (IMAGES of them evenly spaced are used) -> (k, k, C, channels) float32.
    """
    c_in = images.shape[-1]
    dims = check(kernel, channels, c_in)
    sample = images[:: max(1, len(images) // IMAGES)][:IMAGES]
    eigenvalues, vectors = np.linalg.eigh(patch_covariance(sample, mean, std, kernel))
    top = np.argsort(eigenvalues)[::-1][:channels]
    scale = np.sqrt(dims) * models.paper_std(kernel, channels, residual=False)
    filters = vectors[:, top] * (scale / np.sqrt(np.maximum(eigenvalues[top], 0.0) + EPS))
    return filters.reshape(kernel, kernel, c_in, channels).astype(np.float32)
