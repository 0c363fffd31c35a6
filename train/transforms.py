"""Host-side image transforms of the streaming pipeline, one image at a time (NumPy, Pillow).

Two augmentations, chosen by ``TrainConfig.augmentation``:

* ``"cifar"`` (Section 4): random crops of the image zero-padded by 4 pixels, random
  (or alternating: ``TrainConfig.flip``) horizontal flips; evaluation sees the image as it is.
* ``"imagenet"`` (the ResNet literature: Szegedy et al. 2015, He et al. 2016): a random
  crop of 8%-100% of the area with aspect ratio in [3/4, 4/3], resized to ``size`` x
  ``size``, and a random horizontal flip; evaluation resizes the shorter side to
  ``size / 0.875`` (256 for 224) and takes the centre ``size`` x ``size`` crop.

The randomness of every image is a function of (seed, its position in the global
stream), never of the worker, process or device that handles it: any topology, and a
resumed run, draws the same crops.

This module imports neither JAX nor grain: the loader's worker processes import it.
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import order
from .records import Records

EVAL_CROP = 0.875  # centre crop of the resized image: 224 of 256
AREA = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


class CorruptImage(ValueError):
    """A record that does not decode; the message names it (it travels back from worker processes)."""


def _corrupt(name: str, error: Exception) -> CorruptImage:
    why = "not an image file Pillow can read" if isinstance(error, UnidentifiedImageError) else str(error)
    return CorruptImage(f"cannot decode image {name}: {why} (replace it, or set skip_corrupt=true to skip "
                        "such images and count them)")


def open_image(data, name: str) -> Image.Image:
    """A Pillow image from encoded bytes (lazily: only the header is read) or a decoded array."""
    if isinstance(data, np.ndarray):
        return Image.fromarray(data)
    try:
        return Image.open(io.BytesIO(data))
    except Exception as e:  # Pillow raises many types for a corrupt file
        raise _corrupt(name, e) from None


def decode(image: Image.Image, name: str) -> np.ndarray:
    """(H, W, 3) uint8."""
    try:  # convert copies even an RGB image: 18% of a 32-pixel JPEG's decoding (197 -> 162 us)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except Exception as e:  # a truncated or corrupt body shows only when decoded
        raise _corrupt(name, e) from None


def decode_data(data, name: str) -> np.ndarray:
    """A record's image as (H, W, C) uint8: an image file's bytes decoded (RGB), tfds arrays as they come."""
    return data if isinstance(data, np.ndarray) else decode(open_image(data, name), name)


def decode_record(records: Records, i: int) -> tuple[np.ndarray, int]:
    """Record i as (its image, its label)."""
    data, label = records[i]
    return decode_data(data, records.name(i)), label


def decode_many(datas: list, names: list[str]) -> np.ndarray | list[np.ndarray]:
    """Records' data as one (N, H, W, C) uint8 array of their images, or as the list of
    the images where their sizes differ (for the caller to say so)."""
    images = [decode_data(data, name) for data, name in zip(datas, names)]
    return np.stack(images) if len({image.shape for image in images}) == 1 else images


STATS_ROWS = 1 << 20  # pixels per bincount: np.bincount copies its input as int64


def pixel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images (..., C), scaled to [0, 1].

    From each channel's 256-bin histogram: exact in float64, and integer counting where
    float64 moments of CIFAR-10's 150 million values took seconds. Counted a million
    pixels at a time: whole channels at once took 1.44 s for those on a 2-core CPU (each
    copied as int64, 410 MB), in chunks 0.22-0.25 s, bitwise the same statistics.
    """
    channels = images.reshape(-1, images.shape[-1])
    counts = np.zeros((channels.shape[1], 256), np.int64)
    for start in range(0, len(channels), STATS_ROWS):
        chunk = channels[start:start + STATS_ROWS]
        for c in range(channels.shape[1]):
            counts[c] += np.bincount(chunk[:, c], minlength=256)
    values = np.arange(256) / 255.0
    mean, std = [], []
    for count in counts:
        p = count / len(channels)
        m = p @ values
        mean.append(m)
        std.append(np.sqrt(p @ (values - m) ** 2))
    return np.array(mean), np.array(std)


def crop_box(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, w, h) of an Inception-style random crop: area fraction in AREA, aspect
    ratio log-uniform in RATIO, 10 tries, then the centre crop of the clamped ratio."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*AREA)
        ratio = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    ratio = min(max(width / height, RATIO[0]), RATIO[1])
    w, h = (width, round(width / ratio)) if width / height <= ratio else (round(height * ratio), height)
    return (width - w) // 2, (height - h) // 2, w, h


