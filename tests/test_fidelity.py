"""The fidelity table: reading the reference's result files and ours, and the pass band."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dfcil_core.foundations import atomic_io
from dfcil_core.lab import reference_check as fidelity
from dfcil_core.method.metrics import AccuracyMatrix
from dfcil_core.method.runtime import device_fingerprint
from dfcil_core.run.artifacts import Layout


def _reference_log(root, method: str, trials: list[list[list[float]]]) -> None:
    """pt.yaml as the reference writes it: history[j][i][r] = acc on task j+1 after task i+1, trial r."""
    hist = np.stack([np.asarray(t, dtype=float) for t in trials], axis=-1)
    d = root / method / "results-acc"
    d.mkdir(parents=True)
    (d / "pt.yaml").write_text(yaml.safe_dump({"history": hist.tolist()}))


def _dfcil_run(root, seed: int, train_seed: int, method: str, a: list[list[float]],
               device: str = "cpu AVX2 | 2 threads | torch 2.14.1") -> None:
    """What `evaluate` leaves for the reference check: metrics.json, the accuracy matrix, runs.csv."""
    (root / "results").mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"method": method, "device_class": device}]).to_csv(root / "results" / "runs.csv", index=False)
    m = AccuracyMatrix.from_rows(a, [1000] * len(a))
    atomic_io.write_json(root / "eval" / method / "accuracy_matrix.json", m.to_dict())
    last = len(a) - 1
    atomic_io.write_json(root / "metrics.json", {"seed": seed, "train_seed": train_seed, "methods": {
        method: {"a_n": m.seen_accuracy(last), "old_acc": float(np.mean(a[last][:last])), "new_acc": a[last][last]}}})


def test_reference_rows_read_pt_yaml(tmp_path):
    # trial 0: task 1 70 after task 1; after task 2: 20 on task 1, 60 on task 2
    _reference_log(tmp_path, "abd", [[[70.0, 20.0], [0.0, 60.0]], [[66.0, 10.0], [0.0, 50.0]]])
    rows = fidelity.reference_rows(tmp_path)
    r0 = rows[rows.seed == 0].iloc[0]
    assert (r0.task1_acc, r0.old_acc, r0.new_acc, r0.a_n) == (70.0, 20.0, 60.0, 40.0)
    assert rows[rows.seed == 1].iloc[0].a_n == 30.0


def test_many_task_rows_carry_every_task_and_meet_only_their_own_protocol(tmp_path):
    # the reference over 4 tasks: A_{t,1:t} is the mean of pt's column t (equal task test sets)
    a = [[60.0, 30.0, 20.0, 14.0], [0.0, 50.0, 24.0, 10.0], [0.0, 0.0, 40.0, 12.0], [0.0, 0.0, 0.0, 36.0]]
    _reference_log(tmp_path / "ref", "abd", [a])
    ref = fidelity.reference_rows(tmp_path / "ref")
    r = ref.iloc[0]
    assert r.tasks == 4 and r.a_by_task == "60.00/40.00/28.00/18.00"  # (30+50)/2, (20+24+40)/3, (14+10+12+36)/4
    assert (r.task1_acc, r.old_acc, r.new_acc, r.a_n) == (60.0, 12.0, 36.0, 18.0)
    ref = pd.concat([ref.assign(device_class="unknown"),
                     pd.DataFrame([{**_ref_row("abd", 99.0, "unknown")}])], ignore_index=True)  # a 2-task row
    for t, shift in enumerate((0.0, 2.0, 4.0)):  # ours: A_t2 41, 43, 45 (mean 43, std 2 -> band 4)
        _dfcil_run(tmp_path / str(t), 0, t, "abd", [[61.0], [31.0 + 2 * shift, 51.0], [20.0, 24.0, 40.0],
                                                    [14.0, 10.0, 12.0, 36.0 + shift]])
    ours = fidelity.dfcil_rows([tmp_path / str(t) for t in range(3)])
    assert list(ours.tasks) == [4, 4, 4] and ours.a_by_task.iloc[0] == "61.00/41.00/28.00/18.00"
    table = fidelity.compare(ours, ref).set_index("metric")
    assert list(table.index) == ["task1_acc", "a_t2", "a_t3", "a_n", "old_acc", "new_acc"]
    assert table.loc["a_t2", "ours_mean"] == pytest.approx(43.0) and table.loc["a_t2", "band"] == pytest.approx(4.0)
    assert table.loc["a_t2", "reference"] == 40.0 and table.loc["a_t2", "pass"]  # 3 away, within 4
    assert table.loc["a_n", "reference"] == 18.0  # the 4-task reference row, never the 2-task one (99)
    _dfcil_run(tmp_path / "two", 0, 0, "abd", [[70.0], [40.0, 60.0]])
    both = fidelity.compare(fidelity.dfcil_rows([tmp_path / "0", tmp_path / "two"]), ref)
    assert both[(both.tasks == 2) & (both.metric == "a_n")].reference.iloc[0] == 99.0
    text = fidelity.markdown(both)
    assert text.index("**2 tasks**") < text.index("**4 tasks**") and "a_t3: ours / ref" in text


def test_band_is_max_of_3_points_and_2_std(tmp_path):
    runs = []
    for t, (old, new) in enumerate([(20.0, 60.0), (24.0, 60.0), (22.0, 60.0)]):  # a_n 40, 42, 41: std 1
        _dfcil_run(tmp_path / str(t), 0, t, "abd", [[70.0 + t], [old, new]])
        runs.append(tmp_path / str(t))
    ours = fidelity.dfcil_rows(runs)
    ref = pd.DataFrame([{"source": "reference", "method": "abd", "seed": 0, "train_seed": 0, "tasks": 2,
                         "task1_acc": 68.5, "old_acc": 30.0, "new_acc": 60.0, "a_n": 44.5, "a_by_task": "68.50/44.50",
                         "device_class": "unknown"}])
    table = fidelity.compare(ours, ref).set_index("metric")
    assert table.loc["a_n", "ours_mean"] == pytest.approx(41.0) and table.loc["a_n", "ours_std"] == pytest.approx(1.0)
    assert table.loc["a_n", "band"] == 3.0 and not table.loc["a_n", "pass"]  # 44.5 is 3.5 away
    assert table.loc["task1_acc", "pass"]  # 68.5 vs mean 71 (70, 71, 72): 2.5 away
    assert table.loc["old_acc", "band"] == pytest.approx(4.0) and not table.loc["old_acc", "pass"]  # std 2 -> 4


def test_markdown_says_not_run(tmp_path):
    _dfcil_run(tmp_path, 1, 1, "lwf", [[50.0], [5.0, 70.0]])
    ref = pd.DataFrame(columns=[*fidelity.COLUMNS, "device_class"])
    text = fidelity.markdown(fidelity.compare(fidelity.dfcil_rows([tmp_path]), ref))
    assert "| lwf | 1 | 1 / 1 |" in text and "not run" in text and "✗" not in text


def test_runs_evaluated_at_task_1_only_fill_the_task1_cell(tmp_path):
    # `dfcil evaluate --first-task` writes eval/first_task.json: θ(1) is judged before task 2 exists.
    for t, acc in enumerate([72.0, 74.0, 73.0]):
        atomic_io.write_json(tmp_path / str(t) / "eval" / "first_task.json",
                      {"seed": 0, "train_seed": t, "task1_acc": {"abd": acc, "base": acc - 4},
                       "device_class": "cpu AVX2 | 2 threads | torch 2.14.1"})
    ours = fidelity.dfcil_rows([tmp_path / str(t) for t in range(3)])
    assert len(ours) == 6 and ours.a_n.isna().all()
    ref = pd.DataFrame([{"source": "reference", "method": "abd", "seed": 0, "train_seed": 0, "tasks": 2,
                         "task1_acc": 70.0, "old_acc": 46.9, "new_acc": 50.4, "a_n": 48.65, "a_by_task": "70.00/48.65",
                         "device_class": "unknown"}])
    table = fidelity.compare(ours, ref)
    assert set(table.metric) == {"task1_acc"}  # no later cells to compare
    abd = table[table.method == "abd"].iloc[0]
    assert abd.ours_mean == pytest.approx(73.0) and abd.runs == 3 and abd["pass"]  # 3.0 away, band 3
    text = fidelity.markdown(table)
    assert "| abd | 0 | 3 / 0 | 73.0 ± 1.0 / 70.0 ✓ | not run | not run | not run |" in text
    assert "| base | 0 | 3 / 0 | 69.0 ± 1.0 / not run |" in text


def test_a_run_with_both_files_adds_only_the_methods_metrics_json_lacks(tmp_path):
    # a run that finished ABD's task 2 but stopped LwF after task 1: ABD from metrics.json (its first
    # cell, not first_task.json's), LwF from first_task.json
    _dfcil_run(tmp_path, 0, 0, "abd", [[71.0], [50.0, 54.0]])
    atomic_io.write_json(tmp_path / "eval" / "first_task.json",
                  {"seed": 0, "train_seed": 0, "task1_acc": {"abd": 99.0, "lwf": 66.0},
                   "device_class": "cpu AVX2 | 2 threads | torch 2.14.1"})
    rows = fidelity.dfcil_rows([tmp_path]).set_index("method")
    assert sorted(rows.index) == ["abd", "lwf"]
    assert rows.loc["abd", "task1_acc"] == 71.0 and rows.loc["abd", "a_n"] == pytest.approx(52.0)
    assert rows.loc["lwf", "task1_acc"] == 66.0 and np.isnan(rows.loc["lwf", "a_n"])
    no_reference = pd.DataFrame(columns=[*fidelity.COLUMNS, "device_class"])
    text = fidelity.markdown(fidelity.compare(fidelity.dfcil_rows([tmp_path]), no_reference))
    assert "| abd | 0 | 1 / 1 |" in text and "| lwf | 0 | 1 / 0 |" in text


def test_a_run_without_either_file_is_named(tmp_path):
    with pytest.raises(fidelity.DfcilError, match="no metrics.json"):
        fidelity.dfcil_rows([tmp_path])


def test_placeholder_trials_give_no_row_and_the_csv_keeps_seeds_run_elsewhere(tmp_path):
    """reference_proxy.sh FIRST: NaN trials before the first seed run; the merged CSV keeps the rows
    of seeds measured in an earlier checkout (with their dates) and adds the new seed's."""
    nan = float("nan")
    _reference_log(tmp_path / "ref", "base", [[[nan, nan], [nan, nan]], [[51.5, 0.0], [0.0, 56.4]]])
    rows = fidelity.reference_rows(tmp_path / "ref")
    assert list(rows.seed) == [1] and rows.iloc[0].a_n == pytest.approx(28.2)
    csv = tmp_path / "reference-proxy.csv"
    pd.DataFrame([{"source": "reference", "method": "base", "seed": 0, "train_seed": 0, "tasks": 2, "task1_acc": 67.8,
                   "old_acc": 0.0, "new_acc": 65.9, "a_n": 32.95, "a_by_task": "67.80/32.95", "device_class": "unknown",
                   "date": "2026-11-29", "command": "x"}]).to_csv(csv, index=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref"), "--reference-csv", str(csv)],
                   check=True, capture_output=True)
    merged = pd.read_csv(csv)
    assert list(zip(merged.method, merged.seed, strict=True)) == [("base", 0), ("base", 1)]
    assert merged.iloc[0].date == "2026-11-29" and merged.iloc[0].a_n == 32.95
    assert merged.iloc[1].a_n == pytest.approx(28.2)
    # Each row says which device class measured it (unknown: a row nobody recorded it for), and a row re-measured
    # with another value is replaced and the replacement printed with both devices.
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    assert merged.iloc[0].device_class == "unknown" and merged.iloc[1].device_class == here
    _reference_log(tmp_path / "ref2", "base", [[[67.0, 0.0], [0.0, 66.0]]])
    done = subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref2"), "--reference-csv", str(csv),
                           "--command", "REFERENCE_OUT=x bash benchmarks/reference_proxy.sh 1"],
                          check=True, capture_output=True, text=True)
    assert "replacing reference base seed 0 training seed 0: A_N 32.95 (unknown, 2026-11-29) -> 33.00" in done.stdout
    merged = pd.read_csv(csv)
    assert merged.iloc[0].a_n == 33.0 and merged.iloc[0].device_class == here
    assert merged.iloc[0].command == "REFERENCE_OUT=x bash benchmarks/reference_proxy.sh 1"
    assert merged.iloc[1].a_n == pytest.approx(28.2)  # seed 1 not in ref2: kept


