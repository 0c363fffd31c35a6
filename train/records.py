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
        tar, data = tarfile.open(path, "r:"), None  # uncompressed: members can be read at their offsets
    except tarfile.ReadError:
        data = _decompress(path)
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    with tar:
        if data is None:
            fd = tar.fileobj.fileno()
            members = _plain_members(lambda offset, n: os.pread(fd, n, offset), os.fstat(fd).st_size)
        else:
            members = _plain_members(lambda offset, n: data[offset:offset + n], len(data))
        if members is None:  # a header that only tarfile reads (long names, sparse files) or a damaged one
            members = [(m.name, m.offset_data, m.size) for m in tar if m.isfile()]
    names, classes, offsets, sizes = [], [], [], []
    for name, offset, size in members:
        parts = pathlib.PurePosixPath(name).parts
        if not (_is_image(name) and len(parts) >= 2) or (split is not None and (len(parts) < 3 or parts[-3] != split)):
            continue
        names.append(f"{path}:{name}")
        classes.append(parts[-2])
        offsets.append(offset)
        sizes.append(size)
    if data is None:
        return TarRecords(path, names, classes, offsets, sizes)
    return MemoryRecords(names, classes, [data[o:o + n] for o, n in zip(offsets, sizes)])


_FILE_TYPES = (b"0", b"\0", b"7")  # tarfile's regular files (isfile)
_NO_DATA_TYPES = (b"1", b"2", b"3", b"4", b"5", b"6")  # links, devices, directories, fifos: no data blocks
_PAX_TYPES = (b"g", b"x")  # records for all later members, for the next one
_KNOWN_TYPES = frozenset(_FILE_TYPES + _NO_DATA_TYPES + _PAX_TYPES)


def _plain_members(read, length: int) -> list[tuple[str, int, int]] | None:
    """(name, data offset, size) of each regular file, as tarfile gives them, of a tar
    archive of ``length`` bytes read by ``read(offset, n)``, where every header is a plain
    ustar, GNU or v7 one or pax records that leave names and sizes alone (_harmless); None
    where one is not (long names, sparse files) or looks damaged (a bad checksum or
    number, data past the end), for tarfile to read and to raise its errors. tarfile
    parses every field of every header: 1.2-1.4 s for CIFAR-10's 50,000 training images
    on a 2-core CPU, this walk 0.35 s (and slicing the images out of the decompressed
    tarball is quicker than reading each through tarfile: 1 s against 3.6 s in all)."""
    members, offset = [], 0
    while offset + 512 <= length:  # tarfile stops at a truncated header too
        header = read(offset, 512)
        kind = header[156:157]
        if header.count(0) == 512:  # the end
            break
        if kind not in _KNOWN_TYPES:
            return None
        try:
            size, checksum = (int(header[a:b].split(b"\0", 1)[0].strip() or b"0", 8) for a, b in ((124, 136), (148, 156)))
        except ValueError:  # a base-256 number, or not a number
            return None
        if checksum != 256 + sum(header) - sum(header[148:156]) and checksum not in tarfile.calc_chksums(header):
            return None
        data = 0 if kind in _NO_DATA_TYPES else size
        if offset + 512 + data > length or kind in _PAX_TYPES and not _harmless(read(offset + 512, size)):
            return None
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if kind in _FILE_TYPES and not (kind == b"\0" and name.endswith("/")):  # v7 marks a directory by its slash
            prefix = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            members.append((f"{prefix}/{name}" if prefix else name, offset + 512, size))
        offset += 512 + -(-data // 512) * 512
    return members if offset else None


def _harmless(pax: bytes) -> bool:
    """Whether pax records (``LENGTH KEY=VALUE\\n`` each) leave members' names and sizes as
    their headers give them: git archive's global comment; the times, owners and link
    targets that Python's tarfile writes for every member."""
    keys, at = [], 0
    try:
        while at < len(pax):
            space = pax.index(b" ", at)
            keys.append(pax[space + 1:pax.index(b"=", space)])
            at += int(pax[at:space])
    except ValueError:
        return False
    return at == len(pax) and not any(k in (b"path", b"size", b"hdrcharset") or k.startswith(b"GNU.sparse") for k in keys)


def _decompress(path: pathlib.Path) -> bytes:
    """A gzip, bzip2 or xz file's contents. Indexing a tarball held so with tarfile took
    2.5-3.6 s for CIFAR-10's training set on a 2-core CPU, through the decompressing
    stream 4.0-4.7 s (each member's seek emulated); held encoded anyway, the images cost
    no more than the tarball's headers in memory, and only while they are indexed."""
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
