"""Section 4, experiment 5: what the paper's choices buy, at CPU scale.

The `cpu` configuration's network (widths 16, 32, 64, no normalisation, fixed random
head, conv biases) and recipe (SGD with Nesterov momentum, batch 256, cosine from 0.2,
clipping, label smoothing) on CIFAR-10, one choice changed at a time, ``seeds`` runs
each: test accuracy (flip-averaged, mean ± standard deviation over seeds) and training
loss curves. Each variant also gets its largest stable learning rate, measured as
`benchmarks/stability.py` does: the variant's network trained at a constant rate (no
warm-up, no clipping: the network's margin, not the recipe's) for ``stability_steps``,
doubling the rate from the smallest of ``stability_rates`` until a run fails; a run is
stable when its loss stays finite and its last quarter averages below chance, ln(classes).

Plain networks (``shortcut=False``) use the "standard" initialisation: under fixup
(C_2 = 0) a plain block outputs zero and nothing downstream learns, and under the
paper's σ = 1/(k²c) the signal of a plain stack vanishes.

Run: resjax experiment ablation [--quick] [--set steps=2200 ...]
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import tempfile
import time

import numpy as np

COLUMNS = ("variant", "seeds", "acc_mean", "acc_std", "loss_mean", "max_stable_lr", "seconds")

RESIDUAL = {"shortcut": True, "init_scheme": "fixup"}
PLAIN = {"shortcut": False, "init_scheme": "standard"}
VARIANTS = {  # name -> network options changed from the cpu configuration's
    "residual, fixup (cpu config)": {},
    "residual, paper init": {"init_scheme": "paper"},
    "residual, standard init": {"init_scheme": "standard"},
    "residual, trained head": {"head": "trained"},
    "plain, standard init": PLAIN,
    "residual, 1 block/stage": {"blocks": (1, 1, 1)},
    "plain, 1 block/stage": {**PLAIN, "blocks": (1, 1, 1)},
    "residual, 4 blocks/stage": {"blocks": (4, 4, 4)},
    "plain, 4 blocks/stage": {**PLAIN, "blocks": (4, 4, 4)},
}


@dataclasses.dataclass(frozen=True)
class Config:
    data: str = "../shared/data/cifar10-jpeg"
    base: str = "cpu"  # the training configuration (train/configs) every variant starts from
    variants: tuple[str, ...] = tuple(VARIANTS)
    seeds: int = 3
    steps: int = 400  # the cpu configuration trains 2,200; sized to the budget (docs/experiments.md)
    stability_steps: int = 60
    stability_rates: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
    cpu_devices: int | None = 16


QUICK = Config(data="digits", base="digits", variants=("residual, fixup (cpu config)", "plain, standard init"),
               seeds=2, steps=40, stability_steps=20, stability_rates=(0.1, 0.4), cpu_devices=None)


def training_config(config: Config, variant: str, seed: int):
    """The base configuration with the variant's network options, ``config.steps``, the
    warm-up scaled to that budget (the cosine decays to zero at its end), 25 loss logs and
    one evaluation, at the end."""
    from resjax.train import config as config_mod

    base = config_mod.load(config.base)
    model = {**base.model, **RESIDUAL, **VARIANTS[variant]}
    if config.base == "digits":  # two stages there: keep its stage count
        model["blocks"] = model["blocks"][: len(base.model["widths"])]
    return config_mod.build(
        dataclasses.replace, base, data=config.data, model=model, seed=seed, steps=config.steps,
        warmup_steps=base.warmup_steps * config.steps // base.steps, lr_boundaries=(),
        log_every=max(config.steps // 25, 1),
        eval_every=config.steps, checkpoint_every=config.steps, cpu_devices=config.cpu_devices,
        progressive_resizing=(),  # the networks compared at full size, as docs/experiments.md records them
    )


def stability_config(config: Config, variant: str, rate: float):
    """The variant at a constant learning rate, without warm-up or clipping."""
    cfg = training_config(config, variant, seed=0)
    return dataclasses.replace(cfg, learning_rate=rate, lr_schedule="piecewise", lr_boundaries=(), warmup_steps=0,
                               grad_clip=None, steps=config.stability_steps,
                               log_every=max(config.stability_steps // 20, 1), eval_every=config.stability_steps,
                               checkpoint_every=config.stability_steps)


def _train(cfg, train_set, test_set) -> tuple[dict, list[list[float]]]:
    """(summary, [[step, loss], ...]) of one run in a scratch workdir; the summary is None
    when the loss became non-finite."""
    from resjax.train import loop

    with tempfile.TemporaryDirectory() as workdir:
        try:
            summary = loop.Trainer(cfg, workdir, train_set, test_set, progress=False).run()
        except loop.NonFiniteLoss:
            summary = None
        lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
    curve = [[r["step"], r["loss"]] for r in map(json.loads, lines) if "loss" in r]
    return summary, curve


def stable(curve: list[list[float]], classes: int) -> bool:
    losses = [loss for _, loss in curve]
    tail = losses[-max(len(losses) // 4, 1):]
    return bool(losses) and all(map(math.isfinite, losses)) and float(np.mean(tail)) < math.log(classes)


def largest_stable_rate(config: Config, variant: str, train_set, test_set, progress) -> float | None:
    """The largest of ``stability_rates`` (tried in increasing order, stopping at the first
    failure) at which the variant trains stably; None if even the smallest fails."""
    best = None
    rates = sorted(config.stability_rates)
    probe = dataclasses.replace(test_set, images=test_set.images[:500], labels=test_set.labels[:500])  # its accuracy is not used
    for i, rate in enumerate(rates):
        cfg = stability_config(config, variant, rate)
        summary, curve = _train(cfg, train_set, probe)
        ok = summary is not None and stable(curve, cfg.num_classes)
        progress(len(rates) - i if not ok else 1)  # the rates not tried count as done
        if not ok:
            break
        best = rate
    return best


def run_variant(config: Config, variant: str, train_set, test_set, progress) -> dict:
    t0 = time.perf_counter()
    accs, losses, curves = [], [], []
    for seed in range(config.seeds):
        summary, curve = _train(training_config(config, variant, seed), train_set, test_set)
        accs.append(summary["test_accuracy"] if summary else math.nan)
        losses.append(curve[-1][1] if curve else math.nan)
        curves.append(curve)
        progress(1)
    return {"variant": variant, "model": VARIANTS[variant], "seeds": config.seeds,
            "acc_mean": float(np.mean(accs)), "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
            "accs": accs, "loss_mean": float(np.mean(losses)),
            "max_stable_lr": largest_stable_rate(config, variant, train_set, test_set, progress),
            "seconds": time.perf_counter() - t0, "curves": curves}


def check(config: Config) -> None:
    """Refuses, before any data is read, a configuration that could not run as asked."""
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; the variants are {list(VARIANTS)}.")
    if config.seeds < 1 or config.steps < 1 or config.stability_steps < 1 or not config.stability_rates:
        raise ValueError("seeds, steps and stability_steps must be ≥ 1 and stability_rates not empty.")
    if config.data != "digits" and not config.data.startswith("tfds:") and not pathlib.Path(config.data).exists():
        raise ValueError(f"data={config.data!r} does not exist: give CIFAR-10 as an image folder or tarballs "
                         "(docs/data.md) or tfds:cifar10, e.g. --set data=tfds:cifar10.")
    for v in config.variants:
        training_config(config, v, 0)


def run(config: Config = Config(), progress=None) -> list[dict]:
    """One row per variant; ``progress(n)`` after each n units of ``size(config)``."""
    from resjax.train import backend, loop

    check(config)
    try:
        backend.split_cpu(config.cpu_devices)
    except RuntimeError:
        raise RuntimeError(f"cpu_devices={config.cpu_devices} must be set before JAX first runs: run the experiment "
                           "in a fresh process, or set cpu_devices=None to use the devices as they are.") from None
    train_set, test_set = loop.load_splits(training_config(config, config.variants[0], 0))
    rows = []
    for variant in config.variants:
        rows.append(run_variant(config, variant, train_set, test_set, progress or (lambda n: None)))
    return rows


def size(config: Config) -> int:
    return len(config.variants) * (config.seeds + len(config.stability_rates))


def plot(rows: list[dict], path) -> None:
    """Test accuracy (mean ± std over seeds), the largest stable rate, and the mean training
    loss curve of each variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(17, 5), gridspec_kw={"width_ratios": [1.3, 1, 1.3]})
    names = [r["variant"] for r in rows]
    y = np.arange(len(rows))[::-1]
    colors = ["tab:blue" if r["model"].get("shortcut", True) else "tab:red" for r in rows]
    a.barh(y, [100 * r["acc_mean"] for r in rows], xerr=[100 * r["acc_std"] for r in rows], color=colors)
    a.set(yticks=y, yticklabels=names, xlabel="test accuracy, % (mean ± std over seeds)")
    lo = min(100 * r["acc_mean"] for r in rows if math.isfinite(r["acc_mean"])) if rows else 0
    a.set_xlim(max(0, lo - 10), 100)
    rates = [r["max_stable_lr"] for r in rows]
    b.barh(y, [x or 0 for x in rates], color=colors)
    for yi, x in zip(y, rates):  # None: even the smallest rate tried failed
        b.text(x or 0, yi, f" {x:g}" if x else " none stable", va="center", fontsize=8)
    b.set(yticks=y, yticklabels=[], xlabel="largest stable constant learning rate (no warm-up, no clipping)")
    for r, color in zip(rows, plt.cm.tab10(np.arange(len(rows)) % 10)):
        curves = [np.array(cv) for cv in r["curves"] if cv]
        if curves:
            n = min(len(cv) for cv in curves)
            c.plot(curves[0][:n, 0], np.mean([cv[:n, 1] for cv in curves], axis=0), color=color, label=r["variant"],
                   linestyle="-" if r["model"].get("shortcut", True) else "--")
    c.set(xlabel="step", ylabel="training loss (mean over seeds)")
    c.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
