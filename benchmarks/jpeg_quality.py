"""The CIFAR-10 JPEGs re-encoded at a lower quality: what does the compression cost?

  python benchmarks/jpeg_quality.py --quality 50 --out DIR [--data ../shared/data/cifar10-jpeg]

The data resjax trains on are JPEGs of quality 75; the paper's CIFAR-10 is lossless. The
lossless images are not at hand, so this measures the trend instead: train the same
recipe on the images re-encoded at lower qualities (`resjax train --set data=DIR`) and
compare. Re-encoding adds its loss to the first one; the PSNR printed says how far each
set lies from the quality-75 pixels.

Writes DIR/train.tar and DIR/test.tar (<split>/<class>/NNNN.jpg, Pillow's
encoder with its defaults besides the quality) and prints, per split, the mean PSNR
against the quality-75 pixels and the mean file size before and after.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import pathlib
import tarfile

import numpy as np
from PIL import Image

from resjax.train import records, transforms


def reencode(split: records.Records, i: int, quality: int) -> tuple[bytes, float]:
    """Record i encoded at ``quality``, and the squared error per pixel value against its source."""
    image, _ = transforms.decode_record(split, i)
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    data = out.getvalue()
    again = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float64)
    return data, float(np.mean((again - image) ** 2))


def write_split(source: pathlib.Path, name: str, quality: int, out: pathlib.Path) -> dict:
    """DIR/<name>.tar re-encoded from the source tarball; its figures."""
    tarball = next(p for p in (source / f"{name}.tar.gz", source / f"{name}.tar", source) if p.exists())
    split = records.open_folder(tarball, split=name)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:  # Pillow codes outside the GIL
        done = list(pool.map(lambda i: reencode(split, i, quality), range(len(split))))
    with tarfile.open(out / f"{name}.tar", "w") as tar:
        for i, (data, _) in enumerate(done):
            member = tarfile.TarInfo(f"{name}/{split.class_names[split.labels[i]]}/{pathlib.PurePath(split.name(i)).name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    errors = np.array([e for _, e in done])
    return {
        "images": len(split),
        "psnr_db_vs_source": float(np.mean(10 * np.log10(255.0**2 / np.maximum(errors, 1e-12)))),
        "mean_bytes_source": float(np.mean([len(split[i][0]) for i in range(len(split))])),
        "mean_bytes": float(np.mean([len(d) for d, _ in done])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quality", type=int, required=True, help="JPEG quality, 1-95")
    ap.add_argument("--out", type=pathlib.Path, required=True, help="folder for train.tar and test.tar")
    ap.add_argument("--data", type=pathlib.Path, default=pathlib.Path("../shared/data/cifar10-jpeg"),
                    help="folder with the source train.tar.gz and test.tar.gz")
    args = ap.parse_args()
    if not 1 <= args.quality <= 95:
        ap.error(f"--quality {args.quality}: give 1-95 (Pillow's range for a useful JPEG).")
    if not args.data.is_dir():
        ap.error(f"--data {args.data}: no such folder (it holds train.tar.gz and test.tar.gz).")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"quality": args.quality, **{s: write_split(args.data, s, args.quality, args.out) for s in ("train", "test")}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
