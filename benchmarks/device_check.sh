#!/usr/bin/env bash
# GPU figures for issue 7, as one short script for a lent GPU machine (see README "Results").
# Needs: python3 with torch there; pydantic etc. as wheels in .whl/; the CIFAR-100 subset made by
#   python benchmarks/profile_run.py --make-subset .devdata/c100.npz --train-per-class 100 --test-per-class 20
# Usage: OUT=<folder> bash benchmarks/device_check.sh [budget seconds for the optional parts]
set -u
OUT=${OUT:-outputs/device}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
log="$OUT/log.txt"
{
  date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} >"$log" 2>&1
# (a)-(c): eager fp32 baseline vs ours (channels-last, fused optimisers), then ours + torch.compile
# with CUDA graphs, in TF32 and in bf16.
timeout 100 python3 -m dfcil_core benchmark throughput --device cuda --steps 50 --out "$OUT/throughput.json" >>"$log" 2>&1
echo "rc throughput $?" >>"$log"
# Whole ten-task ABD profile (real CIFAR-100 subset: 100 train / 20 test images per class) on a
# short schedule; per-stage seconds scale to the full run.
common=(--subset .devdata/c100.npz --preset paper-cifar100-10 --set 'methods=[abd]' --set train.epochs=10
        --set 'train.milestones=[4,6,8]' --set synthesis.steps=200 --set data.train_per_class=100
        --set data.test_per_class=20 --set runtime.device=cuda)
timeout 120 python3 benchmarks/profile_run.py "${common[@]}" --out "$OUT/profile_ours.json" >>"$log" 2>&1
echo "rc profile_ours $?" >>"$log"
timeout 120 python3 -m dfcil_core benchmark throughput --device cuda --steps 50 --compile --compile-mode reduce-overhead \
  --out "$OUT/throughput_graphs.json" >>"$log" 2>&1
echo "rc throughput_graphs $?" >>"$log"
timeout "${1:-120}" python3 -m dfcil_core benchmark throughput --device cuda --steps 50 --compile --compile-mode reduce-overhead \
  --amp --out "$OUT/throughput_graphs_bf16.json" >>"$log" 2>&1
echo "rc throughput_graphs_bf16 $?" >>"$log"
cat "$log"
