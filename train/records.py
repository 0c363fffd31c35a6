"""Labelled images by index, not yet decoded: what both input pipelines read.

``open_folder(path, split)`` indexes a ``<split>/<class>/<image>`` tree held as a
directory, an uncompressed ``.tar`` or a compressed tarball (``.tar.gz``);
``open_tfds(name, split)`` wraps a prepared tensorflow-datasets set read through
``tfds.data_source`` (no TensorFlow). ``records[i]`` is ``(data, label)``: the image
file's bytes (or, from tfds, the decoded array) and the class index;
``records.name(i)`` says where record i came from, for error messages.

Directories and uncompressed tarballs are read record by record (a tarball through
its members' offsets), so a data set larger than memory streams from disk. A
compressed tarball cannot be read at an offset: its encoded images are held in
memory (CIFAR-10's 50,000 JPEGs take 16 MB), and while it is indexed the whole
decompressed tarball too (77 MB for those), so pack a large set as a directory or a
plain ``.tar``. Every kind pickles small enough to be sent to the loader's worker
processes, which open files anew.

This module imports neither JAX nor grain: the worker processes import it.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import pathlib
import tarfile
import zlib

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
LAYOUT = "<split>/<class>/<image> (for example cifar10/train/airplane/0000.jpg)"


class Records:
    """Base class: ``len``, ``records[i] -> (data, label)``, ``name(i)``, ``class_names``,
    ``labels`` (an int64 array, or None where reading them means reading every record), and
    ``encoded``: whether the data are an image file's bytes (decoding them is the work)."""

    class_names: tuple[str, ...]
    labels: np.ndarray | None
    encoded: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int):
        raise NotImplementedError

    def name(self, i: int) -> str:
        raise NotImplementedError


class _Indexed(Records):
    """Records of an image tree: names and labels indexed up front, bytes read on demand."""

    encoded = True

    def __init__(self, names: list[str], classes: list[str]):
        self.class_names = tuple(sorted(set(classes)))
        index = {c: i for i, c in enumerate(self.class_names)}
        self.names = tuple(names)
        self.labels = np.array([index[c] for c in classes], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int):
        return self.read(int(i)), int(self.labels[i])

    def name(self, i: int) -> str:
        return self.names[int(i)]


class FolderRecords(_Indexed):
    """Image files under a directory."""

    def read(self, i: int) -> bytes:
        return pathlib.Path(self.names[i]).read_bytes()


class TarRecords(_Indexed):
    """Members of an uncompressed tarball, read at their offsets (one descriptor per process)."""

    def __init__(self, path, names, classes, offsets, sizes):
        super().__init__(names, classes)
        self.path, self.offsets, self.sizes = str(path), np.asarray(offsets), np.asarray(sizes)
        self._fd = None

    def read(self, i: int) -> bytes:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return os.pread(self._fd, int(self.sizes[i]), int(self.offsets[i]))

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}  # a worker opens its own


class MemoryRecords(_Indexed):
    """Members of a compressed tarball, held encoded in memory."""

    def __init__(self, names, classes, blobs):
        super().__init__(names, classes)
        self.blobs = blobs

    def read(self, i: int) -> bytes:
        return self.blobs[i]


class TfdsRecords(Records):
    """A prepared tensorflow-datasets split (``tfds.data_source``): decoded images, labels read per record."""

    def __init__(self, source, name: str, split: str):
        self.source, self.dataset, self.split = source, name, split
        info = getattr(source, "dataset_info", None)
        try:
            self.class_names = tuple(info.features["label"].names)
        except (AttributeError, KeyError, TypeError):
            self.class_names = ()
        self.labels = None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int):
        row = self.source[int(i)]
        return np.asarray(row["image"], dtype=np.uint8), int(row["label"])

    def name(self, i: int) -> str:
        return f"tfds:{self.dataset}/{self.split}[{int(i)}]"


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _tree(path: pathlib.Path, split: str | None) -> Records:
    files = [f for f in sorted(path.rglob("*")) if _is_image(f.name) and (split is None or f.parent.parent.name == split)]
    return FolderRecords([str(f) for f in files], [f.parent.name for f in files])


def _tarball(path: pathlib.Path, split: str | None) -> Records:
    try:
        tar = tarfile.open(path, "r:")  # uncompressed: members can be read at their offsets
        compressed = False
    except tarfile.ReadError:
        tar, compressed = tarfile.open(fileobj=io.BytesIO(_decompress(path)), mode="r:"), True
    names, classes, offsets, sizes, blobs = [], [], [], [], []
    with tar:
        for member in tar:
            parts = pathlib.PurePosixPath(member.name).parts
            if not (member.isfile() and _is_image(member.name) and len(parts) >= 2):
                continue
            if split is not None and (len(parts) < 3 or parts[-3] != split):
                continue
            names.append(member.name)
            classes.append(parts[-2])
            if compressed:
                blobs.append(tar.extractfile(member).read())
            else:
                offsets.append(member.offset_data)
                sizes.append(member.size)
    if compressed:
        return MemoryRecords([f"{path}:{n}" for n in names], classes, blobs)
    return TarRecords(path, [f"{path}:{n}" for n in names], classes, offsets, sizes)


def _decompress(path: pathlib.Path) -> bytes:
    """A gzip, bzip2 or xz file's contents. Indexing a tarball held so took 2.5-3.6 s for
    CIFAR-10's training set on a 2-core CPU, through the decompressing stream 4.0-4.7 s
    (each member's seek emulated); held encoded anyway, the images cost no more than the
    tarball's headers in memory, and only while they are indexed."""
    with open(path, "rb") as f:
        magic = f.read(6)
    for prefix, opener in ((b"\x1f\x8b", gzip.open), (b"BZh", bz2.open), (b"\xfd7zXZ\x00", lzma.open)):
        if magic.startswith(prefix):
            with opener(path) as f:
                return f.read()
    raise tarfile.ReadError("neither a tar archive nor a gzip, bzip2 or xz file")


def open_folder(path, split: str | None = None) -> Records:
    """Indexes every image of ``split`` (all splits when None) under a directory or tarball.

    Raises:
      FileNotFoundError: path missing (says what layout is expected).
      ValueError: no images found, or a tarball that is truncated or not a tar archive.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data at {path}: expected a directory, .tar or .tar.gz holding {LAYOUT}.")
    try:
        records = _tree(path, split) if path.is_dir() else _tarball(path, split)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:  # not a tarball, truncated, unreadable
        raise ValueError(
            f"cannot read {path} as a directory or tarball of images ({type(e).__name__}: {e}); "
            "it may be truncated or not a tar archive: download or pack it again."
        ) from None
    if not len(records):
        raise ValueError(
            f"no images{f' of split {split!r}' if split else ''} under {path}: expected {LAYOUT}, "
            f"with suffixes {', '.join(IMAGE_SUFFIXES)}."
        )
    return records


def open_tfds(name: str, split: str, data_dir: str | None = None) -> TfdsRecords:
    """A prepared tensorflow-datasets split (cifar10, imagenet2012, ...) read through
    ``tfds.data_source``: array_record files, NumPy records, no TensorFlow.

    Raises:
      ImportError: tensorflow-datasets is not installed (``pip install 'resjax[data]'``).
      FileNotFoundError: the data set is not prepared under data_dir (or $TFDS_DATA_DIR).
      ValueError: the split is empty.
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
    if not len(source):
        raise ValueError(f"tensorflow-datasets {name!r} split {split!r} is empty.")
    return TfdsRecords(source, name, split)
