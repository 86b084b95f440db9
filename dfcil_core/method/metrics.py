"""The paper's metrics (Eq. 16-17), defined once. All accuracies are in percent.

A[i][n]: accuracy of the model after task i on the test data of task n, predicting over all
classes seen up to task i (no task id). Entries with n > i are undefined (NaN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AccuracyMatrix:
    values: np.ndarray  # (N, N), percent, NaN above the diagonal
    test_sizes: np.ndarray  # (N,) test images per task, weights for "all classes so far"

    @property
    def n_tasks(self) -> int:
        return self.values.shape[0]

    @classmethod
    def from_rows(cls, rows: list[list[float]], test_sizes: list[int]) -> AccuracyMatrix:
        n = len(test_sizes)
        values = np.full((n, n), np.nan)
        for i, row in enumerate(rows):
            if len(row) != i + 1:
                raise ValueError(f"row {i} of the accuracy matrix needs {i + 1} entries")
            values[i, : i + 1] = row
        return cls(values=values, test_sizes=np.asarray(test_sizes, dtype=np.float64))

    def seen_accuracy(self, i: int) -> float:
        """A_{i,1:i}: accuracy after task i over the test data of every task seen so far."""
        w = self.test_sizes[: i + 1]
        return float(np.dot(self.values[i, : i + 1], w) / w.sum())

    def seen_curve(self) -> list[float]:
        return [self.seen_accuracy(i) for i in range(self.n_tasks)]

    def to_dict(self) -> dict:
        return {
            "values": [[None if np.isnan(v) else float(v) for v in row] for row in self.values],
            "test_sizes": [int(s) for s in self.test_sizes],
        }

    @classmethod
    def from_dict(cls, d: dict) -> AccuracyMatrix:
        vals = np.array([[np.nan if v is None else v for v in row] for row in d["values"]], dtype=np.float64)
        return cls(values=vals, test_sizes=np.asarray(d["test_sizes"], dtype=np.float64))


def final_accuracy(a: AccuracyMatrix) -> float:
    """A_N: accuracy after the last task over all classes."""
    return a.seen_accuracy(a.n_tasks - 1)


def omega(a: AccuracyMatrix, upper: AccuracyMatrix) -> float:
    """Eq. 17: mean over tasks i of A_{i,1:i} / A^offline_{i,1:i} (in percent).

    The task-size-weighted sum of Eq. 17 over n <= i is accuracy over all classes seen at i,
    so each term is the ratio of "all seen classes" accuracies, as in the authors' code.
    """
    if upper.n_tasks != a.n_tasks:
        raise ValueError("omega needs an upper bound with the same tasks")
    ratios = [a.seen_accuracy(i) / upper.seen_accuracy(i) for i in range(a.n_tasks)]
    return 100.0 * float(np.mean(ratios))


def average_incremental_accuracy(a: AccuracyMatrix) -> float:
    """Mean over tasks of A_{i,1:i} (Rebuffi et al.)."""
    return float(np.mean(a.seen_curve()))


def forgetting(a: AccuracyMatrix) -> float:
    """Mean over tasks n < N of max_{i<N} A[i][n] - A[N][n] (Chaudhry et al.); 0 for one task."""
    n = a.n_tasks
    if n < 2:
        return 0.0
    drops = [np.nanmax(a.values[: n - 1, j]) - a.values[n - 1, j] for j in range(n - 1)]
    return float(np.mean(drops))


def old_new_accuracy(a: AccuracyMatrix) -> tuple[float, float]:
    """After the last task: accuracy on the old tasks' data and on the last task's data."""
    n = a.n_tasks
    if n < 2:
        return float("nan"), float(a.values[0, 0])
    w = a.test_sizes[: n - 1]
    old = float(np.dot(a.values[n - 1, : n - 1], w) / w.sum())
    return old, float(a.values[n - 1, n - 1])


def summarize(a: AccuracyMatrix, upper: AccuracyMatrix | None) -> dict[str, float | None]:
    old, new = old_new_accuracy(a)
    return {
        "a_n": final_accuracy(a),
        "omega": omega(a, upper) if upper is not None else None,
        "avg_inc_acc": average_incremental_accuracy(a),
        "forgetting": forgetting(a),
        "old_acc": old,
        "new_acc": new,
    }


def class_prediction_shares(pred: np.ndarray, labels: np.ndarray, classes: int) -> dict[str, object]:
    """Where a model's predictions go: accuracy, the share of images predicted as each class and each
    class's recall, in percent (recall NaN for a class without images). A model that over-predicts one
    class pulls a generator inverted from it onto that class."""
    pred, labels = np.asarray(pred), np.asarray(labels)
    if pred.shape != labels.shape or pred.size == 0:
        raise ValueError(f"predictions {pred.shape} and labels {labels.shape} must be equal, non-empty")
    support = np.bincount(labels, minlength=classes).astype(float)
    hits = np.bincount(labels[pred == labels], minlength=classes).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support * 100, np.nan)
    return {"accuracy": float((pred == labels).mean() * 100),
            "share": (np.bincount(pred, minlength=classes) / pred.size * 100).tolist(),
            "recall": recall.tolist()}


# MID leaves out feature dimensions whose spread over `za` is below this share of the median
# spread: a dead ReLU unit (sigma_a = 0) would otherwise divide by ~0 and swamp every other term.
MID_MIN_RELATIVE_STD = 1e-2


def mean_image_distance(za: np.ndarray, zb: np.ndarray,
                        min_relative_std: float = MID_MIN_RELATIVE_STD) -> tuple[float, int]:
    """MID (Eq. 10), || (mu_a - mu_b) / sigma_a ||_2 over the feature dimensions whose sigma_a is at
    least `min_relative_std` x the median sigma_a; returns (MID, number of dimensions left out)."""
    sigma = za.std(axis=0)
    floor = min_relative_std * float(np.median(sigma))
    keep = sigma > max(floor, 1e-12)
    diff = (za.mean(axis=0) - zb.mean(axis=0))[keep] / sigma[keep]
    return float(np.linalg.norm(diff)), int((~keep).sum())


def mmd_rbf(za: np.ndarray, zb: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with a Gaussian kernel (Gretton et al. 2012, Eq. 3), as the paper's
    Appendix B uses it: the within-sample means leave out each point's kernel with itself, so the
    estimate is centred on the true MMD^2 (and can fall below 0 when the two samples agree). The
    bandwidth defaults to the median heuristic over both samples."""
    na, nb = len(za), len(zb)
    if na < 2 or nb < 2:
        raise ValueError(f"unbiased MMD needs two or more points per sample (got {na} and {nb})")
    z = np.concatenate([za, zb]).astype(np.float64)
    sq = (z ** 2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0)
    if bandwidth is None:
        bandwidth = float(np.sqrt(np.median(d2[d2 > 0]) / 2)) if np.any(d2 > 0) else 1.0
    k = np.exp(-d2 / (2 * bandwidth ** 2))
    kaa, kbb, kab = k[:na, :na], k[na:, na:], k[:na, na:]
    within_a = (kaa.sum() - np.trace(kaa)) / (na * (na - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (nb * (nb - 1))
    return float(within_a + within_b - 2 * kab.mean())