def _drafted(image: Image.Image, box, size: int):
    """Lets the JPEG decoder scale down by 2, 4 or 8 where the crop stays at least ``size``
    pixels: decoding is then several times cheaper. Returns the image and the box in its
    new coordinates."""
    left, top, w, h = box
    scale = min(w, h) / size
    if image.format == "JPEG" and scale >= 2:
        full = image.size
        image.draft("RGB", (math.ceil(full[0] / scale), math.ceil(full[1] / scale)))
        fx, fy = image.size[0] / full[0], image.size[1] / full[1]
        box = (left * fx, top * fy, w * fx, h * fy)
    return image, box


def resized_crop(image: Image.Image, box, size: int, name: str) -> np.ndarray:
    """The box (left, top, w, h) of the image, resized to size x size (bilinear)."""
    image, (left, top, w, h) = _drafted(image, box, size)
    try:
        out = image.convert("RGB").resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    except Exception as e:
        raise _corrupt(name, e) from None
    return np.asarray(out)


def eval_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The centre crop that, after the shorter side is resized to size / EVAL_CROP, is size x size."""
    side = min(width, height) * EVAL_CROP
    return (width - side) / 2, (height - side) / 2, side, side


def pad_crop(rng: np.random.Generator, image: np.ndarray, pad: int = 4) -> np.ndarray:
    """A random crop of the same size from the image zero-padded by ``pad`` pixels."""
    h, w, _ = image.shape
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    y, x = rng.integers(0, 2 * pad + 1, 2)
    return padded[y : y + h, x : x + w]


@dataclasses.dataclass(frozen=True)
class Element:
    """Position in the stream -> {"image": (H, W, 3) uint8, "label": int32, "skipped": int32,
    "mask": bool}: one record read, decoded and transformed, picklable for worker processes.

    train: position p is the p-th image of the global training stream (its record comes
    from resjax.train.order). Otherwise position p is record p of the evaluation split,
    and positions past its end are padding (mask False).
    augment: random crops and flips drawn from (seed, p), or alternating flips
    (flip="alternating", by the record and the epoch of p); else evaluation's view.
    skip_corrupt: a record that does not decode is replaced by the next one that does
    (counted in "skipped"); otherwise CorruptImage names it.
    """

    records: Records
    augmentation: str  # "cifar" or "imagenet"
    shape: tuple[int, int, int]  # (H, W, C) of every output image
    seed: int = 0
    train: bool = True
    augment: bool = True
    skip_corrupt: bool = False
    flip: str = "random"  # or "alternating": mirrored in every other epoch (resjax.train.order)
    crop_padding: int = 4  # augmentation="cifar": the padding its random crops are taken from

    def __call__(self, position: int) -> dict:
        position = int(position)
        n = len(self.records)
        if not self.train and position >= n:
            return {"image": np.zeros(self.shape, np.uint8), "label": np.int32(0), "skipped": np.int32(0),
                    "mask": False}
        index = order.record(self.seed, position, n) if self.train else position
        rng = np.random.default_rng([self.seed, position])
        mirror = None  # random
        if self.train and self.flip == "alternating":  # the record's orientation in this epoch
            mirror = bool(order.alternating_flips(self.seed, index, position // n))
        for skipped in range(n):
            record = (index + skipped) % n
            try:
                image, label = self.transform(rng, record, mirror)
                break
            except CorruptImage:
                if not self.skip_corrupt:
                    raise
        else:
            raise ValueError(f"no image of the split of {self.records.name(0)} decodes.")
        return {"image": image, "label": np.int32(label), "skipped": np.int32(skipped), "mask": True}

    def transform(self, rng: np.random.Generator, record: int, mirror: bool | None = None) -> tuple[np.ndarray, int]:
        """The record decoded and transformed; ``mirror``: whether augmentation flips it
        (None: with probability 1/2)."""
        data, label = self.records[record]
        name = self.records.name(record)
        image = open_image(data, name)
        if self.augmentation == "imagenet":
            size = self.shape[0]
            box = crop_box(rng, *image.size) if self.augment else eval_box(*image.size, size)
            out = resized_crop(image, box, size, name)
        else:
            out = decode(image, name)
            if out.shape != self.shape:
                raise ValueError(
                    f"image {name} is {out.shape[1]}x{out.shape[0]}, the others {self.shape[1]}x{self.shape[0]}: "
                    "augmentation='cifar' needs images of one size; use augmentation='imagenet' (random-resized "
                    "crops to image_size) or resize them."
                )
            if self.augment:
                out = pad_crop(rng, out, self.crop_padding)
        if self.augment:
            coin = rng.random() < 0.5  # drawn for either kind of flip: the crops stay those of flip="random"
            if coin if mirror is None else mirror:
                out = out[:, ::-1]
        return np.ascontiguousarray(out), label
