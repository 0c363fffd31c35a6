"""The ``resjax`` command: argument parsing and printing only.

Bad input ends with exit status 2 and one line on stderr that says what is wrong and
what to do, before anything compiles; never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

import resjax

DESCRIPTION = """\
resjax: the reference implementation of "Identity Matters in Deep Learning"
(Hardt & Ma, ICLR 2017).

  resjax check                      audit every statement of the paper numerically (float64)
  resjax check --replay FILE        re-check one saved counterexample
  resjax train                      train the embedded default (8x8 digits, no download)
  resjax train --config paper --set data=DIR    Section 4's CIFAR-10 recipe
  resjax experiment NAME            the paper's argument measured: linear-gd, plain-gd, hypotheses,
                                    random-labels, ablation (docs/experiments.md); --quick for seconds
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless it is None or False (nothing to show)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def _fail(command: str, error) -> int:
    """One line on stderr, exit status 2."""
    print(f"resjax {command}: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


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


def _writable(path: str, what: str) -> None:
    """Refuses an output path that cannot be written, before hours of work would end there."""
    p = pathlib.Path(path)
    if (what == "file" and p.is_dir()) or (what == "directory" and p.exists() and not p.is_dir()):
        raise ValueError(f"{path} must be a {what}, but it is {'a directory' if p.is_dir() else 'a file'}.")
    parent = p if what == "directory" else p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create {parent}: {e.strerror}.") from None
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{parent} is not writable.")


def _check(args) -> int:
    from tqdm import tqdm

    from resjax.checks import registry, report, runner

    if args.replay:
        try:
            result = report.replay(args.replay, only=args.only)
        except report.WitnessError as e:
            return _fail("check", e)
        print(report.details(result))
        print(f"replay of {args.replay}: {result.statement.id} ({result.statement.verdict_subject}) is {result.status} "
              "on this instance")
        return report.exit_code([result])
    try:
        statements = registry.select(args.only)
        _writable(args.witness_dir, "directory")
        if args.json:
            _writable(args.json, "file")
    except (KeyError, ValueError) as e:
        return _fail("check", e.args[0])
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
        path.write_text(json.dumps(report.to_json(results, args.profile), indent=1))
        print(f"\nJSON report: {path}")
    code = report.exit_code(results)
    if code:
        print("\nFAILED: a statement resjax relies on was falsified (see the witness).", file=sys.stderr)
    return code


def _train_setup(args, cfg):
    """The workdir and the data, validated; raises ValueError/TypeError/OSError."""
    from resjax.train import loop

    workdir = pathlib.Path(args.workdir or f"runs/{args.config}")
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"--workdir {workdir} is a file; give a directory.")
    train_set, test_set = loop.load_splits(cfg, decode=False)  # the trainer decodes them while it compiles
    return workdir, train_set, test_set


def _dry_run(trainer) -> int:
    """Prints what a run would do: the resolved configuration, devices, data, and the workdir's state."""
    import dataclasses

    import jax

    from resjax.train import loop, workdir as workdir_mod

    cfg = trainer.config
    print(json.dumps(dataclasses.asdict(cfg), indent=1, default=str))
    pipeline = "streamed from the host" if trainer.streaming else "on the devices"
    print(f"data: {len(trainer.train_set)} training and {len(trainer.test_set)} test images, {pipeline}, seen as "
          f"{trainer.shape}, {cfg.num_classes} classes")
    step = loop.latest_step(trainer.workdir)
    workdir_mod.check_free(trainer.workdir, jax.process_index())
    diff = trainer.check_resume(step)
    plan = "start from scratch" if step is None else "nothing to do: complete" if step == cfg.steps else f"resume at step {step}"
    changed = f", changing {', '.join(diff)}" if diff else ""
    print(f"dry run: would {plan}{changed}, in {trainer.workdir} on {jax.device_count()} device(s); nothing was written.")
    return 0


