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
import multiprocessing
import os
from collections.abc import Sequence

import numpy as np

from . import transforms
from .records import Records, open_folder, open_tfds

CHUNK = 1024  # images per task of a decoding process
NICE = 10  # a decoding process's niceness above the trainer's


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


def load_image_folder(path, split: str | None = None, workers: int | None = None) -> ImageSet:
    """Reads and decodes every image of ``split`` (all splits when None) under a folder or
    tarball, in ``workers`` processes (in_memory_splits).

    Raises:
      FileNotFoundError: path missing (says what layout is expected).
      ValueError: no images found, a corrupt image (named), images of different sizes, or a
        tarball that is truncated or not a tar archive.
    """
    return in_memory(open_folder(path, split), str(path), workers)


def in_memory(records: Records, where: str, workers: int | None = None) -> ImageSet:
    """Every record decoded; see in_memory_splits."""
    return in_memory_splits([records], where, workers)[0]


def in_memory_splits(splits: Sequence[Records], where: str, workers: int | None = None) -> list[ImageSet]:
    """Every record of each split decoded: encoded images in up to ``workers`` processes
    (None: one per core), each given at least two chunks of CHUNK images; with fewer, or
    workers=0, or tensorflow-datasets records (decoded when read), in this process.

    Processes, because Pillow holds the GIL for most of a small JPEG: CIFAR-10's 50,000
    training images took 9.4 s in one thread, 15.2 s in a pool of threads and 5.6 s in
    two processes on a 2-core CPU. Like the streaming pipeline's workers they are spawned,
    so a script that calls this needs the ``if __name__ == "__main__":`` guard.

    Raises ValueError for a corrupt image (named) or images of different sizes; RuntimeError
    when a worker process dies (says why that happens and what to do).
    """
    chunks = [(r, range(a, min(a + CHUNK, len(r)))) for r in splits for a in range(0, len(r), CHUNK)]
    rows = [[r[i] for i in part] for r, part in chunks]
    tasks = [([data for data, _ in chunk], [r.name(i) for i in part]) for chunk, (r, part) in zip(rows, chunks)]
    workers = (os.cpu_count() or 1) if workers is None else workers
    if not all(r.encoded for r in splits):  # tfds records arrive decoded: nothing for processes to do
        workers = 0
    workers = min(workers, len(chunks) // 2)  # each at least two chunks: about the time to spawn one
    parts = _in_processes(workers, tasks) if workers > 1 else [transforms.decode_many(*task) for task in tasks]
    sets, done = [], 0
    for r in splits:
        count = -(-len(r) // CHUNK)
        labels = [label for chunk in rows[done:done + count] for _, label in chunk]
        sets.append(_image_set(r, parts[done:done + count], labels, where))
        done += count
    return sets


def _in_processes(workers: int, tasks) -> list:
    context = multiprocessing.get_context("spawn")  # fork would copy JAX's threads (and their locks)
    try:  # niced: the steps compile meanwhile, and on a GPU XLA's autotuner, timing kernels, needs its thread
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=os.nice,
                                                    initargs=(NICE,)) as pool:
            return list(pool.map(transforms.decode_many, *zip(*tasks)))
    except concurrent.futures.process.BrokenProcessPool:
        raise RuntimeError(
            "a process decoding images died. Spawned workers run the calling script again: guard its "
            "entry with `if __name__ == \"__main__\":`, or decode in this process (loader_workers=0, or "
            "workers=0); it also happens when the machine runs out of memory."
        ) from None


def _image_set(records: Records, parts: list, labels: list[int], where: str) -> ImageSet:
    """An ImageSet from decode_many's parts of ``records``, in order."""
    shapes = {image.shape for part in parts for image in (part[:1] if isinstance(part, np.ndarray) else part)}
    if len(shapes) != 1:
        raise ValueError(f"images under {where} differ in size ({sorted(shapes)[:3]}...); resize them first, or "
                         "stream them with augmentation='imagenet' (random-resized crops to image_size).")
    labels = np.array(labels, dtype=np.int64)
    names = records.class_names or tuple(str(i) for i in range(int(labels.max()) + 1))
    return ImageSet(np.concatenate(parts), labels, names)
