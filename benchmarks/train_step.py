"""Throughput of the training step: images/s and TFLOP/s, batch 128 and 512, bf16 and float32.

The Table 1 network (a scaled-down one on CPU unless --full), the same jitted step as
`resjax train` (on-device gather, augmentation, SGD with momentum), over all devices.
FLOPs: 3 x the forward convolutions' multiply-adds x 2 (forward, and the two
backward products), counted from the architecture: 11.9 GFLOP per image for Table 1.

Run: python benchmarks/train_step.py [--full | --config cpu] [--steps 50] [--batches 128 512]
                                     [--dtypes bfloat16 float32] [--cpu-devices 16]
                                     [--steps-per-call 1 8] [--state-layout default auto]
                                     [--model NAME=VALUE ...]
                                     [--recipe] [--set KEY=VALUE ...]
                                     [--json FILE] [--profile DIR] [--hlo DIR]
--config NAME takes the network of a training configuration (train/configs/NAME.py) and,
on a host without an accelerator, its cpu_devices; with --recipe, its whole training step
too (optimiser, clipping, label smoothing, mixup, parameter average: what `resjax train
--config NAME` compiles, at full image size); --set changes fields of the measured step's
configuration as `resjax train --set` does. For an ImageNet configuration
(``--config imagenet34``) it measures the streaming pipeline's step on image_size-pixel
batches (the host's decoding is benchmarks/input_pipeline.py's part). --json writes the rows (and the
device) as JSON. --steps-per-call measures each count of steps per jitted call (a
lax.scan, as `resjax train`'s steps_per_call). --state-layout measures the step with the
state (parameters, optimiser state, average) in each layout named, as `resjax train`'s
state_layout places it (by default the configuration's): default, row-major; auto, as XLA
chooses for the step (jax.experimental.layout's Layout.AUTO; each row's
``relaid_layouts`` counts the arrays it laid out otherwise: on a
GPU, whose cuDNN reads each kernel output channels major, the kernels, we expect; XLA's
CPU backend keeps them all row-major); ohwi, every kernel output channels major without
asking XLA (what auto would do on a GPU, we expect). --profile traces 5 calls of each batch size, dtype
and state layout (first steps-per-call value) with jax.profiler and writes
DIR/b{BATCH}_{DTYPE}[_auto_layout or _ohwi_layout]/profile_summary.json: the device time per step by kernel, its share
by kind (convolution and matrix kernels, XLA fusions, copies) and the idle time between
kernels (also in the row, as ``profile_us``). Each row counts what the compiled step launches (``hlo_ops``:
cuDNN convolution calls, XLA fusions by kind; printed as "launches"); --hlo writes each
compiled step's optimised HLO text into DIR. --model sets network options on top of the chosen network's
(``--model fusible_relu=true``: values as in ``resjax train --set model.NAME=VALUE``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import gzip
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from resjax import models
from resjax.train import config as config_mod
from resjax.train import backend, loop, step, stream
from resjax.train.config import TrainConfig

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # launches.py beside it, under PYTHONSAFEPATH too
from launches import hlo_ops  # noqa: E402

LAYOUT_NAMES = {"default": "", "auto": ", state laid out by XLA", "ohwi": ", kernels output channels major"}
SMALL = {"stem": (3, 16, 1), "widths": (32, 64, 128), "blocks": (2, 2, 2), "strides": (1, 2, 2)}


def train_flops_per_image(model: models.ResNet, size: int = 32) -> float:
    """3 x Σ_conv 2·k²·c_in·c_out·H_out·W_out (the head and the elementwise work are negligible)."""
    k, c, s = model.stem
    h, total, c_in = size // s, 2 * k * k * 3 * c * (size // s) ** 2, c
    for width, count, stride in zip(model.widths, model.blocks, model.strides):
        for i in range(count):
            h //= stride if i == 0 else 1
            total += 2 * 9 * (c_in if i == 0 else width) * width * h * h + 2 * 9 * width * width * h * h
        c_in = width
    return 3.0 * total


def build(base: TrainConfig, batch: int, dtype: str, steps: int, per_call: int = 1, size: int = 32,
          streamed: bool = False, layout: str = "default"):
    """The step of `resjax train` with ``base``'s network and recipe, compiled ahead of
    time for random uint8 images of ``size`` pixels a side (``per_call`` steps per call, as
    steps_per_call does; full size throughout): (the network, a function making ``n`` calls
    from the current state and blocking at the end, the compile's seconds, the compiled
    step's optimised HLO, what ``layout`` did to the state: relaid_layouts). ``streamed``:
    the streaming pipeline's step, whose batches arrive augmented (imagenet34); else the
    device pipeline's, which gathers and augments on the device. ``layout``: "default",
    the state as jax.device_put lays it out (row-major), as `resjax train` does; "auto",
    as XLA chooses for this step (jax.experimental.layout's Layout.AUTO), the state placed
    so before the first call."""
    every = {k: per_call for k in ("log_every", "eval_every", "checkpoint_every")}  # only divisibility matters
    cfg = dataclasses.replace(base, batch_size=batch, compute_dtype=dtype, steps_per_call=per_call,
                              steps=per_call * -(-base.steps // per_call), progressive_resizing=(), **every)
    model = models.ResNet(num_classes=cfg.num_classes, dtype=jnp.dtype(dtype), **cfg.model)
    mesh = loop.make_mesh()
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    lead = (per_call,) if per_call > 1 else ()
    shard = step.call_sharding(mesh, per_call)
    rng = np.random.default_rng(0)
    steps_fns = step.make_steps(model, cfg, jnp.dtype(dtype))
    norm = step.norm_argument(np.full(3, 0.5), np.full(3, 0.25), rep)

    def initial(key):
        return step.initial_state(model, steps_fns.tx, cfg, (size, size, 3), jnp.dtype(dtype), key)

    host = loop.on_host(initial, 0)  # as `resjax train` initialises
    state = jax.jit(initial, out_shardings=rep)(jax.random.key(0)) if host is None else jax.device_put(host, rep)
    shapes = jax.tree.map(lambda a: loop.abstract(a.shape, a.dtype, rep), state)  # what Layout.AUTO compiles for
    placed = loop.placement(layout, shapes, rep)  # as `resjax train` with state_layout
    if streamed:  # the jitted steps of `resjax train`'s two pipelines
        fn = stream.StreamFeed.jit(cfg, mesh, steps_fns, state=placed)
        calls = [(jax.device_put(rng.integers(0, 256, (*lead, batch, size, size, 3), dtype=np.uint8), shard),
                  jax.device_put(rng.integers(0, cfg.num_classes, (*lead, batch)).astype(np.int32), shard), norm)
                 for _ in range(2)]
    else:
        fn = loop.DeviceFeed.jit(cfg, mesh, steps_fns, state=placed)
        images = jax.device_put(rng.integers(0, 256, (4096, size, size, 3), dtype=np.uint8), rep)
        labels = jax.device_put(rng.integers(0, cfg.num_classes, 4096).astype(np.int32), rep)
        key = jax.device_put(jax.random.key(1), rep)
        calls = [(images, labels, jax.device_put(rng.integers(0, 4096, (*lead, batch)).astype(np.int32), shard), key,
                  norm) for _ in range(max(steps, 5))]
    began = time.perf_counter()
    compiled = fn.lower(shapes, *calls[0]).compile()  # ahead of time, as `resjax train` compiles its step
    compile_s = time.perf_counter() - began
    if placed is not None:
        chosen = loop.state_formats(compiled)
        relaid, box = relaid_layouts(state, chosen), {"state": jax.device_put(state, chosen)}
    else:
        relaid, box = relaid_layouts(state, compiled.input_formats[0][0]), {"state": state}

    def run(n: int) -> None:
        in_flight = loop.InFlight()  # as `resjax train` does: many calls queued can deadlock a multi-device CPU
        for i in range(n):
            box["state"], m = compiled(box["state"], *calls[i % len(calls)])
            in_flight.add(m["loss"])
        jax.block_until_ready(m)

    return model, run, compile_s, compiled.as_text(), relaid


def relaid_layouts(state, formats) -> dict:
    """How many of the state's leaves (and their bytes) ``formats`` lays out otherwise than
    they lie now (row-major, as jax.device_put placed them): on a GPU, the convolution
    kernels that XLA would rather keep in cuDNN's order (output channels major), whose
    update then needs no transposes and no copies into the donated buffers."""
    pairs = zip(jax.tree.leaves(state), jax.tree.leaves(formats))
    moved = [(a, f.layout.major_to_minor) for a, f in pairs if f.layout.major_to_minor != a.format.layout.major_to_minor]
    return {"leaves": len(jax.tree.leaves(state)), "relaid": len(moved), "relaid_bytes": sum(a.nbytes for a, _ in moved),
            "examples": {str(a.shape): order for a, order in moved}}


def measure(base: TrainConfig, batch: int, dtype: str, steps: int, profile: str | None = None,
            per_call: int = 1, size: int = 32, streamed: bool = False, hlo: str | None = None,
            layout: str = "default") -> dict:
    """Timed steps (``steps`` of them, in calls of ``per_call``) after a compile and warm-up;
    ``profile``: a folder for a trace of 5 more calls and its summary (the row gets the
    device time by kind as ``profile_us``); ``hlo``: a folder for the compiled step's
    optimised HLO; ``layout``: the state's, as build() takes it."""
    calls = max(1, steps // per_call)
    model, run, compile_s, text, relaid = build(base, batch, dtype, calls, per_call, size, streamed, layout)
    if hlo:
        pathlib.Path(hlo).mkdir(parents=True, exist_ok=True)
        suffix = "" if layout == "default" else f"_{layout}_layout"
        (pathlib.Path(hlo) / f"step_b{batch}_{dtype}_x{per_call}{suffix}.hlo.txt").write_text(text)
    run(1 + max(1, 5 // per_call))  # warm up
    t = time.perf_counter()
    run(calls)
    seconds = (time.perf_counter() - t) / (calls * per_call)
    flops = train_flops_per_image(model, size) * batch
    row = {"batch": batch, "dtype": dtype, "steps_per_call": per_call, "images_per_s": batch / seconds,
           "tflops": flops / seconds / 1e12, "gflop_per_image": flops / batch / 1e9, "step_ms": seconds * 1e3,
           "compile_s": compile_s, "hlo_ops": hlo_ops(text), "state_layout": layout, "relaid_layouts": relaid}
    if profile:
        try:
            with jax.profiler.trace(profile, create_perfetto_trace=True):
                run(5)
            trace = max(pathlib.Path(profile).rglob("perfetto_trace.json.gz"), key=lambda p: p.stat().st_mtime)
            summary = {**row, **summarise_trace(json.load(gzip.open(trace)), steps=5 * per_call)}
        except Exception as e:  # a profiler that fails must not cost the measurement (GPU time is scarce)
            summary = {**row, "device_events": 0, "note": f"profiling failed: {type(e).__name__}: {e}"}
        (pathlib.Path(profile) / "profile_summary.json").write_text(json.dumps(summary, indent=1))
        print_profile(summary)
        if summary["device_events"]:
            row["profile_us"] = {k: summary[k] for k in ("step_device_busy_us", "step_idle_us", "kinds_us")}
    return row


KINDS = (  # (kind, substrings of a kernel name), first match wins
    ("copy", ("memcpy", "memset")),
    ("convolution/matmul", ("conv", "cudnn", "gemm", "xmma", "cutlass", "sm90", "sm80", "wgmma", "dgrad", "wgrad")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KINDS if any(k in low for k in keys)), "XLA fusion/other")


def summarise_trace(trace: dict, steps: int) -> dict:
    """Device time per step from a perfetto trace (jax.profiler): per kernel, per kind, and
    the device's idle time inside the traced window (launch and host gaps: the time no
    kernel runs, so kernels that overlap on several streams hide no gap). Events of
    processes named /device:... only; a CPU-only trace has none."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = {e["pid"]: e.get("args", {}).get("name", "") for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
    device = [e for e in events if e.get("ph") == "X" and names.get(e.get("pid"), "").startswith("/device:")]
    if not device:
        return {"device_events": 0, "note": "no device events in the trace (CPU backend?)"}
    per_kernel, per_kind = collections.Counter(), collections.Counter()
    for e in device:
        per_kernel[e["name"]] += e["dur"] / steps
        per_kind[kernel_kind(e["name"])] += e["dur"] / steps
    covered, end = 0.0, -float("inf")  # the union of the kernels' intervals: overlapping streams count once
    for e in sorted(device, key=lambda e: e["ts"]):
        covered += max(0.0, e["ts"] + e["dur"] - max(e["ts"], end))
        end = max(end, e["ts"] + e["dur"])
    span = (end - min(e["ts"] for e in device)) / steps
    return {
        "device_events": len(device),
        "step_device_busy_us": sum(per_kernel.values()),
        "step_device_span_us": span,
        "step_idle_us": span - covered / steps,
        "kinds_us": dict(per_kind.most_common()),
        "top_kernels_us": dict(per_kernel.most_common(30)),
    }


def print_profile(summary: dict) -> None:
    if not summary.get("device_events"):
        print(f"profile: {summary.get('note')}")
        return
    busy = summary["step_device_busy_us"]
    print(f"profile of one step (batch {summary['batch']}, {summary['dtype']}): {summary['step_ms']:.2f} ms wall, "
          f"device busy {busy / 1e3:.2f} ms, idle in the span {summary['step_idle_us'] / 1e3:.2f} ms")
    for kind, us in summary["kinds_us"].items():
        print(f"  {kind:<22} {us / 1e3:8.3f} ms  {100 * us / busy:5.1f}%")
    for name, us in list(summary["top_kernels_us"].items())[:12]:
        print(f"  {us / 1e3:8.3f} ms  {name[:100]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--full", action="store_true", help="the Table 1 network even on CPU")
    which.add_argument("--config", help="the network (and cpu_devices) of this training configuration")
    parser.add_argument("--cpu-devices", type=int, help="virtual CPU devices (default: the config's, else 1)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16", "float32"])
    parser.add_argument("--steps-per-call", type=int, nargs="+", default=[1],
                        help="steps per jitted call (resjax train's steps_per_call), each measured")
    parser.add_argument("--state-layout", nargs="+", choices=config_mod.STATE_LAYOUTS,
                        help="where the state lies on the device, each measured: default (row-major), auto (as XLA "
                             "chooses for the step) or ohwi (kernels output channels major); by default the "
                             "configuration's state_layout")
    parser.add_argument("--model", nargs="+", default=[], metavar="NAME=VALUE",
                        help="network options over the chosen network's, e.g. fusible_relu=true")
    parser.add_argument("--recipe", action="store_true",
                        help="with --config: the configuration's whole training step (its optimiser, clipping, "
                             "label smoothing, mixup, parameter average...), not only its network under the default recipe")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="fields of the measured step's configuration, as `resjax train --set` takes them "
                             "(e.g. ema_decay=0 donate_state=false model.fusible_relu=true)")
    parser.add_argument("--json", help="write the rows as JSON to this file")
    parser.add_argument("--profile", help="trace each batch size and dtype into a folder of this one")
    parser.add_argument("--hlo", help="write each compiled step's optimised HLO into this folder")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: expected at least 1 timed step.")
    if min(args.steps_per_call) < 1:
        parser.error(f"--steps-per-call {args.steps_per_call}: expected values of at least 1.")
    if args.recipe and not args.config:
        parser.error("--recipe measures a configuration's whole training step: name it with --config NAME.")
    try:
        config = config_mod.load(args.config) if args.config else None
    except ValueError as e:
        parser.error(str(e))
    if any(a.startswith("xla_flags=") for a in args.set):
        parser.error("--set xla_flags=...: set XLA_FLAGS in the environment instead (the backend may start first).")
    backend.split_cpu(args.cpu_devices or (config.cpu_devices if config else None))
    if args.recipe:  # as `resjax train` does, before the backend starts
        backend.add_xla_flags(config.xla_flags)
    cpu = jax.default_backend() == "cpu"
    streamed = bool(config) and config.augmentation == "imagenet"  # its batches arrive augmented from the host
    size = config.image_size if streamed else 32
    if config and args.recipe:
        base, name = config, f"the {args.config} config's whole training step (network {config.model}) at {size}x{size}"
    elif config:
        base, name = TrainConfig(model=config.model), f"the {args.config} config's network {config.model} at {size}x{size}"
    elif args.full or not cpu:
        base, name = TrainConfig(model={}), "Table 1"
    else:
        base, name = TrainConfig(model=SMALL), f"scaled-down Table 1 {SMALL}"
    overrides = [f"model.{a}" for a in args.model] + args.set
    if overrides:
        try:  # the configuration's validation: unknown names and bad values refused with a suggestion
            base = base.override(overrides)
        except ValueError as e:
            parser.error(f"{' '.join(overrides)}: {e}")
        name += f" with {' '.join(args.model + args.set)}"
    dtypes = [d for d in args.dtypes if not (cpu and d == "bfloat16")] if not args.full else args.dtypes
    print(f"{name} on {jax.device_count()} x {jax.devices()[0].device_kind}, jax {jax.__version__}")
    if cpu and "bfloat16" in args.dtypes and "bfloat16" not in dtypes:
        print("(bfloat16 skipped on CPU: its convolutions are emulated and very slow)")
    rows = []
    for batch in args.batches:
        for dtype in dtypes:
            for per_call in args.steps_per_call:
                for layout in args.state_layout or [base.state_layout]:
                    traced = args.profile and per_call == args.steps_per_call[0]
                    folder = f"{args.profile}/b{batch}_{dtype}" + ("" if layout == "default" else f"_{layout}_layout")
                    try:
                        r = measure(base, batch, dtype, args.steps, traced and folder, per_call, size, streamed,
                                    args.hlo, layout)
                    except Exception as e:  # a layout that fails must not cost the rows around it (GPU time is scarce)
                        if layout == "default":
                            raise
                        rows.append({"batch": batch, "dtype": dtype, "steps_per_call": per_call, "state_layout": layout,
                                     "error": f"{type(e).__name__}: {e}"[:2000]})
                        print(f"batch {batch:4d} {dtype:>8} x{per_call}/call{LAYOUT_NAMES[layout]}: failed: "
                              f"{rows[-1]['error']}", flush=True)
                        continue
                    rows.append(r)
                    print(f"batch {r['batch']:4d} {r['dtype']:>8} x{per_call}/call{LAYOUT_NAMES[layout]}: "
                          f"{r['images_per_s']:10,.0f} images/s  {r['tflops']:7.2f} TFLOP/s  "
                          f"({r['gflop_per_image']:.2f} GFLOP/image/step, compiled in {r['compile_s']:.1f} s)", flush=True)
                    print("  launches: " + ", ".join(f"{n} {op}" for op, n in list(r["hlo_ops"].items())[:6]))
                    if layout != "default":
                        moved = r["relaid_layouts"]
                        print(f"  state layout: {moved['relaid']} of its {moved['leaves']} arrays "
                              f"({moved['relaid_bytes'] / 1e6:.1f} MB) laid out otherwise than row-major")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"network": name, "device": jax.devices()[0].device_kind, "devices": jax.device_count(),
             "backend": jax.default_backend(), "jax": jax.__version__, "steps": args.steps, "rows": rows}, indent=1))

if __name__ == "__main__":
    main()