def _started() -> float:
    """When this process began (time.time() scale): a run's wall_seconds then count Python's
    start and the imports too. Linux only; elsewhere, now."""
    import time

    try:
        ticks = int(pathlib.Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(pathlib.Path("/proc/uptime").read_text().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class _HalfDeletedCheckpoint:
    """Drops orbax's warning about a checkpoint without its metadata file: a kill while
    orbax deletes an old checkpoint (beyond keep_checkpoints) leaves such a step behind,
    harmlessly (the next save deletes it), and the warning would break the command's
    one-line messages."""

    @staticmethod
    def filter(record) -> bool:
        return not str(record.msg).startswith("Metadata file does not exist")


def _train(args) -> int:
    import logging
    import time

    import jax

    from resjax.train import backend
    from resjax.train import config as config_mod

    logging.getLogger("absl").addFilter(_HalfDeletedCheckpoint)

    if args.num_processes > 1:  # before anything touches a device
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    try:
        cfg = config_mod.load(args.config).override(args.set or [])
        backend_start = backend.Start(cfg)  # sets XLA's flags first
    except (ValueError, TypeError, OSError, ImportError) as e:
        return _fail("train", e)
    backend_start.start()  # the backend comes up while the trainer is imported and the data listed
    from resjax.train import loop

    try:
        imported = time.time()
        workdir, train_set, test_set = _train_setup(args, cfg)
        trainer = loop.Trainer(cfg, workdir, train_set, test_set, progress=not args.quiet,
                               allow_config_change=args.allow_config_change, command=" ".join(["resjax", *sys.argv[1:]]),
                               started=_started(), setup_marks={"imports": imported, "listing": time.time()},
                               backend_start=backend_start)
        if args.dry_run:
            return _dry_run(trainer)
        summary = trainer.run()
    except (ValueError, TypeError, OSError, ImportError, backend.BackendError) as e:
        return _fail("train", e)
    except loop.NonFiniteLoss as e:
        print(f"resjax train: stopped: {e}", file=sys.stderr)
        return 3
    if summary.get("already_complete"):
        print(f"already complete: the run in {workdir} finished its {summary['steps']} steps before (test accuracy "
              f"{summary['test_accuracy']:.4f}); nothing was trained or written. Raise steps with "
              "--allow-config-change to train further.")
        return 0
    print(
        f"done: {summary['steps']} steps in {summary['seconds']:.0f} s ({summary['images_per_s']:.0f} images/s on "
        f"{summary['devices']} {summary['backend']} device(s); {summary['wall_seconds']:.0f} s in all); test accuracy "
        f"{summary['test_accuracy_single_view']:.4f} single-view, {summary['test_accuracy_flip']:.4f} flip-averaged. "
        f"Metrics, curves.png and summary.json in {workdir}"
    )
    return 0


def _experiment(args) -> int:
    """Runs one experiment of resjax.experiments: table on stdout, rows.json and NAME.png in the workdir."""
    import dataclasses

    from tqdm import tqdm

    from resjax.experiments import EXPERIMENTS, configure

    module = EXPERIMENTS[args.name]
    workdir = pathlib.Path(args.workdir or f"runs/experiment-{args.name}{'-quick' if args.quick else ''}")
    try:
        config = configure(module, args.quick, args.set or [])
        if workdir.exists() and not workdir.is_dir():
            raise ValueError(f"--workdir {workdir} is a file; give a directory.")
        workdir.mkdir(parents=True, exist_ok=True)
        _writable(str(workdir / "rows.json"), "file")
    except (ValueError, OSError) as e:
        return _fail("experiment", e)
    _use_compilation_cache()
    try:  # what only the run can find out: missing data, too few images, devices already set up
        with tqdm(total=module.size(config), desc=args.name, unit="run", file=sys.stderr, disable=args.quiet) as bar:
            rows = module.run(config, progress=bar.update)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        return _fail("experiment", e)
    (workdir / "rows.json").write_text(json.dumps({"experiment": args.name, "config": dataclasses.asdict(config),
                                                   "rows": rows}, indent=1))
    module.plot(rows, workdir / f"{args.name}.png")
    cells = [[_cell(row.get(c)) for c in module.COLUMNS] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(module.COLUMNS)]
    for line in [list(module.COLUMNS), *cells]:
        print("  ".join(f"{cell:>{w}}" for cell, w in zip(line, widths)))
    print(f"\n{len(rows)} runs; rows.json and {args.name}.png in {workdir}")
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not (sep and host and port.isdigit() and 0 < int(port) < 65536):
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 10.0.0.1:12355)")
    return value


def _count(minimum: int):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{n} is below {minimum}")
        return n

    return parse


def parser() -> argparse.ArgumentParser:
    from resjax.train.configs import names

    p = argparse.ArgumentParser(prog="resjax", description=DESCRIPTION, formatter_class=_Formatter)
    p.add_argument("--version", action="version", version=f"resjax {resjax.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{check,train,experiment}")
    check = sub.add_parser("check", help="check the paper's statements numerically (float64)", formatter_class=_Formatter,
                           description="Check every statement of the paper on drawn and attacked instances.")
    check.add_argument("--profile", choices=["quick", "thorough"], default="quick",
                       help="quick: seconds per statement, deterministic; thorough: hours of sampling, "
                            "shrinking and attack")
    check.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    check.add_argument("--witness-dir", default="witnesses", help="where counterexamples are saved")
    check.add_argument("--replay", metavar="FILE", help="re-check one witness file on its own")
    check.add_argument("--only", nargs="+", metavar="ID",
                       help="check only these statement ids (with --replay: the witness must be one of them)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    train = sub.add_parser("train", help="train a Section 4 network (data-parallel over all devices)",
                           formatter_class=_Formatter,
                           description="Train a Section 4 network; a run resumes from the checkpoints in its workdir.")
    train.add_argument("--config", default="digits",
                       help=f"a named configuration: {', '.join(names())} (train/configs); digits needs no download")
    train.add_argument("--workdir", help="checkpoints, metrics and plots; resumes from it (default: runs/CONFIG)")
    train.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                       help="override configuration fields; model.NAME=VALUE for one network option")
    train.add_argument("--allow-config-change", action="store_true",
                       help="resume a checkpoint with a configuration that differs from the one it was trained with")
    train.add_argument("--dry-run", action="store_true",
                       help="validate configuration, data, devices and workdir, print the plan, train nothing")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--coordinator", default="localhost:12355", type=_host_port,
                       help="jax.distributed coordinator HOST:PORT")
    train.add_argument("--num-processes", type=_count(1), default=1, help="processes (hosts) in the run")
    train.add_argument("--process-id", type=_count(0), default=0, help="this process's index")
    from resjax.experiments import EXPERIMENTS

    experiment = sub.add_parser("experiment", help="run one of the paper's experiments (docs/experiments.md)",
                                formatter_class=_Formatter,
                                description="Run an experiment: a table on stdout, rows.json and a plot in the workdir.")
    experiment.add_argument("name", choices=sorted(EXPERIMENTS), help="which experiment")
    experiment.add_argument("--quick", action="store_true", help="a tiny grid in seconds (what CI runs)")
    experiment.add_argument("--workdir", help="where rows.json and the plot go (default: runs/experiment-NAME)")
    experiment.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                            help="override fields of the experiment's config (JSON values; lists for tuples)")
    experiment.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command == "train" and args.process_id >= args.num_processes:
        p.error(f"--process-id {args.process_id} must be below --num-processes {args.num_processes}")
    return {"check": _check, "train": _train, "experiment": _experiment}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
