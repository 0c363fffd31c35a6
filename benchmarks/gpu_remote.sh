#!/usr/bin/env bash
# benchmarks/gpu.sh on a lent GPU machine that holds a copy of this working tree but no
# resjax install and no network (the project's device tool), in one call:
#
#   bash benchmarks/gpu_remote.sh s step     # carry the git-ignored gpu/ and .whl/ folders
#
# Installs the wheels in .whl/ where their packages are missing (pydantic, tensorboardX,
# grain, ...: docs/section4.md says how to fetch them), makes resjax importable with its
# checks/, train/ and experiments/ parts, runs the parts within LIMIT seconds (default 560,
# so that a 600-second call still returns what finished), and packs the small results
# (JSON, metrics, logs, plots; no checkpoints, caches or traces) into $OUT/results.tar.gz.
# SITE, PKG and DEST move its scratch folders (default /tmp/site, /tmp/pkg, /tmp/g).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder that comes back}"
SITE=${SITE:-/tmp/site}
PKG=${PKG:-/tmp/pkg}
export DEST=${DEST:-/tmp/g}
PY=${PYTHON:-python3}
if ! $PY -c 'import pydantic, tensorboardX, grain' 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi
rm -rf "$PKG" && mkdir -p "$PKG" && cp -r resjax "$PKG/"
for part in checks train experiments; do ln -s "$PWD/$part" "$PKG/resjax/$part"; done
export PYTHONPATH="$PKG:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$DEST"
timeout "${LIMIT:-560}" bash benchmarks/gpu.sh "$@" 2>&1 | tee "$OUT/gpu_sh_log.txt"
status=${PIPESTATUS[0]}
(cd "$DEST" && find . -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.txt' -o -name '*.png' -o -name '*.flags' -o -name '*.model' -o -name '*.args' \
  -o -name '*.log' \) -not -path '*/checkpoints/*' -not -path '*/xla-cache/*' | tar czf "$OUT/results.tar.gz" -T -)
echo "gpu.sh exit status $status; results in $OUT/results.tar.gz"
exit "$status"
