"""Which of part k's variants `fast` should train with (benchmarks/gpu.sh, part `best`):
the one that would make its command shortest, from each variant's compile time and step
rate in k/variants.json.

A variant changes the command by its steps' time over the configuration's run (its step
rate against the baseline's, `steps` x `batch_size` images) and by the loop's wait for the
training step's compile. That wait is what the compile leaves after the start-up that
runs beside it: in `fast`'s H200 runs the compile's seconds less the loop's wait were
8.8-10.6 s (`compiles` against `phases` in docs/results/fast_h200_*_summary.json), so a
compile that saves more than the baseline's wait saves no more than it. `--head` is that
overlap; its default, the largest measured, counts least of a compile's saving.

Prints, on one line, the `--set` overrides of `resjax train` that give the chosen variant
(nothing for the baseline): its XLA flags as `xla_flags=[...]` (without
--xla_gpu_print_compilation_stats, which only logs), its configuration fields, its state
layout. A variant must beat the baseline by `--margin` seconds to be chosen.

Run: python benchmarks/levers.py DEST/k/variants.json [--config fast] [--json FILE]
"""

import argparse
import json
import sys

from resjax.train import config as config_mod

LOG_ONLY = {"--xla_gpu_print_compilation_stats"}  # flags that change no program


def overrides(run: dict) -> list[str]:
    """The `resjax train --set` overrides that give ``run``'s variant of the step."""
    flags = [f for f in run["xla_flags"].split() if f not in LOG_ONLY]
    out = [f"xla_flags={json.dumps(flags, separators=(',', ':'))}"] if flags else []
    out += run["model"].split()  # part k's variants name configuration fields (train_step.py --set)
    args = run["args"].split()
    if args[:1] == ["--state-layout"] and len(args) == 2:
        out.append(f"state_layout={args[1]}")
    elif args:
        raise ValueError(f"no configuration field gives the step benchmark's arguments {run['args']!r}")
    return out


def batch_of(runs: list[dict], batch_size: int) -> str:
    """The batch whose rates to use: the configuration's where the baseline measured it,
    else the largest it measured (TINY's)."""
    measured = runs[0]["images_per_s"]
    if not measured:
        raise ValueError("the baseline (the first variant) did not run: nothing to compare against")
    return str(batch_size) if str(batch_size) in measured else max(measured, key=int)


def steps_seconds(run: dict, base: dict, b: str, steps: int, batch_size: int) -> float:
    """What ``run``'s step rate at batch ``b`` would add to ``steps`` steps of ``batch_size``
    against ``base``'s."""
    return steps * batch_size * (1 / run["images_per_s"][b] - 1 / base["images_per_s"][b])


def projected(runs: list[dict], steps: int, batch_size: int, head: float) -> list[float | None]:
    """Seconds each variant would add to the command (negative: save), None where it did not run."""
    b = batch_of(runs, batch_size)
    base = runs[0]
    wait = lambda run: max(0.0, run["compile_s"][b] - head)
    return [None if b not in run["images_per_s"] else
            steps_seconds(run, base, b, steps, batch_size) + wait(run) - wait(base) for run in runs]


def choose(runs: list[dict], steps: int, batch_size: int, head: float, margin: float) -> int:
    """The index of the variant that would make the command shortest by more than ``margin``
    seconds against the baseline (index 0), else 0."""
    seconds = projected(runs, steps, batch_size, head)
    best = min((s, i) for i, s in enumerate(seconds) if s is not None)
    return best[1] if best[0] < -margin else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", help="part k's variants.json")
    parser.add_argument("--config", default="fast", help="the configuration whose run to shorten (default: fast)")
    parser.add_argument("--head", type=float, default=10.6, help="seconds of the compile that the start-up hides")
    parser.add_argument("--margin", type=float, default=2.0, help="seconds a variant must save to be chosen")
    parser.add_argument("--json", help="write every variant's projection and the choice here")
    args = parser.parse_args(argv)
    try:
        with open(args.variants) as f:
            runs = json.load(f)
        cfg = config_mod.load(args.config)
        seconds = projected(runs, cfg.steps, cfg.batch_size, args.head)
        chosen = choose(runs, cfg.steps, cfg.batch_size, args.head, args.margin)
        sets = overrides(runs[chosen])
    except (OSError, ValueError, KeyError, IndexError) as e:
        print(f"levers.py: no choice from {args.variants}: {e}", file=sys.stderr)
        return 2
    for i, (run, s) in enumerate(zip(runs, seconds)):
        name = " ".join(filter(None, (run["xla_flags"], run["model"], run["args"]))) or "(baseline)"
        moved = "did not run" if s is None else f"{s:+.1f} s"
        print(f"{'*' if i == chosen else ' '} {name}: {moved} over {args.config}'s command", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": args.config, "head_seconds": args.head, "margin_seconds": args.margin,
                       "projected_seconds": seconds, "chosen": chosen, "overrides": sets}, f, indent=1)
    print(" ".join(sets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
