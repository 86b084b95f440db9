"""Plots a person reads at a glance, and the HTML page of an output directory."""

from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from dfcil_core.foundations import atomic_io
from dfcil_core.run import eval_plots as plots
from dfcil_core.run import generator_plots, report
from dfcil_core.run.report import story_checks


def test_task_axis_has_whole_numbers_only(tmp_path):
    ticks = plots.curves_per_task({"abd": [60.0, 40.0], "base": [60.0, 30.0]}, tmp_path / "a.png", "acc")
    assert ticks == [1.0, 2.0]
    ticks = plots.curves_per_task({"abd": [60.0, 40.0, 30.0, 25.0, 20.0]}, tmp_path / "b.png", "acc")
    assert ticks == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_bars_switch_to_log_when_one_value_dwarfs_the_others(tmp_path):
    assert plots.bar_scale([0.53, 0.50, 3.9, 2.6]) == "linear"
    assert plots.bar_scale([0.53, 0.50, 3_770_463.0, 2.6]) == "log"
    assert plots.bar_scale([0.0, 5.0]) == "linear"  # one positive value: nothing to compare
    scale = plots.grouped_bars({"deepinversion": {"MID syn": 3_770_463.0, "MID real": 2.6},
                                "abd": {"MID syn": 0.53, "MID real": 0.50}}, tmp_path / "mid.png", "MID")
    assert scale == "log"
    assert Image.open(tmp_path / "mid.png").size[0] > 100


def test_sample_grid_labels_each_image(tmp_path):
    x = torch.zeros(4, 3, 8, 8)
    generator_plots.sample_grid(x, (0.5,) * 3, (0.25,) * 3, tmp_path / "plain.png", nrow=4)
    generator_plots.sample_grid(x, (0.5,) * 3, (0.25,) * 3, tmp_path / "named.png", nrow=4,
                      labels=["apple", "apple", "bee", "wolf"])
    # Captions take room: the labelled grid is taller than the plain one.
    assert Image.open(tmp_path / "named.png").size[1] > Image.open(tmp_path / "plain.png").size[1]


def test_training_curves_span_the_tasks_and_leave_phase_gaps(tmp_path):
    task1 = {"loss": [2.0, 1.5], "terms": {"ce": [2.0, 1.5]}}
    task2 = {"loss": [3.0, 2.0, 1.0], "terms": {"local_ce": [2.0, 1.5, None], "hkd": [1.0, 0.5, 0.2],
                                              "balanced_ce": [None, None, 0.8]}}
    plots.training_curves([task1, task2], tmp_path / "l.png", title="rdfcil")
    assert Image.open(tmp_path / "l.png").size[0] > 300
    plots.training_curves([{"loss": [1.0]}, {}], tmp_path / "old.png")  # checkpoints from before terms
    assert (tmp_path / "old.png").stat().st_size > 0


def test_html_page_embeds_every_plot_and_the_table(tmp_path):
    doc = {"name": "default", "dataset": "cifar100", "n_tasks": 2, "seed": 0,
           "methods": {"abd": {"a_n": 41.25, "omega": 80.0, "old_acc": 22.0, "new_acc": 60.5,
                               "avg_inc_acc": 50.0, "forgetting": 40.0},
                       "base": {"a_n": 30.0, "omega": None, "old_acc": 0.0, "new_acc": 60.0,
                                "avg_inc_acc": 45.0, "forgetting": 60.0}},
           "diagnosis": {"abd": {"mid_real1_syn1": 0.53, "mid_real1_real2": 0.5, "mmd_real1_syn1": 0.04,
                                 "mmd_real1_real2": 0.01, "mid_dims_left_out": 3, "feature_dims": 64}}}
    atomic_io.write_json(tmp_path / "metrics.json", doc)
    pngs = ["eval/accuracy_per_task.png", "eval/abd/accuracy_matrix.png", "eval/abd/training_losses.png", "eval/mid.png",
            "generators/abd/samples_task_2.png", "generators/abd/losses_task_2.png"]
    for rel in pngs:
        plots.accuracy_heatmap(np.array([[70.0, np.nan], [20.0, 60.0]]), tmp_path / rel)
    page = report.write(tmp_path).read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == len(pngs)
    for rel in pngs:
        assert rel in page
    assert "<td>abd</td><td>41.2</td><td>80.0</td><td>22.0</td><td>60.5</td>" in page
    assert "<td>base</td><td>30.0</td><td>–</td>" in page  # no upper bound: no Ω
    assert "3 of 64" in page and "0.53" in page


