#!/usr/bin/env bash
# Run the authors' code (../shared/reference, through cpu.py) on the CPU proxy protocol of the fidelity
# table: CIFAR-100, 2 tasks x 10 classes, 10 epochs/task (lr x0.1 at 7 and 9), 500 generator steps,
# batch 128, each learner with its own task 1, for class-order seeds 0..R-1 (R = $1, default 2), or
# FIRST..R-1 with FIRST = $2 (seeds whose rows are already in benchmarks/reference-proxy.csv);
# REFERENCE_METHODS="abd lwf" runs a subset; TASKS=4 CLASSES=5 runs the many-task proxy (4 tasks x 5
# classes, the `fidelity-proxy-4task` preset) instead of 2 x 10; the replay comparisons (rehearsal lwf_coreset e2e bic dgr)
# keep a coreset of 400 images (20 per class, the paper's 2,000 of 100 classes) and run through
# benchmarks/reference_run.py, which builds BiC's bias layer on the CPU.
# Results: $REFERENCE_OUT/<method>/results-acc/{global,pt}.yaml (REFERENCE_OUT: outputs/reference unless
# set); `python benchmarks/fidelity_table.py --reference $REFERENCE_OUT` merges them into
# benchmarks/reference-proxy.csv. Slow here (~1 h per
# seed for the five methods on an AVX2 EPYC, 2 cores). It continues from what exists (its own resume);
# each method's log ($REFERENCE_OUT/<method>.log) is appended to, so a resumed run keeps the earlier one.
# SHARED_FIRST=<method>: the learners whose task 1 is plain cross-entropy on the task's data (base, lwf
# and the four coreset methods: their coreset is empty in task 1) load task 1 from that method's folder
# with the reference's own --load_model_dir instead of training it again. The reference seeds every
# task afresh (seed*100 + t) and updates its coreset after loading as after training, so task 2 is the
# same as in an unbroken run.
# CLASS_ORDER=k: every trial keeps class order k, trial r being training seed r (benchmarks/reference_run.py
# REFERENCE_CLASS_ORDER; use a log folder of its own); STOP_AFTER=t stops each trial after task t (task 1
# alone: STOP_AFTER=1), its row keeping the protocol's task count.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${1:-2}
FIRST=${2:-0}
TASKS=${TASKS:-2}
CLASSES=${CLASSES:-10}
REF=${DFCIL_REFERENCE:-../shared/reference}
DATA=${DFCIL_DATA_ROOT:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
OUT_ROOT=${REFERENCE_OUT:-outputs/reference}
mkdir -p "$OUT_ROOT"
common=(--dataset CIFAR100 --dataroot "$DATA" --gpuid -1 --workers 2 --train_aug --rand_split
        --first_split_size "$CLASSES" --other_split_size "$CLASSES" --max_task "$TASKS" --schedule 7 9 10 --schedule_type decay
        --batch_size 128 --optimizer SGD --lr 0.1 --momentum 0.9 --weight_decay 0.0002 --memory 0
        --model_name resnet32 --model_type resnet --overwrite 0)
gen=(--gen_model_name CIFAR_GEN --gen_model_type generator --power_iters 500 --deep_inv_params 1e-3 5e1 1e-3 1e3 1)
declare -A args=(
  [abd]="--learner_type datafree --learner_name AlwaysBeDreaming --mu 1e-1 --beta 1"
  [deepinversion]="--learner_type datafree --learner_name DeepInversionGenBN --mu 1"
  [lwf]="--learner_type kd --learner_name LWF --mu 1"
  [lwf_mc]="--learner_type kd --learner_name LWF_MC --mu 1"
  [base]="--learner_type default --learner_name NormalNN"
  [rehearsal]="--learner_type default --learner_name NormalNN --memory 400"
  [lwf_coreset]="--learner_type kd --learner_name LWF --mu 1 --memory 400"
  [e2e]="--learner_type kd --learner_name ETE --mu 1 --memory 400 --DW"
  [bic]="--learner_type kd --learner_name BIC --mu 1 --memory 400 --DW"
  [dgr]="--learner_type dgr --learner_name Generative_Replay --mu 1 --weight_decay 0 --gen_model_name CIFAR_GEN --gen_model_type autoencoder"
)
for r in $(seq 1 "$REPEAT"); do
  for m in ${REFERENCE_METHODS:-abd deepinversion lwf lwf_mc base}; do
    out=$OUT_ROOT/$m
    extra=()
    case $m in abd|deepinversion) extra=("${gen[@]}");; esac
    if [ -n "${STOP_AFTER:-}" ]; then extra+=(--max_task "$STOP_AFTER"); fi
    case $m in base|lwf|rehearsal|lwf_coreset|e2e|bic)
      if [ -n "${SHARED_FIRST:-}" ] && [ "$SHARED_FIRST" != "$m" ]; then
        extra+=(--load_model_dir "$OUT_ROOT/$SHARED_FIRST")
      fi;;
    esac
    if [ "$FIRST" -gt 0 ] && [ ! -f "$out/results-acc/global.yaml" ]; then
      # The reference resumes at the trial count of its result files: give it FIRST placeholder (NaN)
      # trials, which fidelity_table.py skips, so that it starts at class-order seed FIRST.
      "$PY" - "$out" "$FIRST" "${STOP_AFTER:-$TASKS}" <<'PY'
import sys, pathlib, yaml
out, first, tasks = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
nan = float("nan")
for metric, keys in {"acc": ("global", "pt", "pt-local"), "mem": ("global",), "time": ("global",)}.items():
    d = out / f"results-{metric}"
    d.mkdir(parents=True, exist_ok=True)
    for key in keys:  # global: [task][trial]; pt, pt-local: [task][task][trial]
        per_task = [[nan] * first for _ in range(tasks)]
        hist = per_task if key == "global" else [[list(r) for r in per_task] for _ in range(tasks)]
        (d / f"{key}.yaml").write_text(yaml.safe_dump({"history": hist}))
PY
    fi
    echo "== $(date -u +%FT%TZ) reference $m class-order seeds 0..$((r - 1))"
    # shellcheck disable=SC2086
    DFCIL_REFERENCE=$REF REFERENCE_SKIP_FINAL_GENERATOR=1 REFERENCE_CLASS_ORDER=${CLASS_ORDER:-} \
      REFERENCE_PROTOCOL_TASKS=$TASKS "$PY" benchmarks/reference_run.py run_dfcil.py "${common[@]}" "${extra[@]}" \
      ${args[$m]} --repeat "$r" --log_dir "$out" >> "$out.log" 2>&1 || { echo "failed: see $out.log"; exit 1; }
  done
done
echo "== $(date -u +%FT%TZ) done"