AVX2 = "cpu AVX2 | 2 threads | torch 2.14.1"
AVX512 = "cpu AVX512 | 2 threads | torch 2.14.1"


def _ref_row(method: str, a_n: float, device: str) -> dict:
    return {"source": "reference", "method": method, "seed": 0, "train_seed": 0, "tasks": 2, "task1_acc": 70.0,
            "old_acc": a_n - 10, "new_acc": a_n + 10, "a_n": a_n, "a_by_task": f"70.00/{a_n:.2f}", "device_class": device,
            "date": "d", "command": "c"}


def _dfcil_run_on(root, train_seed: int, device: str, a: list[list[float]], sha: str = "abc1234") -> Path:
    _dfcil_run(root, 0, train_seed, "abd", a, device)
    atomic_io.write_json(Layout(root).stage_log("evaluate"), {"stage": "evaluate", "code_version": f"0.1.0+{sha}"})
    return root


def test_runs_are_compared_with_the_reference_of_their_own_device_class(tmp_path):
    runs = [_dfcil_run_on(tmp_path / str(t), t, AVX2, [[70.0], [40.0 + t, 60.0]]) for t in range(3)]
    ours = fidelity.dfcil_rows(runs)
    assert set(ours.device_class) == {AVX2} and set(ours.commit) == {"abc1234"}
    ref = pd.DataFrame([_ref_row("abd", 45.0, AVX512), _ref_row("abd", 51.0, AVX2)])
    table = fidelity.compare(ours, ref).set_index("metric")  # ours: a_n 50, 50.5, 51 -> mean 50.5
    assert table.loc["a_n", "reference"] == 51.0 and table.loc["a_n", "pass"]  # AVX2's 51, not AVX-512's 45
    assert table.loc["a_n", "reference_machine"] == "cpu AVX2 | torch 2.14.1" and not table.loc["a_n", "other_device"]
    # only another class measured the reference: its value is used, marked † and named under the table
    table = fidelity.compare(ours, ref.iloc[:1])
    assert table.other_device.all()
    text = fidelity.markdown(table)
    assert "| abd | 0 | 3 / 3 | 70.0 ± 0.0 / 70.0 † ✓ | 50.5 ± 0.5 / 45.0 † ✗ |" in text
    assert "† abd 0: ours on cpu AVX2 | torch 2.14.1, the reference only on cpu AVX512 | torch 2.14.1" in text