def _doc(**over):
    methods = {"upper_bound": {"a_n": 60.0, "omega": 100.0, "old_acc": 55.0},
               "base": {"a_n": 30.0, "omega": 70.0, "old_acc": 0.0},
               "deepinversion": {"a_n": 33.0, "omega": 75.0, "old_acc": 8.0},
               "abd": {"a_n": 40.0, "omega": 85.0, "old_acc": 25.0}}
    for key, value in over.items():
        method, metric = key.split("__")
        methods[method][metric] = value
    return {"methods": methods, "diagnosis": {"abd": {"mid_real1_syn1": 0.5}, "deepinversion": {"mid_real1_syn1": 3.9}}}


def test_story_checks_hold_on_a_run_that_tells_the_story():
    checks = story_checks(_doc())
    assert all(ok for _, ok in checks) and len(checks) == 7
    assert checks[0][0] == "Base forgets the old classes: old-class accuracy 0.0 <= 5"
    assert "A_N: upper bound 60.0 is highest (next: abd 40.0)" in [t for t, _ in checks]


def test_story_checks_name_what_fails():
    failed = {t for t, ok in story_checks(_doc(abd__old_acc=19.9, base__omega=100.5, deepinversion__a_n=41.0)) if not ok}
    assert failed == {"ABD keeps the old classes: old-class accuracy 19.9 >= 20",
                      "A_N: ABD 40.0 > deepinversion 41.0",
                      "Ω <= 100 for every method (largest: base 100.5)"}
    doc = _doc()
    doc["diagnosis"]["abd"]["mid_real1_syn1"] = 4.0
    assert [t for t, ok in story_checks(doc) if not ok] == ["MID(real t1, synthetic t1): DeepInversion 3.90 > ABD 4.00"]
    del doc["methods"]["abd"], doc["diagnosis"]  # only statements about methods that ran
    assert [t for t, _ in story_checks(doc)][0].startswith("Base forgets") and len(story_checks(doc)) == 3


def test_story_table_prints_one_row_per_run_and_the_mean(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "story_table.py"
    spec = importlib.util.spec_from_file_location("story_table", path)
    story_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(story_table)
    runs = []
    for seed, (abd_a_n, abd_mid) in enumerate([(40.0, 0.5), (20.0, 4.0)]):
        doc = _doc(abd__a_n=abd_a_n)
        doc["diagnosis"]["abd"]["mid_real1_syn1"] = abd_mid
        for m in doc["methods"].values():
            m.setdefault("new_acc", 50.0)
        doc.update(seed=0, train_seed=seed)
        atomic_io.write_json(tmp_path / f"t{seed}" / "metrics.json", doc)
        runs.append(str(tmp_path / f"t{seed}"))
    story_table.main(runs)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == ("| 0 | 60.0 | 30.0 | 33.0 | **40.0** | 25.0 / 50.0 | 8.0 | 0.0 | 3.90 / 0.50 | 100.0 "
                        "| 7 of 7 |")
    # Seed 1: ABD 20.0 is below DeepInversion (33.0) and Base (30.0), and its MID 4.00 above DI's 3.90.
    assert lines[3].endswith("| 4 of 7 (not: ABD > deepinversion; ABD > base; MID(real t1, synthetic t1)) |")
    # Means over the two runs; ABD's std = |40 - 20| / sqrt(2).
    assert lines[4].startswith("| mean ± std | 60.0 ± 0.0 | 30.0 ± 0.0 | 33.0 ± 0.0 | **30.0 ± 14.1** |")


def test_report_command_prints_the_table_without_importing_torch(tmp_path):
    """`dfcil report` only reads JSON: the main job ends with it, and torch's import is ~3 s of a CPU's start."""
    import subprocess
    import sys

    doc = _doc()
    for m in doc["methods"].values():
        m.update(new_acc=50.0, forgetting=10.0)
    doc.update(name="default", dataset="cifar100", n_tasks=2, seed=0)
    doc["diagnosis"]["abd"].update(mid_real1_real2=0.4, feature_dims=64, mid_dims_left_out=3)
    doc["diagnosis"]["deepinversion"].update(mid_real1_real2=0.7, feature_dims=64, mid_dims_left_out=0)
    atomic_io.write_json(tmp_path / "metrics.json", doc)
    code = ("import sys; from dfcil_core.__main__ import main; rc = main(['report', '--out', sys.argv[1]]); "
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported'); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "abd 40.0 85.0 25.0 50.0 10.0" in [" ".join(line.split()) for line in r.stdout.splitlines()]
    assert "  ok   MID(real t1, synthetic t1): DeepInversion 3.90 > ABD 0.50" in r.stdout
    assert "abd: MID(real t1, syn t1) 0.50, MID(real t1, real t2) 0.40 (3 of 64 near-constant feature dims left out)" in r.stdout
    assert "deepinversion: MID(real t1, syn t1) 3.90, MID(real t1, real t2) 0.70\n" in r.stdout
    assert r.stdout.rstrip().endswith("torch not imported")
