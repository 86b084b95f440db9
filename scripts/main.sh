#!/usr/bin/env bash
# The main job: set up, then `dvc repro` the default profile (real CIFAR-100, CPU-friendly),
# then show where the metrics, tables and plots are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data root: $DFCIL_DATA_ROOT, else ../shared/data when present, else ./data (downloaded).
if [ -z "${DFCIL_DATA_ROOT:-}" ]; then
  if [ -d ../shared/data/cifar-100-python ]; then DFCIL_DATA_ROOT=$(cd ../shared/data && pwd); else DFCIL_DATA_ROOT=data; fi
fi
export DFCIL_DATA_ROOT
export PATH="$PWD/.venv/bin:$PATH"
[ -d .dvc ] || dvc init -q
tree_before=$(git status --porcelain 2>/dev/null || true)
dvc repro
echo
dfcil report --out outputs
echo
dvc metrics show --md
cat <<MSG

metrics: outputs/metrics.json, outputs/metrics/<method>.json   (dvc metrics show / dvc metrics diff)
tables:  outputs/results/runs.csv, outputs/results/tasks.csv
plots:   outputs/eval/*.png, outputs/generators/*/samples_task_*.png   (dvc plots show)
MSG
bash scripts/tree_changes.sh "$tree_before"
echo
echo "report:  $PWD/outputs/report.html"