def test_thread_counts_of_one_machine_class_are_pooled_and_a_training_seed_counts_once(tmp_path):
    one = "cpu AVX512 | 1 threads | torch 2.14.1"
    runs = [_dfcil_run_on(tmp_path / "0", 0, one, [[70.0], [40.0, 60.0]]),   # a_n 50
            _dfcil_run_on(tmp_path / "1", 1, AVX512, [[74.0], [44.0, 60.0]])]  # a_n 52, on 2 threads
    # training seed 1 again, task 1 only (1 thread): its full lineage on 2 threads is the one counted
    atomic_io.write_json(tmp_path / "1b" / "eval" / "first_task.json",
                         {"seed": 0, "train_seed": 1, "tasks": 2, "task1_acc": {"abd": 99.0}, "device_class": one})
    ours = fidelity.dfcil_rows([*runs, tmp_path / "1b"])
    assert len(ours) == 3
    ref = pd.DataFrame([_ref_row("abd", 51.5, one), _ref_row("abd", 40.0, AVX2)])
    table = fidelity.compare(ours, ref).set_index("metric")
    assert table.loc["task1_acc", "runs"] == 2 and table.loc["task1_acc", "ours_mean"] == 72.0  # 70, 74: not 99
    assert table.loc["a_n", "ours_mean"] == 51.0 and table.loc["a_n", "reference"] == 51.5  # AVX-512's, not AVX2's
    assert table.loc["a_n", "threads"] == "1, 2" and table.loc["a_n", "reference_threads"] == "1"
    assert not table.other_device.any()
    assert "| abd (1+2 threads) | 0 | 2 / 2 |" in fidelity.markdown(fidelity.compare(ours, ref))


