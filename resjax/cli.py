"""The ``resjax`` command: argument parsing and printing only.

  resjax check                       quick profile of the theorem checker, prints the report
  resjax check --profile thorough    hours of sampling and attack
  resjax check --json report.json    also writes the report as JSON
  resjax check --replay FILE         re-checks one witness file on its own
  resjax train --config paper        Section 4's CIFAR recipe (resumes from the workdir's checkpoints)
  resjax train --config digits        the embedded default: 8x8 digits, about 40 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys


def _use_compilation_cache() -> None:
    """Keeps XLA compiles on disk between runs (most of a quick check is compiling).

    Set by the command only, never on import of the library. RESJAX_CACHE_DIR moves it;
    an empty value turns it off.
    """
    import jax

    path = os.environ.get("RESJAX_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "resjax", "xla"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _check(args) -> int:
    from tqdm import tqdm

    from resjax.checks import registry, report, runner

    if args.replay:
        result = report.replay(args.replay)
        print(report.details(result))
        print(f"replay of {args.replay}: {result.statement.id} is {result.status} on this instance")
        return report.exit_code([result])
    try:
        statements = registry.select(args.only)
    except KeyError as e:
        print(f"resjax check: {e.args[0]}", file=sys.stderr)
        return 2
    _use_compilation_cache()
    with tqdm(statements, desc="checking", unit="statement", file=sys.stderr, disable=args.quiet) as bar:
        results = runner.run(bar, args.profile, progress=lambda s: bar.set_postfix_str(s.id))
    for r in results:
        if r.status == "falsified":
            r.witness_path = str(report.witness_file(r, args.witness_dir))
    print(report.table(results))
    print()
    for r in results:
        print(report.details(r))
    if args.json:
        path = pathlib.Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_json(results, args.profile), indent=1))
        print(f"\nJSON report: {path}")
    code = report.exit_code(results)
    if code:
        print("\nFAILED: a statement resjax relies on was falsified (see the witness).", file=sys.stderr)
    return code


def _train(args) -> int:
    import jax

    if args.num_processes > 1:  # before anything touches a device
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from resjax.train import config as config_mod
    from resjax.train import loop

    try:
        cfg = config_mod.load(args.config).override(args.set or [])
        train_set, test_set = loop.load_splits(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"resjax train: {e}", file=sys.stderr)
        return 2
    loop.split_cpu(cfg.cpu_devices)
    workdir = pathlib.Path(args.workdir or f"runs/{args.config}")
    trainer = loop.Trainer(cfg, workdir, train_set, test_set, progress=not args.quiet)
    try:
        summary = trainer.run()
    except loop.NonFiniteLoss as e:
        print(f"resjax train: stopped: {e}", file=sys.stderr)
        return 3
    print(
        f"done: {summary['steps']} steps in {summary['seconds']:.0f} s ({summary['images_per_s']:.0f} images/s on "
        f"{summary['devices']} {summary['backend']} device(s)); test accuracy {summary['test_accuracy']:.4f}. "
        f"Metrics, curves.png and summary.json in {workdir}"
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="resjax", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check the paper's statements numerically (float64)")
    check.add_argument("--profile", choices=["quick", "thorough"], default="quick")
    check.add_argument("--json", metavar="PATH", help="write the report as JSON")
    check.add_argument("--witness-dir", default="witnesses", help="where counterexamples are saved")
    check.add_argument("--replay", metavar="FILE", help="re-check one witness file")
    check.add_argument("--only", nargs="+", metavar="ID", help="check only these statement ids")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    train = sub.add_parser("train", help="train a Section 4 network (data-parallel over all devices)")
    train.add_argument("--config", default="paper", help="paper, fast, cpu, digits or tiny (train/configs)")
    train.add_argument("--workdir", help="checkpoints, metrics and plots (default runs/CONFIG); resumes from it")
    train.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="override configuration fields")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--coordinator", default="localhost:12355", help="jax.distributed coordinator HOST:PORT")
    train.add_argument("--num-processes", type=int, default=1, help="processes (hosts) in the run")
    train.add_argument("--process-id", type=int, default=0, help="this process's index")
    args = parser.parse_args(argv)
    return _check(args) if args.command == "check" else _train(args)


if __name__ == "__main__":
    sys.exit(main())
