#!/usr/bin/env bash
# Create .venv with the pinned dependencies and dfcil installed (idempotent, offline-friendly:
# torch/torchvision come from the local wheel cache when the machine has one).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
UV_VERSION=0.13.9
PIP_VERSION=23.2.1  # the venv's own pip, for users (the one Python 3.11's ensurepip brings)
if [ ! -x .venv/bin/python ]; then
  # Without ensurepip's pip (7 s of a fresh setup here): uv installs pip with the rest, or, without
  # uv, ensurepip bootstraps it below.
  "$PY" -m venv --without-pip .venv
fi
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)

# pip (the venv's, or with PIP_PY=python the system's), without its notes on missing find-links folders.
pip_quiet() { "${PIP_PY:-.venv/bin/python}" -m pip "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

# A pip setting as pip resolves it (its environment variable first, then its config files), or nothing,
# read from `pip config list` output in $pip_config (read once: each pip start costs about half a second).
pip_setting() { sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" <<<"$pip_config" | head -1; }

# uv installs the same pinned wheels from the same indexes as pip, about 5x faster here (34 s against
# ~3 min for requirements.txt: it unpacks torch's CUDA libraries in parallel). It is told pip's
# indexes, local wheel folders and CA bundle, and treats them as pip does (best match over all of
# them; a version found in several is taken from the local one). Without uv (no registry), pip does it.
uv_install() {
  # uv into the venv by the system's pip (the venv has none yet); pip_quiet hides failures: check the result.
  PIP_PY=$PY pip_quiet install -q --disable-pip-version-check --root-user-action=ignore --ignore-installed \
    --prefix .venv "uv==$UV_VERSION"
  if [ ! -x .venv/bin/uv ]; then  # no pip beside $PY: the venv's own, bootstrapped
    [ -x .venv/bin/pip ] || .venv/bin/python -m ensurepip --default-pip >/dev/null
    pip_quiet install -q --disable-pip-version-check "uv==$UV_VERSION"
  fi
  [ -x .venv/bin/uv ] || return 1
  local pip_config; pip_config=$("$PY" -m pip config list 2>/dev/null || .venv/bin/python -m pip config list 2>/dev/null || true)
  local args=(--python .venv/bin/python --index-strategy unsafe-best-match --no-progress -q) u
  local index; index=$(pip_setting index-url)
  [ -n "$index" ] && args+=(--index-url "$index")
  for u in $(pip_setting extra-index-url); do args+=(--extra-index-url "$u"); done
  for u in $(pip_setting find-links); do args+=(--find-links "$u"); done
  local cert ca=(); cert=$(pip_setting cert)
  [ -n "$cert" ] && ca=("SSL_CERT_FILE=$cert")
  env "${ca[@]}" .venv/bin/uv pip install "${args[@]}" -r requirements.txt "pip==$PIP_VERSION" &&
    env "${ca[@]}" .venv/bin/uv pip install "${args[@]}" --no-deps -e .
}

# Import the modules named (`pkg.*`: every module of pkg) with bytecode writing on.
warm_bytecode() {
  env -u PYTHONDONTWRITEBYTECODE .venv/bin/python - "$@" <<'EOF'
import importlib
import pkgutil
import sys

for name in sys.argv[1:]:
    if name.endswith(".*"):
        package = importlib.import_module(name[:-2])
        for mod in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{mod.name}")
    else:
        importlib.import_module(name)
EOF
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! uv_install; then
    echo "setup: uv unavailable or failed; installing with pip (slower)"
    [ -x .venv/bin/pip ] || .venv/bin/python -m ensurepip --default-pip >/dev/null
    # --no-compile: the bytecode of what the jobs import is written below instead.
    pip_quiet install -q --disable-pip-version-check --no-compile -r requirements.txt
    pip_quiet install -q --disable-pip-version-check --no-deps -e .
  fi
  # Write the bytecode of every module the jobs import, once. Neither installer compiles it, and where
  # PYTHONDONTWRITEBYTECODE is set (it is on some machines) no later process writes it either: each
  # dfcil process (one per DVC stage) would compile torch's sources again, ~4 s of every stage.
  # Two importers side by side (compiling takes one core): torch, then torch._dynamo (the optimisers
  # import it; ~10 s to compile) and dfcil_core in one; in the other first what needs no torch, so that
  # when it comes to torchvision torch is compiled. About 29 s one after the other, ~20 s so here.
  warm_bytecode torch torch._dynamo torch.utils.serialization 'dfcil_core.*' &
  torch_side=$!
  warm_bytecode pandas matplotlib.pyplot matplotlib.backends.backend_agg PIL.PngImagePlugin dvc.cli dvc.repo \
    dvc.repo.reproduce kfp.dsl kfp.compiler torchvision.datasets
  wait "$torch_side"
  echo "$want" > "$stamp"
fi