def test_a_first_task_file_names_the_class_that_trained_each_model(tmp_path):
    atomic_io.write_json(tmp_path / "eval" / "first_task.json",
                         {"seed": 0, "train_seed": 0, "tasks": 2, "task1_acc": {"abd": 70.0, "base": 60.0},
                          "device_class": AVX2, "trained_on": {"abd": AVX512}})
    rows = fidelity.dfcil_rows([tmp_path]).set_index("method")
    assert rows.loc["abd", "device_class"] == AVX512 and rows.loc["base", "device_class"] == AVX2


def test_runs_csv_keeps_our_rows_and_gives_the_same_table_without_the_output_folders(tmp_path):
    runs = [_dfcil_run_on(tmp_path / str(t), t, AVX2, [[70.0 + t], [40.0, 60.0 - t]]) for t in range(3)]
    ref = tmp_path / "ref.csv"
    pd.DataFrame([_ref_row("abd", 49.0, AVX2)]).to_csv(ref, index=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    rows = tmp_path / "runs.csv"

    def table(*args: str) -> str:
        return subprocess.run([sys.executable, str(script), *args, "--reference-csv", str(ref)],
                              check=True, capture_output=True, text=True).stdout

    from_dirs = table(*map(str, runs[:2]), "--runs-csv", str(rows))
    assert "2 run rows" in from_dirs
    table(*map(str, runs), "--runs-csv", str(rows))  # the first two again: replaced, not counted twice
    stored = pd.read_csv(rows)
    assert list(stored.train_seed) == [0, 1, 2] and set(stored.device_class) == {AVX2}
    from_csv = table(str(rows))
    assert "| abd | 0 | 3 / 3 | 71.0 ± 1.0 / 70.0 ✓ | 49.5 ± 0.5 / 49.0 ✓ |" in from_csv
    assert "ours measured on cpu AVX2 | torch 2.14.1 (2 threads)" in from_csv
    assert "reference measured on cpu AVX2 | torch 2.14.1: abd 0" in from_csv


def test_a_rerun_with_the_same_figures_keeps_the_commit_that_first_recorded_them():
    def row(a_n: float, commit: str) -> dict:
        return {"source": "dfcil", "method": "base", "seed": 1, "train_seed": 0, "tasks": 4, "task1_acc": 51.4,
                "old_acc": 10.0 / 3, "new_acc": 46.2, "a_n": a_n, "a_by_task": "51.4", "device_class": AVX512,
                "commit": commit}
    old = pd.DataFrame([row(12.0, "aaa")]).round(2)  # as read back from the CSV
    kept = fidelity.merge_run_rows(old, pd.DataFrame([row(12.0, "bbb")]))
    assert list(kept.commit) == ["aaa"]
    moved = fidelity.merge_run_rows(old, pd.DataFrame([row(12.5, "bbb")]))
    assert list(moved.commit) == ["bbb"] and list(moved.a_n) == [12.5]


def test_recording_the_reference_keeps_other_device_classes(tmp_path):
    csv = tmp_path / "reference-proxy.csv"
    pd.DataFrame([_ref_row("base", 32.0, AVX512 + "-elsewhere")]).to_csv(csv, index=False)
    _reference_log(tmp_path / "ref", "base", [[[67.0, 0.0], [0.0, 66.0]]])
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    done = subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref"), "--reference-csv", str(csv)],
                          check=True, capture_output=True, text=True)
    assert "replacing" not in done.stdout
    merged = pd.read_csv(csv)
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    assert sorted(zip(merged.device_class, merged.a_n)) == sorted([(AVX512 + "-elsewhere", 32.0), (here, 33.0)])


