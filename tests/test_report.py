"""Plots a person reads at a glance, and the HTML page of an output directory."""

from __future__ import annotations

import re

import numpy as np
import torch
from PIL import Image

from dfcil_core import io, plots, report


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
    plots.sample_grid(x, (0.5,) * 3, (0.25,) * 3, tmp_path / "plain.png", nrow=4)
    plots.sample_grid(x, (0.5,) * 3, (0.25,) * 3, tmp_path / "named.png", nrow=4,
                      labels=["apple", "apple", "bee", "wolf"])
    # Captions take room: the labelled grid is taller than the plain one.
    assert Image.open(tmp_path / "named.png").size[1] > Image.open(tmp_path / "plain.png").size[1]


def test_html_page_embeds_every_plot_and_the_table(tmp_path):
    doc = {"name": "default", "dataset": "cifar100", "n_tasks": 2, "seed": 0,
           "methods": {"abd": {"a_n": 41.25, "omega": 80.0, "old_acc": 22.0, "new_acc": 60.5,
                               "avg_inc_acc": 50.0, "forgetting": 40.0},
                       "base": {"a_n": 30.0, "omega": None, "old_acc": 0.0, "new_acc": 60.0,
                                "avg_inc_acc": 45.0, "forgetting": 60.0}},
           "diagnosis": {"abd": {"mid_real1_syn1": 0.53, "mid_real1_real2": 0.5, "mmd_real1_syn1": 0.04,
                                 "mmd_real1_real2": 0.01, "mid_dims_left_out": 3, "feature_dims": 64}}}
    io.write_json(tmp_path / "metrics.json", doc)
    pngs = ["eval/accuracy_per_task.png", "eval/abd/accuracy_matrix.png", "eval/mid.png",
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
