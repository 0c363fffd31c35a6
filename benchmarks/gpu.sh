#!/usr/bin/env bash
# Everything issue 10 asks of a GPU, in parts that each fit one 9-minute device run,
# most valuable first. Each part writes logs and JSON under $DEST/<part> and prints a
# summary; run the parts in order (b and c only train).
#
#   a  the bf16 matrix-multiply ceiling, the step benchmark of resjax at batch 128 and
#      512 (bf16) with a profile of one step at 512, both peers side by side
#      (../shared/bench/peer_step.py, copied to $PEER_STEP), the ratios
#      (step_benchmark.json), then one `fast` run (seed 0)            ~6-7 min on an H200
#   b  the second `fast` seed                                          ~3 min
#   c  the unchanged `paper` configuration with seed 1                 ~7 min
#   d  `fast` with cutout 8 (seed 0): does more augmentation close the gap to 93.62%
#      that a training set fit by step 5,100 leaves? (docs/section4.md)   ~3 min
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
  CEILING=(--size 256 --repeats 3); STEP=(--config tiny --steps 4 --batches 16 32 --dtypes float32 --steps-per-call 1 2)
  PEERS=(--tiny --which jax --batches 16,32 --dtypes fp32); STEPS=(--steps 3)
  INET=(--batches 2 --dtypes float32 --steps 1 --cpu-devices 1); PIPE=(--images 20 --batch 8 --batches 1 --workers 1)
else
  CEILING=(); STEP=(--full --steps 96 --batches 128 512 --dtypes bfloat16 --steps-per-call 1 8)
  PEERS=(--which jax,torch --batches 128,512 --dtypes bf16)
  STEPS=(--steps 100)
  INET=(--batches 128 256 --dtypes bfloat16 --steps 30); PIPE=()
fi
say() { echo "[$(date +%H:%M:%S)] $*"; }

train() {  # name config seed [more KEY=VALUE overrides]
  local dir="$DEST/$1" config=$2 seed=$3 t0 t1
  shift 3
  mkdir -p "$dir"
  say "train $dir: resjax train --config $config --set seed=$seed data=$DATA $* ${EXTRA[*]}"
  t0=$(date +%s.%N)
  RESJAX_CACHE_DIR="$dir/xla-cache" $PY -m resjax.cli train --config "$config" --workdir "$dir/run" --quiet \
    --set "data=$DATA" "seed=$seed" "$@" "${EXTRA[@]}" >"$dir/log.txt" 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  tail -n 3 "$dir/log.txt"
  $PY - "$dir" "$rc" "$t0" "$t1" <<'PY'
import json, pathlib, sys
d, rc, t0, t1 = pathlib.Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = {"exit_status": rc, "command_seconds": t1 - t0}
summary = d / "run" / "summary.json"
if summary.exists():
    s = json.loads(summary.read_text())
    out.update({k: s.get(k) for k in ("test_accuracy_single_view", "test_accuracy_flip", "test_loss_single_view",
                                      "wall_seconds", "startup_seconds", "phases", "seconds", "images_per_s", "steps")})
    rows = [json.loads(l) for l in (d / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    out["curve"] = [[r["step"], r["test_accuracy_single_view"], r["test_accuracy_flip"]] for r in rows if "test_accuracy_single_view" in r]
    out["final_train_loss"] = [r["loss"] for r in rows if "loss" in r][-1]
(d / "result.json").write_text(json.dumps(out, indent=1))
print(json.dumps({k: v for k, v in out.items() if k != "curve"}))
PY
}

step_benchmark() {
  local dir="$DEST/a"
  mkdir -p "$dir"
  say "ceiling"; $PY benchmarks/ceiling.py "${CEILING[@]}" --json "$dir/ceiling.json"
  say "resjax step"; $PY benchmarks/train_step.py "${STEP[@]}" --json "$dir/train_step.json" --profile "$dir/profile"
  if [ -f "$PEER_STEP" ]; then
    say "peers"; $PY "$PEER_STEP" "${PEERS[@]}" "${STEPS[@]}" --out "$dir"
  else
    say "peers: no $PEER_STEP (copy ../shared/bench/peer_step.py there); no ratios"
  fi
  say "report"; $PY benchmarks/step_report.py "$dir"
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

[ $# -ge 1 ] || { echo "usage: bash benchmarks/gpu.sh a|b|c|d|i|step|fast0 [...]" >&2; exit 2; }
# the repository's resjax/ must not shadow the installed package (its checks/ and train/
# install as resjax.checks and resjax.train)
export PYTHONSAFEPATH=1
for part in "$@"; do
  case $part in
    a) step_benchmark; train fast_seed0 fast 0 ;;
    b) train fast_seed1 fast 1 ;;
    c) train paper_seed1 paper 1 ;;
    d) train fast_cutout8_seed0 fast 0 cutout=8 ;;
    step) step_benchmark ;;  # a, without its training run
    fast0) train fast_seed0 fast 0 ;;
    i) imagenet ;;
    *) echo "unknown part $part: expected a, b, c, d, i, step or fast0" >&2; exit 2 ;;
  esac
done
say "done"