def test_recording_a_many_task_reference_keeps_the_two_task_row_of_the_same_method_and_seed(tmp_path):
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    csv = tmp_path / "reference-proxy.csv"
    pd.DataFrame([_ref_row("abd", 48.65, here)]).to_csv(csv, index=False)
    a = [[62.8, 31.2, 23.0, 30.0], [0.0, 57.4, 32.0, 25.0], [0.0, 0.0, 52.0, 19.2], [0.0, 0.0, 0.0, 39.6]]
    _reference_log(tmp_path / "ref", "abd", [a])
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    done = subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref"), "--reference-csv", str(csv)],
                          check=True, capture_output=True, text=True)
    assert "replacing" not in done.stdout
    merged = pd.read_csv(csv).sort_values("tasks")
    assert list(zip(merged.tasks, merged.a_n)) == [(2, 48.65), (4, 28.45)]  # (30 + 25 + 19.2 + 39.6) / 4
    assert merged.iloc[1].a_by_task == "62.80/44.30/35.67/28.45"



def test_a_task_1_only_rerun_never_replaces_the_whole_lineage_of_its_seed(tmp_path):
    """Task-1-only trials (STOP_AFTER=1) that include a training seed recorded whole: its task 1 repeats,
    its A_N stays; a task 1 that does not repeat replaces the row as any re-measurement does."""
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    csv = tmp_path / "reference-proxy.csv"
    whole = {**_ref_row("dgr", 24.35, here), "seed": 1, "train_seed": 0, "task1_acc": 57.3, "a_by_task": "57.30/24.35"}
    pd.DataFrame([whole]).to_csv(csv, index=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"

    def record(task1: float) -> str:
        fidelity.write_protocol(tmp_path / f"ref{task1}" / "dgr", 1, 2)  # class order 1, a 2-task protocol
        _reference_log(tmp_path / f"ref{task1}", "dgr", [[[task1]]])  # one trial, stopped after task 1
        return subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / f"ref{task1}"),
                               "--reference-csv", str(csv)], check=True, capture_output=True, text=True).stdout

    assert "keeping reference dgr seed 1 training seed 0" in record(57.3)
    kept = pd.read_csv(csv)
    assert len(kept) == 1 and kept.iloc[0].a_n == 24.35
    assert "replacing reference dgr seed 1 training seed 0" in record(55.0)
    replaced = pd.read_csv(csv)
    assert len(replaced) == 1 and replaced.iloc[0].task1_acc == 55.0 and np.isnan(replaced.iloc[0].a_n)

