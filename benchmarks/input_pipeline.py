"""Input pipeline throughput for ImageNet-style JPEGs, and the CPU cores a GPU needs.

  python benchmarks/input_pipeline.py [--images 600] [--workers N] [--measured step.json] [--json out.json]

1. Generates ImageNet-shaped JPEGs (resjax.train.synthetic: sides of 256-500 pixels,
   quality 90, noise chosen to give about ImageNet's mean file size of 110 kB, since
   decoding time grows with the bits to decode) in a temporary folder.
2. Per core: one process reads, decodes and augments them one at a time exactly as a
   training stream does (resjax.train.transforms.Element: random-resized crop to
   224x224 and flip), and separately as evaluation does (resize to 256, centre 224).
3. All cores: the streaming pipeline itself (grain, ``--workers`` processes, batches of
   256, no device): images/s in all and per worker.
4. Cores per GPU for imagenet34 at 224x224: the GPU's step rate over the measured
   images/s per core. With ``--measured FILE`` (the JSON of ``benchmarks/train_step.py
   --config imagenet34`` run on the GPU: ``bash benchmarks/gpu.sh i``) the rate is that
   measurement; without it the rate is an ESTIMATE: imagenet34's training FLOPs per
   image against the FLOP rate the Table 1 step reached on an H200
   (docs/results/h200_step_benchmark.json; batch 512 and 128).

Numbers depend on the machine and its load; the script prints the CPU count and the
load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

H200 = HERE.parent / "docs" / "results" / "h200_step_benchmark.json"


def per_core(train_records, augment: bool, size: int = 224) -> dict:
    """Images/s of one process transforming records one by one (train or eval view)."""
    from resjax.train import transforms

    element = transforms.Element(train_records, "imagenet", (size, size, 3), seed=0, train=augment, augment=augment)
    n = len(train_records)
    element(0)  # imports and first-call costs out of the timing
    t = time.perf_counter()
    for p in range(n):
        element(p)
    seconds = time.perf_counter() - t
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds}


def pipeline(folder: pathlib.Path, workers: int, batch: int, batches: int) -> dict:
    """Images/s of the streaming pipeline (StreamFeed's grain datasets, no device transfer)."""
    from resjax.train import config, loop, stream

    cfg = config.load("imagenet34").override([f"data={folder}", "test_split=test", "num_classes=10",
                                               f"batch_size={batch}", f"loader_workers={workers}"])
    train, test = loop.open_splits(cfg)
    feed = stream.StreamFeed(cfg, train, test, loop.make_mesh())
    ds = feed._dataset(feed.element(train, True, True), batch, batches + 2)
    it = feed._iterator(ds)
    try:
        next(it)
        next(it)  # workers started and warm
        t = time.perf_counter()
        for _ in range(batches):
            next(it)
        seconds = time.perf_counter() - t
    finally:
        it.close()
    images = batches * batch
    return {"workers": workers, "batch": batch, "images": images, "seconds": seconds,
            "images_per_s": images / seconds, "images_per_s_per_worker": images / seconds / max(workers, 1)}


def gpu_measured(images_per_s_per_core: float, path: pathlib.Path) -> dict:
    """Cores per GPU from a measured imagenet34 step (train_step.py's JSON), per batch size and dtype."""
    measured = json.loads(path.read_text())
    per_device = {f"b{r['batch']}_{r['dtype']}": r["images_per_s"] / measured["devices"] for r in measured["rows"]}
    return {"basis": str(path), "device": measured["device"], "estimate": False,
            **{k: {"imagenet34_images_per_s": v, "cores_per_gpu": v / images_per_s_per_core}
               for k, v in per_device.items()}}


def gpu_estimate(images_per_s_per_core: float, size: int = 224) -> dict:
    """ESTIMATED imagenet34 step rate on an H200 and the cores it needs (see module docstring)."""
    from train_step import train_flops_per_image

    from resjax import models

    flops = train_flops_per_image(models.imagenet34(), size)
    measured = json.loads(H200.read_text())
    out = {"imagenet34_gflop_per_image": flops / 1e9, "basis": str(H200.relative_to(HERE.parent)), "estimate": True}
    for key in ("b512_bfloat16", "b128_bfloat16"):
        rate = measured[key]["resjax_tflops"] * 1e12 / flops
        out[key] = {"table1_tflops": measured[key]["resjax_tflops"], "imagenet34_images_per_s": rate,
                    "cores_per_gpu": rate / images_per_s_per_core}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=600, help="generated training images (default 600)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="grain worker processes (default: cores)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=8, help="timed batches of the pipeline (default 8)")
    parser.add_argument("--noise", type=float, default=40.0,
                        help="pixel noise of the generated images (default 40: about 110 kB per JPEG, ImageNet's mean size)")
    parser.add_argument("--measured", type=pathlib.Path,
                        help="train_step.py --config imagenet34 JSON from a GPU: cores per GPU from it, not estimated")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args(argv)
    if args.images < 10 or args.workers < 0 or args.batch < 1 or args.batches < 1:
        parser.error("--images must be at least 10, --workers at least 0, --batch and --batches at least 1")
    if args.measured and not args.measured.is_file():
        parser.error(f"--measured {args.measured}: no such file (write it with benchmarks/gpu.sh i)")

    from resjax.train import records, synthetic

    with tempfile.TemporaryDirectory() as tmp:
        folder = synthetic.write_image_folder(pathlib.Path(tmp) / "imagenet-like", noise=args.noise,
                                              per_class={"train": args.images // 10, "test": 2})
        train = records.open_folder(folder, "train")
        sizes = [len(train[i][0]) for i in range(len(train))]
        result = {
            "cpu_count": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "jpeg": {"count": len(train), "sides": [256, 500], "quality": 90, "noise": args.noise,
                     "mean_kb": float(np.mean(sizes)) / 1e3},
            "per_core_train": per_core(train, augment=True),
            "per_core_eval": per_core(train, augment=False),
            "pipeline": pipeline(folder, args.workers, args.batch, args.batches),
        }
    result["load_average_after"] = os.getloadavg()
    rate = result["per_core_train"]["images_per_s"]
    if args.measured:
        result["gpu_measured"] = gpu_measured(rate, args.measured)
    result["gpu_estimate"] = gpu_estimate(rate)
    c, p, g = result["per_core_train"], result["pipeline"], result["gpu_estimate"]
    print(f"{result['jpeg']['count']} generated JPEGs, 256-500 px, mean {result['jpeg']['mean_kb']:.0f} kB; "
          f"{result['cpu_count']} cores, load average {result['load_average_before'][0]:.2f} before, "
          f"{result['load_average_after'][0]:.2f} after")
    print(f"per core, train view (read, decode, random-resized crop to 224, flip): {c['images_per_s']:.0f} images/s")
    print(f"per core, eval view (read, decode, resize, centre crop 224): {result['per_core_eval']['images_per_s']:.0f} images/s")
    print(f"pipeline, {p['workers']} grain workers, batch {p['batch']}: {p['images_per_s']:.0f} images/s "
          f"({p['images_per_s_per_worker']:.0f} per worker)")
    print(f"ESTIMATE (no imagenet34 GPU step measured yet): imagenet34 costs {g['imagenet34_gflop_per_image']:.1f} "
          "GFLOP per training image at 224x224;")
    for key, label in (("b512_bfloat16", "batch 512"), ("b128_bfloat16", "batch 128")):
        e = g[key]
        print(f"  at the H200 FLOP rate of Table 1's {label} step ({e['table1_tflops']:.0f} TFLOP/s): "
              f"{e['imagenet34_images_per_s']:.0f} images/s per GPU, needing {e['cores_per_gpu']:.0f} cores per GPU "
              "at this machine's per-core rate")
    for key, e in result.get("gpu_measured", {}).items():
        if isinstance(e, dict):
            print(f"MEASURED on {result['gpu_measured']['device']}, {key}: {e['imagenet34_images_per_s']:.0f} images/s "
                  f"per GPU, needing {e['cores_per_gpu']:.1f} cores per GPU at this machine's per-core rate")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
