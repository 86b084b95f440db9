"""Hand-computed values for each metric of Eq. 16-17 and the diagnosis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dfcil_core.method import metrics

A = metrics.AccuracyMatrix.from_rows([[80.0], [30.0, 70.0]], [100, 100])
UPPER = metrics.AccuracyMatrix.from_rows([[90.0], [60.0, 80.0]], [100, 100])


def test_accuracy_matrix_shape_and_nan_above_diagonal():
    assert A.values.shape == (2, 2)
    assert math.isnan(A.values[0, 1])
    with pytest.raises(ValueError):
        metrics.AccuracyMatrix.from_rows([[1.0, 2.0]], [10, 10])


def test_final_accuracy_and_curve():
    assert A.seen_curve() == [80.0, 50.0]
    assert metrics.final_accuracy(A) == 50.0
    # unequal test sizes weigh by images: (30*100 + 70*300) / 400 = 60
    b = metrics.AccuracyMatrix.from_rows([[80.0], [30.0, 70.0]], [100, 300])
    assert metrics.final_accuracy(b) == pytest.approx(60.0)


def test_omega():
    # mean(80/90, 50/70) = (0.888889 + 0.714286) / 2 = 0.801587
    assert metrics.omega(A, UPPER) == pytest.approx(100 * (80 / 90 + 50 / 70) / 2)
    assert metrics.omega(UPPER, UPPER) == pytest.approx(100.0)


def test_average_incremental_accuracy_forgetting_old_new():
    assert metrics.average_incremental_accuracy(A) == pytest.approx(65.0)
    assert metrics.forgetting(A) == pytest.approx(50.0)  # 80 -> 30 on task 1
    assert metrics.old_new_accuracy(A) == (30.0, 70.0)
    three = metrics.AccuracyMatrix.from_rows([[90.0], [60.0, 80.0], [40.0, 70.0, 75.0]], [1, 1, 1])
    # task 1: max(90, 60) - 40 = 50; task 2: 80 - 70 = 10 -> 30
    assert metrics.forgetting(three) == pytest.approx(30.0)


def test_summary_and_roundtrip():
    s = metrics.summarize(A, UPPER)
    assert s["a_n"] == 50.0 and s["old_acc"] == 30.0 and s["new_acc"] == 70.0
    assert metrics.summarize(A, None)["omega"] is None
    back = metrics.AccuracyMatrix.from_dict(A.to_dict())
    np.testing.assert_array_equal(np.nan_to_num(back.values, nan=-1), np.nan_to_num(A.values, nan=-1))


def test_mid():
    # mu_a = 1, sigma_a = 1, mu_b = 4 -> 3; two dims: sqrt(3^2 + (2/2)^2)
    assert metrics.mean_image_distance(np.array([[0.0], [2.0]]), np.array([[3.0], [5.0]]))[0] == pytest.approx(3.0)
    za = np.array([[0.0, 0.0], [2.0, 4.0]])  # std (1, 2)
    zb = np.array([[3.0, 4.0], [5.0, 4.0]])  # mean (4, 4); mean a = (1, 2)
    assert metrics.mean_image_distance(za, zb) == (pytest.approx(math.sqrt(9 + 1)), 0)


def test_mmd_is_the_unbiased_estimator():
    # za = {0, 1}, zb = {3, 5}, bandwidth 1, k = exp(-d^2 / 2). Within a: the one pair at d = 1; within b:
    # d = 2 (no point with itself); across: d = 3, 5, 2, 4.
    za, zb = np.array([[0.0], [1.0]]), np.array([[3.0], [5.0]])
    across = (math.exp(-4.5) + math.exp(-12.5) + math.exp(-2) + math.exp(-8)) / 4
    assert metrics.mmd_rbf(za, zb, bandwidth=1.0) == pytest.approx(math.exp(-0.5) + math.exp(-2) - 2 * across)
    # The biased estimator of the same samples adds the diagonal (k = 1): it would be larger by
    # 2 x (1 - mean off-diagonal) / n per sample; the unbiased one of a sample against itself is below 0.
    z = np.random.default_rng(0).normal(size=(20, 3))
    assert -0.2 < metrics.mmd_rbf(z, z) < 0
    assert metrics.mmd_rbf(z, z + 5) > metrics.mmd_rbf(z, z + 0.1)
    with pytest.raises(ValueError, match="two or more points"):
        metrics.mmd_rbf(za[:1], zb)


def test_mid_leaves_out_dead_units():
    """A dead ReLU unit (sigma_a = 0) would divide by ~0; it is left out and counted."""
    za = np.array([[0.0, 0.0, 1.0], [2.0, 0.0, 3.0]])  # dims: sigma 1, 0 (dead), 1
    zb = np.array([[3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])  # mean diffs: 3, 5, 1
    mid, left_out = metrics.mean_image_distance(za, zb)
    assert left_out == 1
    assert mid == pytest.approx(math.sqrt(3 ** 2 + 1 ** 2))
    # A unit far below the median spread (1e-3 of it) counts as dead too; one at half of it does not.
    za2 = np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 2e-3, 3.0, 1.0]])
    zb2 = np.array([[3.0, 5.0, 2.0, 0.5], [5.0, 5.0, 4.0, 1.5]])
    mid2, left_out2 = metrics.mean_image_distance(za2, zb2)
    assert left_out2 == 1
    assert mid2 == pytest.approx(math.sqrt(9 + 1 + (0.5 / 0.5) ** 2))


def test_class_prediction_shares_by_hand():
    # 5 images of 3 classes (labels 0,0,1,1,2); predicted 0,1,1,1,1: right on images 1, 3, 4.
    out = metrics.class_prediction_shares(np.array([0, 1, 1, 1, 1]), np.array([0, 0, 1, 1, 2]), 4)
    assert out["accuracy"] == pytest.approx(60.0)
    assert out["share"] == pytest.approx([20.0, 80.0, 0.0, 0.0])
    assert out["recall"][:3] == pytest.approx([50.0, 100.0, 0.0]) and math.isnan(out["recall"][3])
    with pytest.raises(ValueError, match="must be equal"):
        metrics.class_prediction_shares(np.array([0, 1]), np.array([0]), 2)