def test_reference_proxy_shares_the_plain_task_1_only_where_it_is_plain_and_appends_logs(tmp_path):
    """reference_proxy.sh SHARED_FIRST: the learners whose task 1 is plain CE on the task's data load it from
    that method's folder (--load_model_dir); DGR (its VAE trains from task 1) and the shared method itself train
    their own; a resumed run appends to the method's log."""
    calls = tmp_path / "calls"
    stub = tmp_path / "python"
    stub.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\necho "run $*"\n')
    stub.chmod(0o755)
    out = tmp_path / "ref"
    out.mkdir()
    (out / "rehearsal.log").write_text("earlier run\n")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_proxy.sh"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(stub), "REFERENCE_OUT": str(out), "SHARED_FIRST": "bic",
           "REFERENCE_METHODS": "bic rehearsal dgr e2e"}
    subprocess.run(["bash", str(script), "1"], env=env, check=True, capture_output=True)
    lines = calls.read_text().splitlines()
    assert len(lines) == 4
    loads = {line.split("--log_dir ")[1].split()[0].rsplit("/", 1)[1]: "--load_model_dir" in line for line in lines}
    assert loads == {"bic": False, "rehearsal": True, "dgr": False, "e2e": True}
    assert f"--load_model_dir {out}/bic" in lines[1]
    assert (out / "rehearsal.log").read_text().splitlines()[0] == "earlier run"
    assert "--learner_name NormalNN --memory 400" in (out / "rehearsal.log").read_text()


