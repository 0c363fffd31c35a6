"""Data sets as in-memory arrays: image folders, tensorflow-datasets, and an embedded default.

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
import io
import os
import pathlib
import tarfile
import zlib

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64, indices into class_names
    class_names: tuple[str, ...]


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
    through ``tfds.data_source``: array_record files, read as NumPy, no TensorFlow.

    Raises:
      ImportError: tensorflow-datasets is not installed (``pip install 'resjax[data]'``).
      FileNotFoundError: the data set is not prepared under data_dir (or $TFDS_DATA_DIR).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            "reading tensorflow-datasets needs the package: pip install 'resjax[data]' (no TensorFlow needed)."
        ) from None
    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises several types for a missing or unprepared data set
        raise FileNotFoundError(
            f"tensorflow-datasets has no prepared {name!r} (split {split!r}) under "
            f"{data_dir or os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets')}: prepare it once in the "
            f"array_record format, see docs/data.md ({type(e).__name__}: {e})"
        ) from None
    rows = [source[i] for i in range(len(source))]
    if not rows:
        raise ValueError(f"tensorflow-datasets {name!r} split {split!r} is empty.")
    images = np.stack([np.asarray(r["image"], dtype=np.uint8) for r in rows])
    labels = np.array([int(r["label"]) for r in rows], dtype=np.int64)
    info = getattr(source, "dataset_info", None)
    try:
        names = tuple(info.features["label"].names)
    except (AttributeError, KeyError, TypeError):
        names = ()
    return ImageSet(images, labels, names or tuple(str(i) for i in range(int(labels.max()) + 1)))


def _members(path: pathlib.Path, split: str | None):
    """Yields (split, class, name, bytes) for every image under path."""
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield file.parent.parent.name, file.parent.name, str(file), file.read_bytes()
        return
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            parts = pathlib.PurePosixPath(member.name).parts
            if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES) and len(parts) >= 2:
                grand = parts[-3] if len(parts) >= 3 else ""
                if split is None or grand == split:
                    yield grand, parts[-2], member.name, tar.extractfile(member).read()


def _decode(item):
    from PIL import Image

    name, data = item
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises many types for a corrupt file
        raise ValueError(f"cannot decode image {name}: {e}") from None


def load_image_folder(path, split: str | None = None, workers: int | None = None) -> ImageSet:
    """Reads every image of ``split`` (all splits when None) under a folder or tarball.

    Raises:
      FileNotFoundError: path missing (says what layout is expected).
      ValueError: no images found, a corrupt image, images of different sizes, or a
        tarball that is truncated or not a tar archive.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no data at {path}: expected a directory or .tar.gz holding <split>/<class>/<image> "
            "(for example cifar10/train/airplane/0000.jpg)."
        )
    try:
        items = [(s, c, n, b) for s, c, n, b in _members(path, split) if split is None or s == split]
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:  # not a tarball, truncated, unreadable
        raise ValueError(
            f"cannot read {path} as a directory or .tar.gz of images ({type(e).__name__}: {e}); "
            "it may be truncated or not a tar archive: download or pack it again."
        ) from None
    if not items:
        raise ValueError(
            f"no images{f' of split {split!r}' if split else ''} under {path}: expected <split>/<class>/<image> "
            f"with suffixes {', '.join(IMAGE_SUFFIXES)}."
        )
    class_names = tuple(sorted({c for _, c, _, _ in items}))
    index = {c: i for i, c in enumerate(class_names)}
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        arrays = list(pool.map(_decode, [(n, b) for _, _, n, b in items], chunksize=256))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"images under {path} differ in size ({sorted(shapes)[:3]}...); resize them first.")
    labels = np.array([index[c] for _, c, _, _ in items], dtype=np.int64)
    return ImageSet(np.stack(arrays), labels, class_names)
