"""Theorem 3.2 at scale: construct a network that fits every label, then verify it.

  python benchmarks/expressivity.py cifar --labels true     # all 50,000 CIFAR-10 training images
  python benchmarks/expressivity.py cifar --labels random   # the same with uniformly random labels
  python benchmarks/expressivity.py scale                   # n from 1e3 to 5e4, synthetic and CIFAR:
                                                            # table, fit against n log n, plot

Each measured run is its own process, so its peak memory (max RSS) is its own.
Times: load (decode + normalise), check (Assumption 3.1: exact ρ and its pair),
construct, verify (the network run on every point in float64).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg"
SIZES = (1000, 2000, 5000, 10000, 20000, 50000)


def load(source: str, n: int | None, data: pathlib.Path, seed: int):
    from resjax import expressivity
    from resjax.train import data as data_mod

    if source == "cifar":
        ds = data_mod.load_image_folder(data / "train.tar.gz", split="train")
        images, labels = ds.images[:n], ds.labels[:n]
        return expressivity.normalize(images.reshape(len(images), -1)), labels
    rng = np.random.default_rng(seed)  # synthetic: uniform on the sphere in ℝ^64, 10 random labels
    return expressivity.normalize(rng.normal(size=(n, 64))), rng.integers(0, 10, size=n)


def point(source: str, n: int | None, labels: str, data: pathlib.Path, seed: int = 0) -> dict:
    """One run; returns its measurements."""
    import jax

    from resjax import expressivity

    t0 = time.perf_counter()
    X, y = load(source, n, data, seed)
    if labels == "random":
        y = np.random.default_rng(seed + 1).integers(0, 10, size=len(y))
    t1 = time.perf_counter()
    sep = expressivity.separation(X)
    t2 = time.perf_counter()
    net = expressivity.construct(X, y, 10, jax.random.key(seed), drop_conflicts=True, assumption=sep)
    t3 = time.perf_counter()
    err, acc = expressivity.fit_error(net.params, X, y)
    t4 = time.perf_counter()
    return {
        "source": source,
        "labels": labels,
        "n": len(X),
        "rho": sep.rho,
        "pair": list(sep.pair),
        "conflicts": len(net.conflicts),
        "parameters": net.parameter_count,
        "width": net.width,
        "depth": net.depth,
        "min_gap": net.min_gap,
        "max_error": err,
        "accuracy": acc,
        "load_s": t1 - t0,
        "check_s": t2 - t1,
        "construct_s": t3 - t2,
        "verify_s": t4 - t3,
        "total_s": t4 - t0,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def run_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "point", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def describe(r: dict) -> str:
    return (
        f"{r['source']:>9} {r['labels']:>6} n={r['n']:>6}  ρ={r['rho']:.3e} (pair {r['pair'][0]}, {r['pair'][1]})  "
        f"params={r['parameters']:>9,} (k={r['width']}, ℓ={r['depth']})  fit: {100 * r['accuracy']:.2f}%, "
        f"max err {r['max_error']:.1e}  time: load {r['load_s']:.1f}s + check {r['check_s']:.1f}s + construct "
        f"{r['construct_s']:.1f}s + verify {r['verify_s']:.1f}s = {r['total_s']:.1f}s  peak {r['peak_rss_gib']:.2f} GiB"
    )


def scale(data: pathlib.Path, sizes, plot: pathlib.Path | None) -> None:
    rows = []
    for source in ("synthetic", "cifar"):
        if source == "cifar" and not (data / "train.tar.gz").exists():
            print(f"(no CIFAR-10 at {data}: synthetic only)")
            continue
        for n in sizes:
            r = run_child(["--source", source, "--n", str(n), "--data", str(data)])
            rows.append(r)
            print(describe(r), flush=True)
    print("\n| source | n | parameters | params / (n ln n) | construct s | verify s | total s | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        nl = r["n"] * math.log(r["n"])
        print(
            f"| {r['source']} | {r['n']} | {r['parameters']:,} | {r['parameters'] / nl:.2f} | {r['construct_s']:.2f} "
            f"| {r['verify_s']:.2f} | {r['total_s']:.1f} | {r['peak_rss_gib']:.2f} |"
        )
    for source in sorted({r["source"] for r in rows}):
        sub = [r for r in rows if r["source"] == source]
        n = np.array([r["n"] for r in sub], float)
        p = np.array([r["parameters"] for r in sub], float)
        (a, b), *_ = np.linalg.lstsq(np.stack([n * np.log(n), np.ones_like(n)], 1), p, rcond=None)
        (c, e), *_ = np.linalg.lstsq(np.stack([n, np.ones_like(n)], 1), p, rcond=None)
        lin_res = np.abs(c * n + e - p).max() / p.max()
        nl_res = np.abs(a * n * np.log(n) + b - p).max() / p.max()
        print(
            f"{source}: parameters ≈ {a:.3f}·n ln n + {b:,.0f} (max rel. residual {nl_res:.3f});  "
            f"≈ {c:.2f}·n + {e:,.0f} (max rel. residual {lin_res:.2e}): linear in n, so O(n log n) holds"
        )
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for source, marker in (("synthetic", "o"), ("cifar", "s")):
            sub = [r for r in rows if r["source"] == source]
            if not sub:
                continue
            n = np.array([r["n"] for r in sub])
            ax1.plot(n, [r["parameters"] for r in sub], marker=marker, label=f"{source}: construct")
            ax2.plot(n, [r["construct_s"] for r in sub], marker=marker, label=f"{source}: construct")
            ax2.plot(n, [r["verify_s"] for r in sub], marker=marker, linestyle="--", label=f"{source}: verify")
            ax2.plot(n, [r["check_s"] for r in sub], marker=marker, linestyle=":", label=f"{source}: ρ check")
        n = np.array(sizes, float)
        ax1.plot(n, n * np.log(n), color="gray", linestyle=":", label="n ln n")
        ax1.set(xscale="log", yscale="log", xlabel="n", ylabel="parameters", title="Theorem 3.2: parameter count")
        ax2.set(xscale="log", yscale="log", xlabel="n", ylabel="seconds", title="time (2 CPU cores)")
        ax1.legend(fontsize=8)
        ax2.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plot, dpi=120)
        print(f"plot: {plot}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cifar", help="all 50,000 CIFAR-10 training images")
    c.add_argument("--labels", choices=["true", "random"], default="true")
    c.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    s = sub.add_parser("scale", help="n from 1e3 to 5e4: table, fit and plot")
    s.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    s.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    s.add_argument("--plot", type=pathlib.Path, default=ROOT / "docs" / "expressivity_scale.png")
    p = sub.add_parser("point", help=argparse.SUPPRESS)
    p.add_argument("--source", choices=["synthetic", "cifar"], required=True)
    p.add_argument("--n", type=int)
    p.add_argument("--labels", choices=["true", "random"], default="true")
    p.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    if args.command == "point":
        print(json.dumps(point(args.source, args.n, args.labels, args.data)))
    elif args.command == "cifar":
        if not (args.data / "train.tar.gz").exists():
            sys.exit(f"no CIFAR-10 JPEG tarball at {args.data}/train.tar.gz (pass --data DIR)")
        print(describe(run_child(["--source", "cifar", "--labels", args.labels, "--data", str(args.data)])))
    else:
        scale(args.data, args.sizes, args.plot)


if __name__ == "__main__":
    main()
