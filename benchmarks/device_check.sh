#!/usr/bin/env bash
# The GPU figures in one short script for a lent GPU machine; the dated figures it made are in
# docs/performance.md. From a fresh clone:
#   here:   bash benchmarks/device_check.sh --prepare   the CIFAR-100 subset (.devdata/c100.npz, from
#           $DFCIL_DATA_ROOT) and the wheels the device image lacks (.whl/); both git-ignored: carry them
#   there:  OUT=<folder> bash benchmarks/device_check.sh [seconds for the last, optional part]
#   no GPU: DEVICE=cpu OUT=<folder> bash benchmarks/device_check.sh   the same steps, shortened, on
#           the CPU (a test runs it, so that the script cannot rot while no GPU is lent)
# It ends with what it measured (seconds per step, a whole short run) and what it projects from
# that (the paper's tables on 1-16 GPUs); both also go to $OUT/summary.txt.
set -u
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-outputs/device}
PY=${PYTHON:-python3}
SUBSET=${DFCIL_SUBSET:-.devdata/c100.npz}  # (a test points it elsewhere)
# the packages dfcil needs that the device image does not hold, at the versions requirements.txt pins
WHEELS=(pydantic pydantic_core annotated-types typing-inspection)

pin() { grep -i -m1 "^$1==" requirements.txt; }

if [ "${1:-}" = "--prepare" ]; then
  set -e
  root=${DFCIL_DATA_ROOT:-../shared/data}
  [ -d "$root/cifar-100-python" ] || { echo "device_check: no CIFAR-100 under $root (set DFCIL_DATA_ROOT)"; exit 2; }
  DFCIL_DATA_ROOT=$root "$PY" benchmarks/profile_run.py --make-subset "$SUBSET" --train-per-class 100 --test-per-class 20
  rm -rf .whl && mkdir -p .whl
  pins=(); for w in "${WHEELS[@]}"; do pins+=("$(pin "$w")"); done
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${pins[@]}"
  echo "prepared: $SUBSET and .whl/ (${pins[*]}); carry both: run(carry=['.devdata', '.whl'])"
  exit 0
fi

mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/dfcil-site .whl/*.whl \
    && export PYTHONPATH="/tmp/dfcil-site:$PYTHONPATH"
fi
if ! "$PY" -c "import pydantic, torch, yaml, pandas" 2>/dev/null; then
  echo "device_check: this Python lacks dfcil's packages (pydantic?): run 'bash benchmarks/device_check.sh --prepare' where a registry is, and carry .whl"
  exit 2
fi
if [ ! -f "$SUBSET" ]; then
  if [ -d "${DFCIL_DATA_ROOT:-../shared/data}/cifar-100-python" ]; then
    DFCIL_DATA_ROOT=${DFCIL_DATA_ROOT:-../shared/data} "$PY" benchmarks/profile_run.py --make-subset "$SUBSET" \
      --train-per-class 100 --test-per-class 20 >/dev/null
  else
    echo "device_check: no $SUBSET and no CIFAR-100 here: run 'bash benchmarks/device_check.sh --prepare' where the data is, and carry .devdata"
    exit 2
  fi
fi
if [ "$DEVICE" = cpu ]; then  # shortened: the steps run, the numbers are no GPU figures
  steps=3; rounds=1; epochs=1; milestones='[]'; inversion=5; per_class=10; tasks=2
else
  steps=50; rounds=3; epochs=10; milestones='[4,6,8]'; inversion=200; per_class=100; tasks=10
fi
log="$OUT/log.txt"
{
  date -u
  if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; fi
  "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu')"
} >"$log" 2>&1
measured=()
part() {  # part NAME SECONDS COMMAND...: run it, keep its exit code in the log
  local name=$1 seconds=$2; shift 2
  timeout "$seconds" "$@" >>"$log" 2>&1
  local rc=$?
  echo "rc $name $rc" >>"$log"
  [ $rc -eq 0 ] && measured+=("$name")
}
# (a) eager fp32 baseline beside ours (channels-last, fused optimisers): seconds per CE, ABD and
# inversion step at batch 128; the replay comparisons' steps beside Base's and the teacher's forward
part throughput 400 "$PY" -m dfcil_core benchmark throughput --device "$DEVICE" --steps "$steps" --replay --rounds "$rounds" --out "$OUT/throughput.json"
# (b) a whole short ABD run from the subset; per-stage seconds scale to the full schedule
part profile 180 "$PY" benchmarks/profile_run.py --subset "$SUBSET" --preset paper-cifar100-10 --set 'methods=[abd]' \
  --set "data.n_tasks=$tasks" --set "data.num_classes=$((tasks * 10))" --set "train.epochs=$epochs" \
  --set "train.milestones=$milestones" --set "synthesis.steps=$inversion" --set "data.train_per_class=$per_class" \
  --set "data.test_per_class=$((per_class / 5))" --set "runtime.device=$DEVICE" --out "$OUT/profile.json"
if [ "$DEVICE" = cuda ]; then
  # (c) ours with the trunk compiled into CUDA graphs, TF32, then bf16
  part graphs 150 "$PY" -m dfcil_core benchmark throughput --device cuda --steps "$steps" --compile \
    --compile-mode reduce-overhead --out "$OUT/throughput_graphs.json"
  part graphs_bf16 "${1:-120}" "$PY" -m dfcil_core benchmark throughput --device cuda --steps "$steps" --compile \
    --compile-mode reduce-overhead --amp --out "$OUT/throughput_graphs_bf16.json"
fi
{
  echo "device_check $(date -u +%F) on $DEVICE: measured ${measured[*]:-nothing} (exit codes and output: $log)"
  for f in "$OUT"/throughput*.json; do
    [ -f "$f" ] && "$PY" - "$f" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
o = r["optimised"]
print(f"measured {sys.argv[1]}: {r['device']}: s/step CE {o['ce_step']['seconds_per_step']:.4f}, "
      f"ABD {o['abd_step']['seconds_per_step']:.4f}, inversion {o['generator_step']['seconds_per_step']:.4f}")
EOF
  done
  [ -f "$OUT/profile.json" ] && "$PY" -c "import json, sys; r = json.load(open(sys.argv[1])); print(f\"measured {sys.argv[1]}: whole short ABD run {r['wall_seconds']:.1f} s on {r['device']}\")" "$OUT/profile.json"
  best="$OUT/throughput_graphs.json"; [ -f "$best" ] || best="$OUT/throughput.json"
  if [ -f "$best" ]; then
    echo "projected from $best (not run end to end):"
    "$PY" benchmarks/cost_sheet.py --throughput "$best"
  fi
} | tee "$OUT/summary.txt"
[ ${#measured[@]} -gt 0 ]
