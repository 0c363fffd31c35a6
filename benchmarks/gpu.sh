#!/usr/bin/env bash
# Everything issue 10 asks of a GPU, in parts that each fit one 9-minute device run,
# most valuable first. Each part writes logs and JSON under $DEST/<part> and prints a
# summary; run the parts in order (b and c only train).
#
#   a  the bf16 matrix-multiply ceiling, the step benchmark of resjax at batch 128 and
#      512 (bf16) with a profile of each and the optimised HLO (a/hlo/), each also with
#      the state laid out as XLA chooses (train_step.py --state-layout auto), both
#      peers side by side (../shared/bench/peer_step.py, copied to $PEER_STEP; the JAX
#      peer's compiled step dumped by XLA into a/peer_hlo/), the ratios and each step's
#      launch count (step_benchmark.json), then one `fast` run (seed 0)   ~6-7 min on an H200
#   b  the second `fast` seed                                          ~3 min
#   c  the unchanged `paper` configuration with seed 1                 ~7 min
#   p  `fast` with progressive resizing (16-pixel images to step 3,200, 24 to 5,100, then
#      32: the `cpu` recipe's phases, scaled): how much of the loop it saves on a GPU, and
#      what it costs in accuracy (on the CPU: 30% of the time to 80%, docs/section4.md) ~3 min
#   q  `fast` with progressive resizing and 9,000 steps (92 epochs; p's phases x 9/7): do
#      more epochs, paid for by smaller images early, close the gap to 93.62%?     ~3 min
#   g  `paper` (seed 0) with bfloat16 logits and loss (model.float32_head=false): the
#      precision hypothesis of docs/section4.md for the plain-JAX run's divergence  ~7 min
#   s  `fast` (seed 0) with 6,000 steps instead of 7,000 (62 epochs): does the command
#      fit in 180 s (7,000 took 191.5-193.8 s), and what does the shorter run cost?  ~3 min
#   f  `fast` (seed 0) with the fusible ReLUs and XLA's experimental convolution fusion
#      (through the configuration's xla_flags), the step lever of part y (+4.7% on fast's
#      network at batch 512): does the command come under 180 s with 7,000 steps, at the
#      same accuracy?                                                        ~3 min
#   l  `fast` (seed 0) with the state laid out as XLA chooses (state_layout=auto): the
#      layout lever of parts a, x and r, end to end (with TRAIN_SET, on top of f's levers) ~3 min
#   o  `fast` (seed 0) with every kernel laid out output channels major (state_layout=ohwi):
#      in place of l where XLA's own choice (auto) leaves the kernels row-major        ~3 min
#   t  `fast` (seed 0) with XLA's autotuner off (--xla_gpu_autotune_level=0, through the
#      configuration's xla_flags): each convolution takes cuDNN's heuristic first choice
#      untimed. The compile (28-38 s in fast's runs, 19-28 s of it waited for) against
#      the step rate: does the command come under 180 s, at the same accuracy?   ~3 min
#   k  the compile of `fast`'s whole training step (its recipe, batch 512), one process
#      each: as configured; autotuning level 1 (every candidate still timed, without the
#      buffer checks); level 0 (none timed: part t's); the fusible ReLUs under the
#      convolution fusion (part f's), without and with level 0; each stage's 8 repeated
#      blocks as one under nn.scan (model.scan_blocks: a third of the program to compile,
#      and a loop in the step). Each compile's seconds, its HLO passes' share and the
#      longest passes (XLA's compilation statistics: the rest is code generation), the
#      step rate, and what each variant would change over fast's 7,000 steps
#      (k/variants.json)                                                     ~4.5 min
#   best `fast` (seed 0) with the variant of part k that would make its command shortest
#      (benchmarks/levers.py: the steps' time at the variant's rate and the loop's wait
#      for its compile; the baseline unless one saves more than 2 s), read from
#      $LEVERS_FROM (default: k/variants.json of this DEST): part k's answer end to end ~3 min
#   best1  the same with seed 1 (in a later call: LEVERS_FROM=a carried copy of k/variants.json) ~3 min
#   n  `fast` (seed 0) with batch norm and the standard initialisation in place of the
#      weight standardisation, at the learning rate of the recipe without it (0.2), and
#      without the parameter average (its evaluation would pair averaged weights with
#      the raw running statistics): what a normalisation layer would add to
#      `fast` without one. Compare with `fast`'s raw parameters (_no_ema)     ~3 min
#   x  the step (Table 1, the network of the peers and of the speed target; bf16, batch
#      128 and 512) under variants, one process each: none; ReLUs that XLA can fuse
#      into the convolutions (model option fusible_relu); XLA's experimental cuDNN
#      convolution fusion (elementwise epilogues into the convolutions, forward and
#      backward), without and with those ReLUs; the kernels output channels major,
#      cuDNN's order (--state-layout ohwi: no transposed updates, no copies into the
#      donated state; part a says whether XLA would choose so itself), alone and with
#      the fused ReLUs and the convolution fusion; the baseline again
#      (the spread between processes). images/s, ratios, compile times, what each
#      compiled step launches (cuDNN calls, fusions) and its device time by kernel kind (a profile) in
#      x/variants.json; each step's optimised HLO in x/hlo_N/           ~7-8 min
#   y  the step of `fast`'s network (batch 128 and 512): without its weight
#      standardisation (what it costs, profiled), without its biases, with the fusible
#      ReLUs, with those and the convolution fusion, and under CUDA graphs
#      (y/variants.json; for fast's 180 s)                                  ~6-7 min
#   r  `fast`'s whole training step (its recipe: clipping, mixup, label smoothing, the
#      parameter average; batch 512) under variants, one process each: as configured;
#      without the average, without mixup, without clipping, without the weight
#      standardisation (where do the 1.1-2.2 ms per step go between the step benchmark and
#      the training loop?); without donating the state (the 112 copies after the
#      transposed updates); with the fusible ReLUs and the convolution fusion (the step
#      lever measured in part y, on the whole step); the state laid out as XLA chooses,
#      and with its kernels output channels major (ohwi) (r/variants.json; the compile
#      levers are part k's)                                                   ~6-7 min
#   i  issue 13: the imagenet34 step (streamed batches, 224x224, bf16, batch 128 and
#      256) and, where grain is installed, the input pipeline on this host's cores with
#      cores per GPU from the measured step                               ~2-3 min
#
# (step and fast0 are a's two halves.)
# Usage: DATA=gpu/cifar10-jpeg PEER_STEP=gpu/peer_step.py DEST=gpu/out bash benchmarks/gpu.sh a [b c]
# TINY=1 runs every part in seconds on a CPU with a tiny network (the test suite does);
# TRAIN_SET adds `--set` overrides to the training runs (TINY needs num_classes etc.).
# Each training run compiles cold: it gets its own empty XLA cache.
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-gpu/cifar10-jpeg}
PEER_STEP=${PEER_STEP:-gpu/peer_step.py}
DEST=${DEST:-gpu/out}
PY=${PYTHON:-python3}
TINY=${TINY:-}
read -r -a EXTRA <<<"${TRAIN_SET:-}"
if [ -n "$TINY" ]; then
  # XLA CPU's LLVM at level 0 for every process of the parts: TINY checks what runs, not
  # how fast, and the tiny step compiles in about half the time (3.9 -> 2.1 s; the test's
  # fixture, back to back: 317 -> 233 s, 2026-12-01). The step variants keep it under their own flags.
  export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_backend_optimization_level=0"
  CEILING=(--size 256 --repeats 3); STEP=(--config tiny --steps 4 --batches 16 32 --dtypes float32 --steps-per-call 1 2 --state-layout default auto)
  PEERS=(--tiny --which jax --batches 16,32 --dtypes fp32); STEPS=(--steps 3)
  INET=(--batches 2 --dtypes float32 --steps 1 --cpu-devices 1); PIPE=(--images 20 --batch 8 --batches 1 --workers 1)
  VSTEP=(--steps 2 --batches 16 --dtypes float32); XNET=(--config tiny); YNET=(--config tiny)
  RNET=(--config fast --recipe --set "model.stem=[3,4,1]" "model.widths=[8,16]" "model.blocks=[1,2]" "model.strides=[1,2]")  # k: 1 block scanned
  PROGRESSIVE=("progressive_resizing=[[2, 4]]"); LONGER=("progressive_resizing=[[2, 4]]" steps=6 checkpoint_every=6)
  SHORTER=(steps=3 checkpoint_every=3)
