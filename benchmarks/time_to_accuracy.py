"""When each training run first reached a test accuracy, in steps and in wall time, and
a plot of test accuracy against wall time.

  python benchmarks/time_to_accuracy.py WORKDIR[=LABEL] ... [--target 0.8] [--view flip|single_view] [--png FILE]

Reads the metrics.jsonl and summary.json that `resjax train` writes in each workdir.
Time counts from the command's start: the summary's ``startup_seconds`` (imports, data,
compiles not hidden by them, the state) plus the seconds into the training loop that
each evaluation's row records. Prints, per run, the first evaluation at or above the
target (its step and seconds: what issue 10's target 4 measures) and the last
evaluation; --png draws every evaluation, accuracy against seconds, one line per run.
"""

from __future__ import annotations

import argparse
import json
import pathlib


def evaluations(workdir: pathlib.Path, view: str) -> tuple[list[tuple[int, float, float]], float]:
    """([(step, seconds from the command's start, test accuracy of ``view``)], startup
    seconds) of a finished run."""
    summary = workdir / "summary.json"
    if not summary.exists():
        raise SystemExit(f"{workdir}: no summary.json (the run has not finished, or this is not a workdir)")
    startup = json.loads(summary.read_text())["startup_seconds"]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    key = f"test_accuracy_{view}"
    return [(r["step"], startup + r["time"], r[key]) for r in rows if key in r], startup


def first_at(evals: list[tuple[int, float, float]], target: float) -> tuple[int, float, float] | None:
    return next((e for e in evals if e[2] >= target), None)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", metavar="WORKDIR[=LABEL]")
    parser.add_argument("--target", type=float, default=0.8, help="test accuracy, a fraction (default 0.8)")
    parser.add_argument("--view", choices=("flip", "single_view"), default="flip")
    parser.add_argument("--png", type=pathlib.Path, help="write the plot here")
    args = parser.parse_args(argv)
    if not 0 < args.target <= 1:
        parser.error(f"--target {args.target}: give a fraction in (0, 1], e.g. 0.8 for 80%")
    curves = {}
    for run in args.runs:
        path, _, label = run.partition("=")
        evals, startup = evaluations(pathlib.Path(path), args.view)
        if not evals:
            raise SystemExit(f"{path}: no evaluation in metrics.jsonl")
        curves[label or path] = evals
        hit, (step, seconds, acc) = first_at(evals, args.target), evals[-1]
        reached = (f"first >= {args.target:.0%} at step {hit[0]:,}, {hit[1]:.0f} s ({hit[1] / 60:.1f} min): "
                   f"{hit[2]:.2%}" if hit else f"never >= {args.target:.0%}")
        print(f"{label or path}: {reached}; last {acc:.2%} at step {step:,}, {seconds:.0f} s "
              f"(start-up {startup:.0f} s; {args.view})")
    if args.png:
        plot(curves, args.target, args.view, args.png)


def plot(curves: dict, target: float, view: str, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, evals in curves.items():
        ax.plot([e[1] / 60 for e in evals], [100 * e[2] for e in evals], marker="o", label=label)
    ax.axhline(100 * target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="minutes from the command's start", ylabel=f"test accuracy, % ({view.replace('_', '-')})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