class _Trainer:
    """The reference Trainer's use of `random` in its constructor: seeded with the trial index for the
    class shuffle (trainer.py); `other` stands for a later call with another value."""

    def __init__(self, args, seed):
        import random

        self.order = list(range(10))
        random.seed(seed)
        random.shuffle(self.order)
        random.seed(seed + 1000)
        self.after = random.random()


def test_a_fixed_class_order_redirects_only_the_trials_shuffle_seed():
    import random

    real_seed = random.seed
    plain = [_Trainer(None, r) for r in range(3)]
    assert plain[0].order != plain[1].order  # the trial index picks the class order
    cls = type("T", (_Trainer,), {})
    fidelity.fix_class_order(cls, 0)
    fixed = [cls(None, r) for r in range(3)]
    assert all(f.order == plain[0].order for f in fixed)  # every trial: class order 0
    assert [f.after for f in fixed] == [p.after for p in plain]  # other seeds untouched
    assert random.seed is real_seed  # redirected only while the constructor runs


def test_reference_rows_of_a_fixed_class_order_are_training_seeds_and_keep_the_protocol(tmp_path):
    nan = float("nan")
    fidelity.write_protocol(tmp_path / "abd", 1, 4)  # before the trials, as reference_run.py does
    _reference_log(tmp_path, "abd", [[[62.8]], [[60.0]], [[nan]]])  # `--max_task 1` of a 4-task protocol
    rows = fidelity.reference_rows(tmp_path)
    assert list(zip(rows.seed, rows.train_seed, rows.tasks, strict=True)) == [(1, 0, 4), (1, 1, 4)]
    assert list(rows.task1_acc) == [62.8, 60.0] and rows.a_n.isna().all() and rows.new_acc.isna().all()
    assert rows.a_by_task.iloc[0] == "62.80"
    fidelity.write_protocol(tmp_path / "abd", 1, 4)  # the same record again: fine
    with pytest.raises(fidelity.DfcilError, match=r"protocol.json records .*class_order.: 1.* not .*class_order.: 0"):
        fidelity.write_protocol(tmp_path / "abd", 0, 4)
    # a folder of trials run without a fixed order: trial 1 had class order 1, so order 0 is refused;
    # its trial 0 alone (class order 0) would have been consistent with it
    _reference_log(tmp_path / "free", "lwf", [[[50.0]], [[55.0]]])
    with pytest.raises(fidelity.DfcilError, match=r"holds trials \[1\] of other class orders"):
        fidelity.write_protocol(tmp_path / "free" / "lwf", 0, 1)
    _reference_log(tmp_path / "zero", "lwf", [[[50.0]], [[nan]]])
    fidelity.write_protocol(tmp_path / "zero" / "lwf", 0, 1)