else
  # 288 timed steps (300 for the peers): 1.7 s at batch 128, where 100 steps (0.6-0.9 s)
  # gave resjax 13,821 and 18,842 images/s in two processes 7 minutes apart
  CEILING=(); STEP=(--full --steps 288 --batches 128 512 --dtypes bfloat16 --steps-per-call 1 8 --state-layout default auto)
  PEERS=(--which jax,torch --batches 128,512 --dtypes bf16)
  STEPS=(--steps 300)
  INET=(--batches 128 256 --dtypes bfloat16 --steps 30); PIPE=()
  VSTEP=(--steps 288 --batches 128 512 --dtypes bfloat16); XNET=(--full); YNET=(--config fast)
  RNET=(--config fast --recipe --batches 512)  # fast trains at 512
  PROGRESSIVE=("progressive_resizing=[[3200, 16], [5100, 24]]")  # part p's: the cpu config's phases x 7,000/2,200
  LONGER=("progressive_resizing=[[4100, 16], [6600, 24]]" steps=9000 checkpoint_every=9000)  # part q's: p's x 9/7
  SHORTER=(steps=6000 checkpoint_every=6000)  # part s's
fi
say() { echo "[$(date +%H:%M:%S)] $*"; }

train() {  # name config seed [more KEY=VALUE overrides]
  local dir="$DEST/$1" config=$2 seed=$3 t0 t1
  shift 3
  mkdir -p "$dir"
  say "train $dir: resjax train --config $config --set seed=$seed data=$DATA ${EXTRA[*]} $*"
  t0=$(date +%s.%N)
  RESJAX_CACHE_DIR="$dir/xla-cache" $PY -m resjax.cli train --config "$config" --workdir "$dir/run" --quiet \
    --set "data=$DATA" "seed=$seed" "${EXTRA[@]}" "$@" >"$dir/log.txt" 2>&1  # the part's own overrides last
  local rc=$?
  t1=$(date +%s.%N)
  tail -n 3 "$dir/log.txt"
  $PY - "$dir" "$rc" "$t0" "$t1" <<'PY'
import json, os, pathlib, sys
d, rc, t0, t1 = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = {"exit_status": rc, "command_seconds": t1 - t0, "xla_flags": os.environ.get("XLA_FLAGS", "")}
summary = d / "run" / "summary.json"
if summary.exists():
    s = json.loads(summary.read_text())
    out.update({k: s.get(k) for k in ("test_accuracy_single_view", "test_accuracy_flip", "test_loss_single_view",
                                      "wall_seconds", "startup_seconds", "phases", "compile_seconds", "compiles", "seconds",
                                      "images_per_s", "steps", "backend_start_seconds")})
    out.update({k: v for k, v in s.items() if k.endswith("_no_ema")})  # with ema_decay: the raw parameters
    rows = [json.loads(l) for l in (d / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    views = ["test_accuracy_single_view", "test_accuracy_flip"]
    views += ["test_accuracy_single_view_no_ema"] if s["config"].get("ema_decay") else []  # curve: step, *views
    out["curve"] = [[r["step"], *(r[v] for v in views)] for r in rows if "test_accuracy_single_view" in r]
    out["final_train_loss"] = [r["loss"] for r in rows if "loss" in r][-1]
    # has the run fit its training set? (the mean of the last 5 logged batches; under mixup
    # against each mixed image's dominant label): the question before a stronger regulariser
    accuracy = [r["accuracy"] for r in rows if "accuracy" in r][-5:]
    out["final_train_accuracy"] = sum(accuracy) / len(accuracy)
(d / "result.json").write_text(json.dumps(out, indent=1))
print(json.dumps({k: v for k, v in out.items() if k != "curve"}))
PY
}

step_benchmark() {
  local dir="$DEST/a"
  mkdir -p "$dir"
  say "ceiling"; $PY benchmarks/ceiling.py "${CEILING[@]}" --json "$dir/ceiling.json"
  say "resjax step"; $PY benchmarks/train_step.py "${STEP[@]}" --json "$dir/train_step.json" --profile "$dir/profile" \
    --hlo "$dir/hlo"
  if [ -f "$PEER_STEP" ]; then
    # XLA dumps the JAX peer's compiled step: what it launches, beside resjax's (step_report.py)
    say "peers"; XLA_FLAGS="${XLA_FLAGS:-} --xla_dump_to=$dir/peer_dump --xla_dump_hlo_as_text --xla_dump_hlo_module_re=jit_step" \
      $PY "$PEER_STEP" "${PEERS[@]}" "${STEPS[@]}" --out "$dir"
    mkdir -p "$dir/peer_hlo" && find "$dir/peer_dump" -name '*jit_step*after_optimizations.txt' -exec mv {} "$dir/peer_hlo/" \;
    rm -rf "$dir/peer_dump"
    compgen -G "$dir/peer_hlo/*.txt" >/dev/null && $PY benchmarks/launches.py --json "$dir/peer_launches.json" "$dir"/peer_hlo/*.txt
  else
    say "peers: no $PEER_STEP (copy ../shared/bench/peer_step.py there); no ratios"
  fi
  say "report"; $PY benchmarks/step_report.py "$dir"
}

# Step variants, "XLA_FLAGS|network options[|train_step.py arguments]"; the first of a part
# is its baseline under the same process conditions. LAYOUT: the state laid out as XLA
# chooses for the step; on a GPU, kernels in cuDNN's order (output channels major) would
# spare the update its transposes and the 112 copies into the donated state. Not tried:
# --xla_gpu_use_runtime_fusion, which XLA applies only to float16 convolutions
# (cudnn_fused_conv_rewriter.cc): no change to a bf16 step.
CONV_FUSION=--xla_gpu_experimental_enable_conv_fusion=true
GRAPHS=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUDNN,CUSTOM_CALL  # CUDA graphs over these too
LAYOUT="--state-layout auto"
# XLA's autotuner: level 1 still times every candidate kernel (it skips filling the
# buffers and checking each result against a reference); level 0 times none and takes
# each convolution's first candidate, cuDNN's heuristic choice (select_first_config)
UNTUNED=--xla_gpu_autotune_level=0
# the time of each HLO pass of a compile, logged (at TF_CPP_MIN_LOG_LEVEL=0): the autotuner is
# one; what the passes leave of the compile is code generation. (No flag splits that over
# threads in the GPU's JAX 0.11.2: --xla_gpu_enable_llvm_module_compilation_parallelism,
# off by default in 0.10.2, is gone from its flags, and from 0.12.1's.)
STATS=--xla_gpu_print_compilation_stats
OHWI="--state-layout ohwi"  # the kernels in cuDNN's order without asking XLA: where auto leaves them row-major
# part x (Table 1); its baseline runs again last: how far two processes of one step differ.
# (The layout variants were auto until 2026-12-07 (night): ohwi measures the kernels in
# cuDNN's order whether or not XLA would choose it, which part a's auto rows say.)
# (CUDA graphs and autotuning level 1 left it for the layouts: part y found graphs changed
# nothing on fast's network, and part k measures level 1 on fast's step.)
X_VARIANTS=("|" "|fusible_relu=true" "$CONV_FUSION|" "$CONV_FUSION|fusible_relu=true"
            "||$OHWI" "$CONV_FUSION|fusible_relu=true|$OHWI" "|")
# part y (fast's network): what its weight standardisation and its biases cost, and the
# fusion levers with them; CUDA graphs last, in case the standardisation's cost is its
# small kernels' launches
Y_VARIANTS=("|" "|weight_standardization=false" "|conv_bias=false" "|fusible_relu=true" "$CONV_FUSION|fusible_relu=true"
            "$GRAPHS|")
# part r (fast's whole step): where the training loop's extra time per step goes, and the
# levers on the step that `resjax train --config fast` compiles
R_VARIANTS=("|" "|ema_decay=0" "|mixup=0" "|grad_clip=null" "|model.weight_standardization=false"
            "|donate_state=false" "$CONV_FUSION|model.fusible_relu=true" "||$LAYOUT" "||$OHWI")
# part k (fast's whole step): where its compile goes, and the levers on it and on the step
# that part t and f train with, each against the step rate it gives
K_VARIANTS=("$STATS|" "$STATS --xla_gpu_autotune_level=1|" "$STATS $UNTUNED|" "$STATS $CONV_FUSION|model.fusible_relu=true"
            "$STATS $CONV_FUSION $UNTUNED|model.fusible_relu=true" "$STATS|model.scan_blocks=true")

step_variants() {  # PART OPTION NETWORK_ARGS... -- VARIANTS...: one train_step.py process per variant,
  # its options after OPTION (--model: network options; --set: configuration fields). With
  # SPAN=CONFIG, what each variant's compile and step rate would change in CONFIG's run.
  local dir="$DEST/$1" option=$2 i=0 net=() variant flags options args
  shift 2
  while [ "$1" != "--" ]; do net+=("$1"); shift; done
  shift
  mkdir -p "$dir"
  for variant in "$@"; do
    flags=${variant%%|*} options=${variant#*|} args=
    [[ $options == *"|"* ]] && args=${options#*|} options=${options%%|*}
    say "step of ${net[*]}, XLA_FLAGS='$flags', network options '$options'${args:+, $args}"
    printf '%s' "$flags" >"$dir/step_$i.flags"
    printf '%s' "$options" >"$dir/step_$i.model"
    printf '%s' "$args" >"$dir/step_$i.args"
    read -r -a model <<<"$options"
    read -r -a more <<<"$args"
    XLA_FLAGS="${TINY:+$XLA_FLAGS }$flags" $PY benchmarks/train_step.py "${VSTEP[@]}" "${net[@]}" ${options:+$option "${model[@]}"} "${more[@]}" \
      --json "$dir/step_$i.json" --profile "$dir/profile_$i" --hlo "$dir/hlo_$i" >"$dir/step_$i.log" 2>&1 \
      || say "failed (exit $?): $dir/step_$i.log"
    grep -A1 '^batch' "$dir/step_$i.log"
    i=$((i + 1))
  done
  $PY - "$dir" <<'PY'
import json, os, pathlib, sys
sys.path.insert(0, "benchmarks")
import compile_stats
import levers
d = pathlib.Path(sys.argv[1])
runs = []
for flags in sorted(d.glob("step_*.flags"), key=lambda p: int(p.stem.split("_")[1])):
    result = flags.with_suffix(".json")
    rows = json.loads(result.read_text())["rows"] if result.exists() else []
    runs.append({"xla_flags": flags.read_text(), "model": flags.with_suffix(".model").read_text(),
                 "args": flags.with_suffix(".args").read_text(), "ran": bool(rows),
                 "images_per_s": {str(r["batch"]): r["images_per_s"] for r in rows},
                 "compile_s": {str(r["batch"]): r["compile_s"] for r in rows},
                 "hlo_ops": {str(r["batch"]): r["hlo_ops"] for r in rows},
                 "profile_us": {str(r["batch"]): r["profile_us"] for r in rows if "profile_us" in r},
                 "relaid_layouts": {str(r["batch"]): r["relaid_layouts"] for r in rows},
                 # under --xla_gpu_print_compilation_stats on a GPU: where the (largest) compile went
                 "compile_stats": compile_stats.largest(flags.with_suffix(".log").read_text(errors="replace"))})
base = runs[0]["images_per_s"]
label = lambda run: " ".join(filter(None, (run["xla_flags"], run["model"], run["args"]))) or "(baseline)"
for run in runs:
    run["vs_baseline_ratio"] = {b: v / base[b] for b, v in run["images_per_s"].items() if b in base}
    print(f"{label(run)}: " + (", ".join(
        f"b{b} {v:,.0f} images/s ({run['vs_baseline_ratio'].get(b, float('nan')):.3f}x, "
        f"compiled in {run['compile_s'][b]:.1f} s)"
        for b, v in run["images_per_s"].items()) or "did not run"))
    for b, moved in run["relaid_layouts"].items():
        if "--state-layout" in run["args"]:
            print(f"  b{b}: {moved['relaid']} of the state's {moved['leaves']} arrays laid out otherwise than "
                  f"row-major ({moved['relaid_bytes'] / 1e6:.1f} MB)")
    if run["compile_stats"]:
        print("  " + compile_stats.describe(run["compile_stats"], max(run["compile_s"].values(), default=None)))
    for b, p in run["profile_us"].items():
        print(f"  b{b}, device ms per step: idle {p['step_idle_us'] / 1e3:.2f}, "
              + ", ".join(f"{k} {v / 1e3:.2f}" for k, v in p["kinds_us"].items()))
if os.environ.get("SPAN") and base:  # a configuration's training run: what each variant's compile and step change in it
    from resjax.train import config
    span_name, span = os.environ["SPAN"], config.load(os.environ["SPAN"])
    b = levers.batch_of(runs, span.batch_size)  # TINY: its own
    for run in runs:
        if b in run["images_per_s"]:
            compile_s = run["compile_s"][b] - runs[0]["compile_s"][b]
            loop_s = levers.steps_seconds(run, runs[0], b, span.steps, span.batch_size)
            run[f"over_{span_name}_seconds"] = {"batch": int(b), "compile": compile_s, "steps": loop_s}
            print(f"{label(run)}, over {span_name}'s {span.steps:,} steps of {span.batch_size} at "
                  f"b{b}'s rate: compile {compile_s:+.1f} s, steps {loop_s:+.1f} s, in all {compile_s + loop_s:+.1f} s")
(d / "variants.json").write_text(json.dumps(runs, indent=1))
PY
}

best_train() {  # name seed: fast with the variant of part k that benchmarks/levers.py chooses
  local from=${LEVERS_FROM:-$DEST/k/variants.json} sets chosen
  mkdir -p "$DEST/$1"
  sets=$($PY benchmarks/levers.py "$from" --json "$DEST/$1/choice.json") || { say "$1: no choice, not trained"; return 1; }
  read -r -a chosen <<<"$sets"
  train "$1" fast "$2" "${chosen[@]}"
}

imagenet() {
  local dir="$DEST/i"
  mkdir -p "$dir"
  say "imagenet34 step"; $PY benchmarks/train_step.py --config imagenet34 "${INET[@]}" --json "$dir/imagenet34_step.json"
  if $PY -c 'import grain' 2>/dev/null; then
    say "input pipeline"; $PY benchmarks/input_pipeline.py "${PIPE[@]}" --measured "$dir/imagenet34_step.json" \
      --json "$dir/input_pipeline.json"
  else
    say "input pipeline: grain is not installed here; cores per GPU from $dir/imagenet34_step.json with --measured elsewhere"
  fi
}

[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu.sh a|b|c|g|n|s|f|l|o|t|k|best|best1|p|q|x|y|r|i|step|fast0 [...]" >&2; exit 2; }
# the repository's resjax/ must not shadow the installed package (its checks/ and train/
# install as resjax.checks and resjax.train)
export PYTHONSAFEPATH=1
for part in "$@"; do
  case $part in
    a) step_benchmark; train fast_seed0 fast 0 ;;
    b) train fast_seed1 fast 1 ;;
    c) train paper_seed1 paper 1 ;;
    p) train fast_progressive_seed0 fast 0 "${PROGRESSIVE[@]}" ;;
    q) train fast_longer_seed0 fast 0 "${LONGER[@]}" ;;
    g) train paper_bf16_logits_seed0 paper 0 model.float32_head=false ;;
    n) train fast_batchnorm_seed0 fast 0 model.norm=batch model.init_scheme=standard model.weight_standardization=false \
         learning_rate=0.2 ema_decay=0 ;;
    s) train fast_6000_seed0 fast 0 "${SHORTER[@]}" ;;
    f) train fast_fused_seed0 fast 0 model.fusible_relu=true "xla_flags=[\"$CONV_FUSION\"]" ;;
    l) train fast_layout_seed0 fast 0 state_layout=auto ;;
    o) train fast_ohwi_seed0 fast 0 state_layout=ohwi ;;
    t) train fast_untuned_seed0 fast 0 "xla_flags=[\"$UNTUNED\"]" ;;
    x) step_variants x --model "${XNET[@]}" -- "${X_VARIANTS[@]}" ;;
    y) step_variants y --model "${YNET[@]}" -- "${Y_VARIANTS[@]}" ;;
    r) step_variants r --set "${RNET[@]}" -- "${R_VARIANTS[@]}" ;;
    k) TF_CPP_MIN_LOG_LEVEL=0 SPAN=fast step_variants k --set "${RNET[@]}" -- "${K_VARIANTS[@]}" ;;
    best) best_train fast_best_seed0 0 ;;
    best1) best_train fast_best_seed1 1 ;;
    step) step_benchmark ;;  # a, without its training run
    fast0) train fast_seed0 fast 0 ;;
    i) imagenet ;;
    *) echo "unknown part $part: expected one of a b c g n s f l o t k best best1 p q x y r i step fast0" >&2; exit 2 ;;
  esac
done
say "done"
