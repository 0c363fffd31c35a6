"""Data sets as in-memory arrays (the device pipeline): image folders, tensorflow-datasets, and an embedded default.

Image folders: ``split/class/image`` trees, as a directory or a ``.tar.gz``.
tensorflow-datasets: ``load_tfds("cifar10", "train")`` reads a *prepared* data set with
``tfds.data_source``, which needs no TensorFlow (docs/data.md says how to prepare one).

``load_image_folder("cifar10-jpeg/train.tar.gz")`` reads the CIFAR-10 JPEGs shipped
as ``cifar10/train/<class>/NNNN.jpg`` into memory: uint8 images (N, H, W, C), int
labels (N,) and the sorted class names. Class = the image's folder, split = the
folder above it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os

import numpy as np

from . import transforms
from .records import Records, open_folder, open_tfds


@dataclasses.dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64, indices into class_names
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def digits(split: str) -> ImageSet:
    """The embedded default: scikit-learn's 1,797 real 8x8 handwritten digits (no download).

    Pixel values 0..16 are scaled to 0..255 and the images replicated to 3 channels; a
    fixed shuffle puts 1,500 in "train" and 297 in "test".
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None].repeat(3, axis=-1)
    order = np.random.default_rng(0).permutation(len(images))
    part = {"train": order[:1500], "test": order[1500:]}
    if split not in part:
        raise ValueError(f"the digits data set has splits 'train' and 'test', not {split!r}.")
    return ImageSet(images[part[split]], bunch.target[part[split]].astype(np.int64), tuple(map(str, range(10))))


def load_tfds(name: str, split: str, data_dir: str | None = None) -> ImageSet:
    """Reads a prepared tensorflow-datasets image data set (cifar10, cifar100, imagenet2012, ...)
    into memory through ``tfds.data_source`` (resjax.train.records.open_tfds: no TensorFlow).

    Raises:
      ImportError: tensorflow-datasets is not installed (``pip install 'resjax[data]'``).
      FileNotFoundError: the data set is not prepared under data_dir (or $TFDS_DATA_DIR).
    """
    return in_memory(open_tfds(name, split, data_dir), f"tfds:{name}")


def load_image_folder(path, split: str | None = None) -> ImageSet:
    """Reads and decodes every image of ``split`` (all splits when None) under a folder or tarball.

    Raises:
      FileNotFoundError: path missing (says what layout is expected).
      ValueError: no images found, a corrupt image (named), images of different sizes, or a
        tarball that is truncated or not a tar archive.
    """
    return in_memory(open_folder(path, split), str(path))


def in_memory(records: Records, where: str) -> ImageSet:
    """Every record decoded (threads: Pillow decodes outside the GIL). Raises ValueError
    for a corrupt image (named) or images of different sizes."""
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        rows = list(pool.map(functools.partial(transforms.decode_record, records), range(len(records)), chunksize=256))
    shapes = {image.shape for image, _ in rows}
    if len(shapes) != 1:
        raise ValueError(f"images under {where} differ in size ({sorted(shapes)[:3]}...); resize them first, or "
                         "stream them with augmentation='imagenet' (random-resized crops to image_size).")
    labels = np.array([label for _, label in rows], dtype=np.int64)
    names = records.class_names or tuple(str(i) for i in range(int(labels.max()) + 1))
    return ImageSet(np.stack([image for image, _ in rows]), labels, names)
