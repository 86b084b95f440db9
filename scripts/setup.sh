#!/usr/bin/env bash
# Create .venv with the pinned dependencies and dfcil installed (idempotent, offline-friendly:
# torch/torchvision come from the local wheel cache when the machine has one).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # --no-compile: byte-compiling every module of torch, dvc and kfp up front costs ~30 s of a fresh
  # setup; Python compiles the few modules a run imports on first use instead.
  .venv/bin/pip install -q --disable-pip-version-check --no-compile -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import dfcil_core, torch, torchvision, dvc, kfp" 
  echo "$want" > "$stamp"
fi