def test_several_reference_training_seeds_are_compared_by_their_mean(tmp_path):
    for t, first in enumerate((60.0, 62.0, 64.0)):  # ours: task 1 mean 62, std 2 -> band 4
        _dfcil_run(tmp_path / str(t), 0, t, "abd", [[first], [30.0, 50.0]])
    ours = fidelity.dfcil_rows([tmp_path / str(t) for t in range(3)])
    ref = pd.DataFrame([{**_ref_row("abd", 40.0, "unknown"), "train_seed": t, "task1_acc": v}
                        for t, v in enumerate((66.0, 67.0, 68.0))])  # mean 67: 5 away, outside the band
    table = fidelity.compare(ours, ref).set_index("metric")
    assert table.loc["task1_acc", "reference"] == pytest.approx(67.0)
    assert table.loc["task1_acc", "reference_runs"] == 3 and table.loc["task1_acc", "reference_std"] == pytest.approx(1.0)
    assert not table.loc["task1_acc", "pass"]
    assert "62.0 ± 2.0 / 67.0 ± 1.0 [3] ✗" in fidelity.markdown(fidelity.compare(ours, ref))
    one = fidelity.compare(ours, ref.iloc[:1]).set_index("metric")  # a single run: its value, as before
    assert one.loc["task1_acc", "reference"] == 66.0 and one.loc["task1_acc", "pass"]



def test_each_reference_trial_keeps_the_device_class_that_ran_it(tmp_path):
    """A folder whose trials ran under different thread counts (trial 0 with 1 thread, trial 1 resumed
    with 2): each row takes its own trial's class, recorded as the trial starts; a folder without the
    record takes the class of the process that records it."""
    one, two = "cpu AVX512 | 1 threads | torch 2.14.1", "cpu AVX512 | 2 threads | torch 2.14.1"
    cls = type("T", (_Trainer,), {})
    log = tmp_path / "ref" / "lwf"
    args = types.SimpleNamespace(log_dir=str(log), load_model_dir=None)
    fidelity.record_trial_devices(cls, one)
    cls(args, 0)
    cls = type("T", (_Trainer,), {})
    fidelity.record_trial_devices(cls, two)
    cls(args, 1)
    # a trial that loads its task 1 from a folder whose trial ran with 1 thread, run itself with 2
    cls(types.SimpleNamespace(log_dir=str(tmp_path / "ref" / "lwf_mc"), load_model_dir=str(log)), 0)
    assert atomic_io.read_json(tmp_path / "ref" / "lwf_mc" / "devices.json") == {"0": "cpu AVX512 | 1+2 threads | torch 2.14.1"}
    cls(args, 0)  # trial 0 resumed with 2 threads: its saved tasks ran with 1
    assert atomic_io.read_json(log / "devices.json") == {"0": "cpu AVX512 | 1+2 threads | torch 2.14.1", "1": two}
    atomic_io.write_json(log / "devices.json", {"0": one, "1": two})  # back to one class per trial for the rows below
    _reference_log(tmp_path / "ref", "lwf", [[[50.0, 20.0], [0.0, 40.0]], [[52.0, 22.0], [0.0, 44.0]]])
    _reference_log(tmp_path / "ref", "base", [[[51.0, 0.0], [0.0, 60.0]]])  # no devices.json
    rows = fidelity.reference_rows(tmp_path / "ref")
    assert list(zip(rows.method, rows.train_seed, rows.device_class.fillna("none"), strict=True)) == [
        ("base", 0, "none"), ("lwf", 0, one),
        ("lwf", 1, two)]
    csv = tmp_path / "reference-proxy.csv"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref"), "--reference-csv", str(csv)],
                   check=True, capture_output=True, text=True)
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    merged = pd.read_csv(csv)
    assert list(zip(merged.method, merged.a_n, merged.device_class, strict=True)) == [
        ("base", 30.0, here), ("lwf", 30.0, one),
        ("lwf", 33.0, two)]
