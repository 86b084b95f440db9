"""The fidelity table: reading the reference's result files and ours, and the pass band."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from dfcil_core import fidelity, io
from dfcil_core.metrics import AccuracyMatrix
from dfcil_core.runtime import device_fingerprint


def _reference_log(root, method: str, trials: list[list[list[float]]]) -> None:
    """pt.yaml as the reference writes it: history[j][i][r] = acc on task j+1 after task i+1, trial r."""
    hist = np.stack([np.asarray(t, dtype=float) for t in trials], axis=-1)
    d = root / method / "results-acc"
    d.mkdir(parents=True)
    (d / "pt.yaml").write_text(yaml.safe_dump({"history": hist.tolist()}))


def _dfcil_run(root, seed: int, train_seed: int, method: str, a: list[list[float]]) -> None:
    m = AccuracyMatrix.from_rows(a, [1000, 1000])
    io.write_json(root / "eval" / method / "accuracy_matrix.json", m.to_dict())
    io.write_json(root / "metrics.json", {"seed": seed, "train_seed": train_seed, "methods": {
        method: {"a_n": m.seen_accuracy(1), "old_acc": a[1][0], "new_acc": a[1][1]}}})


def test_reference_rows_read_pt_yaml(tmp_path):
    # trial 0: task 1 70 after task 1; after task 2: 20 on task 1, 60 on task 2
    _reference_log(tmp_path, "abd", [[[70.0, 20.0], [0.0, 60.0]], [[66.0, 10.0], [0.0, 50.0]]])
    rows = fidelity.reference_rows(tmp_path)
    r0 = rows[rows.seed == 0].iloc[0]
    assert (r0.task1_acc, r0.old_acc, r0.new_acc, r0.a_n) == (70.0, 20.0, 60.0, 40.0)
    assert rows[rows.seed == 1].iloc[0].a_n == 30.0


def test_band_is_max_of_3_points_and_2_std(tmp_path):
    runs = []
    for t, (old, new) in enumerate([(20.0, 60.0), (24.0, 60.0), (22.0, 60.0)]):  # a_n 40, 42, 41: std 1
        _dfcil_run(tmp_path / str(t), 0, t, "abd", [[70.0 + t], [old, new]])
        runs.append(tmp_path / str(t))
    ours = fidelity.dfcil_rows(runs)
    ref = pd.DataFrame([{"source": "reference", "method": "abd", "seed": 0, "train_seed": 0, "task1_acc": 68.5,
                         "old_acc": 30.0, "new_acc": 60.0, "a_n": 44.5}])
    table = fidelity.compare(ours, ref).set_index("metric")
    assert table.loc["a_n", "ours_mean"] == pytest.approx(41.0) and table.loc["a_n", "ours_std"] == pytest.approx(1.0)
    assert table.loc["a_n", "band"] == 3.0 and not table.loc["a_n", "pass"]  # 44.5 is 3.5 away
    assert table.loc["task1_acc", "pass"]  # 68.5 vs mean 71 (70, 71, 72): 2.5 away
    assert table.loc["old_acc", "band"] == pytest.approx(4.0) and not table.loc["old_acc", "pass"]  # std 2 -> 4


def test_markdown_says_not_run(tmp_path):
    _dfcil_run(tmp_path, 1, 1, "lwf", [[50.0], [5.0, 70.0]])
    ref = pd.DataFrame(columns=fidelity.COLUMNS)
    text = fidelity.markdown(fidelity.compare(fidelity.dfcil_rows([tmp_path]), ref))
    assert "| lwf | 1 | 1 / 1 |" in text and "not run" in text and "✗" not in text


def test_runs_evaluated_at_task_1_only_fill_the_task1_cell(tmp_path):
    # `dfcil evaluate --first-task` writes eval/first_task.json: θ(1) is judged before task 2 exists.
    for t, acc in enumerate([72.0, 74.0, 73.0]):
        io.write_json(tmp_path / str(t) / "eval" / "first_task.json",
                      {"seed": 0, "train_seed": t, "task1_acc": {"abd": acc, "base": acc - 4}})
    ours = fidelity.dfcil_rows([tmp_path / str(t) for t in range(3)])
    assert len(ours) == 6 and ours.a_n.isna().all()
    ref = pd.DataFrame([{"source": "reference", "method": "abd", "seed": 0, "train_seed": 0, "task1_acc": 70.0,
                         "old_acc": 46.9, "new_acc": 50.4, "a_n": 48.65}])
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
    io.write_json(tmp_path / "eval" / "first_task.json",
                  {"seed": 0, "train_seed": 0, "task1_acc": {"abd": 99.0, "lwf": 66.0}})
    rows = fidelity.dfcil_rows([tmp_path]).set_index("method")
    assert sorted(rows.index) == ["abd", "lwf"]
    assert rows.loc["abd", "task1_acc"] == 71.0 and rows.loc["abd", "a_n"] == pytest.approx(52.0)
    assert rows.loc["lwf", "task1_acc"] == 66.0 and np.isnan(rows.loc["lwf", "a_n"])
    text = fidelity.markdown(fidelity.compare(fidelity.dfcil_rows([tmp_path]), pd.DataFrame(columns=fidelity.COLUMNS)))
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
    pd.DataFrame([{"source": "reference", "method": "base", "seed": 0, "train_seed": 0, "task1_acc": 67.8,
                   "old_acc": 0.0, "new_acc": 65.9, "a_n": 32.95, "date": "2026-11-29", "command": "x"}]).to_csv(csv, index=False)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fidelity_table.py"
    subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref"), "--reference-csv", str(csv)],
                   check=True, capture_output=True)
    merged = pd.read_csv(csv)
    assert list(zip(merged.method, merged.seed, strict=True)) == [("base", 0), ("base", 1)]
    assert merged.iloc[0].date == "2026-11-29" and merged.iloc[0].a_n == 32.95
    assert merged.iloc[1].a_n == pytest.approx(28.2)
    # Each row says which device class measured it (old rows without one: unknown), and a row re-measured
    # with another value is replaced and the replacement printed with both devices.
    here = device_fingerprint(torch.device("cpu"))["device_class"]
    assert merged.iloc[0].device_class == "unknown" and merged.iloc[1].device_class == here
    _reference_log(tmp_path / "ref2", "base", [[[67.0, 0.0], [0.0, 66.0]]])
    done = subprocess.run([sys.executable, str(script), "--reference", str(tmp_path / "ref2"), "--reference-csv", str(csv),
                           "--command", "REFERENCE_OUT=x bash benchmarks/reference_proxy.sh 1"],
                          check=True, capture_output=True, text=True)
    assert "replacing reference base seed 0: A_N 32.95 (unknown, 2026-11-29) -> 33.00" in done.stdout
    merged = pd.read_csv(csv)
    assert merged.iloc[0].a_n == 33.0 and merged.iloc[0].device_class == here
    assert merged.iloc[0].command == "REFERENCE_OUT=x bash benchmarks/reference_proxy.sh 1"
    assert merged.iloc[1].a_n == pytest.approx(28.2)  # seed 1 not in ref2: kept
