"""Generated image folders: ImageNet-shaped data for tests, benchmarks and smoke runs.

``write_image_folder(root)`` writes ``root/<split>/<class>/NNNN.jpg``: JPEGs of varying
sizes whose class is visible (each class its own colour and stripe frequency, under
noise), so a network can learn them and a pipeline has real decoding work to do.
"""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image


def image(rng: np.random.Generator, label: int, classes: int, width: int, height: int,
          noise: float = 12.0) -> np.ndarray:
    """(height, width, 3) uint8: class ``label``'s colour and stripes, plus Gaussian noise
    of standard deviation ``noise`` (more noise, larger and slower JPEGs)."""
    hue = np.array([np.cos(2 * np.pi * (label / classes + k / 3)) for k in range(3)])
    x = np.arange(width)[None, :, None] / width
    stripes = np.sin(2 * np.pi * (label + 1) * x + rng.uniform(0, 2 * np.pi))
    pixels = 128 + 60 * hue[None, None, :] * stripes + rng.normal(0, noise, (height, width, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def write_image_folder(root, classes: int = 10, per_class: dict[str, int] | None = None,
                       sizes: tuple[int, int] = (256, 500), quality: int = 90, noise: float = 12.0,
                       seed: int = 0) -> pathlib.Path:
    """Writes ``per_class[split]`` JPEGs per class and split (default 180 train, 20 test: 2,000
    images in 10 classes), each side drawn uniformly from ``sizes``; returns root."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (per_class or {"train": 180, "test": 20}).items():
        for label in range(classes):
            folder = root / split / f"class{label:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                width, height = rng.integers(sizes[0], sizes[1] + 1, 2)
                Image.fromarray(image(rng, label, classes, int(width), int(height), noise)).save(
                    folder / f"{i:04d}.jpg", quality=quality)
    return root
