"""The coreset rules by hand: quotas, the resampling draws, the random and ranked selections, BiC's
hold-out (their equality with the authors' code is in test_replay_equivalence.py)."""

from __future__ import annotations

import numpy as np
import pytest

from dfcil_core.method import coreset


def test_quota_splits_the_size_and_gives_the_remainder_from_the_last_class_down():
    # 10 over 3 classes: 3 each, the remainder 1 to the last class (it has more than 3 candidates)
    assert coreset.class_quota(10, {0: 9, 1: 9, 2: 9}) == {0: 3, 1: 3, 2: 4}
    # 11 over 3: the last two classes get one more
    assert coreset.class_quota(11, {0: 9, 1: 9, 2: 9}) == {0: 3, 1: 4, 2: 4}
    # a class with too few candidates keeps them all, and passes the remainder on to the next class down
    assert coreset.class_quota(11, {0: 9, 1: 9, 2: 2}) == {0: 4, 1: 4, 2: 2}
    assert coreset.class_quota(5, {}) == {}


def test_draws_are_the_seeded_numpy_draws_with_replacement():
    d = coreset.draws(4, 6, seed=1, task=3)
    assert d.tolist() == np.random.RandomState(1 * 100 + 2).choice(4, 6).tolist()
    assert len(d) == 6 and d.max() < 4
    assert coreset.draws(0, 6, 1, 3).tolist() == []


def _entries(labels, task):
    return coreset.task_entries(np.asarray(labels), task)


def test_random_coreset_keeps_the_quota_and_fills_with_duplicates():
    """After task 2 the old classes' candidates are the draws of task 2's training set: with more
    draws than entries, the same entry is drawn (and kept) more than once."""
    first = coreset.select_random(coreset.candidates(_entries([0] * 6 + [1] * 6, 1), coreset.Coreset.empty()),
                                  4, seed=0, task=1)
    assert len(first) == 4 and first.labels.tolist() == [0, 0, 1, 1] and (first.refs[:, 0] == 1).all()
    new = _entries([2] * 30 + [3] * 30, 2)
    replayed = coreset.resampled(first, len(new), seed=0, task=2)
    assert len(replayed) == 60 and len({tuple(r) for r in replayed.refs.tolist()}) == 4
    second = coreset.select_random(coreset.candidates(new, replayed), 8, seed=0, task=2)
    assert second.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    old = second.refs[second.labels < 2]
    assert len({tuple(r) for r in old.tolist()}) <= 4  # four distinct entries at most among the old classes
    counts = {}
    for seed in range(10):  # over seeds, some selection keeps a duplicate
        s = coreset.select_random(coreset.candidates(new, coreset.resampled(first, 60, seed, 2)), 8, seed, 2)
        counts[seed] = len({tuple(r) for r in s.refs.tolist()})
    assert min(counts.values()) < 8


def test_mean_distance_order_by_hand():
    # mean (2, 0): distances 2, 1, 0, 3 -> order 2, 1, 0, 3
    f = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [5.0, 0.0]])
    assert coreset.mean_distance_order(f, 3).tolist() == [2, 1, 0]


def test_herding_order_by_hand():
    """Class mean (1.125, 1). Step 1: (1, 1.5) and (1, 0.5) are equally near it, the first wins.
    Step 2: (1, 0.5) brings the mean of the chosen to (1, 1), 0.125 from the class mean. Step 3: with
    the sum (2, 2), adding (0, 1) gives (2/3, 1), 0.458 away; adding (2.5, 1) gives (1.5, 1), 0.375
    away: herding takes (2.5, 1), where the nearest to the mean (E2E's order) would be (0, 1)."""
    f = np.array([[1.0, 1.5], [1.0, 0.5], [0.0, 1.0], [2.5, 1.0]])
    assert coreset.herding_order(f, 3).tolist() == [0, 1, 3]
    assert coreset.mean_distance_order(f, 3).tolist() == [0, 1, 2]
    assert coreset.herding_order(f, 9).tolist() == [0, 1, 3, 2]  # never more than there are


def test_ranked_coreset_ranks_new_classes_once_and_keeps_prefixes_of_old_ones():
    previous = coreset.Coreset.of_classes({0: np.array([[1, 5], [1, 2], [1, 7]])})
    new = _entries([1] * 4, 2)
    feats = {(2, r): [float(r), 0.0] for r in range(4)}  # class 1's mean is (1.5, 0)
    kept = coreset.select_ranked(coreset.candidates(new, previous), previous, 4, "mean_distance",
                                 lambda refs: np.array([feats[tuple(r)] for r in refs.tolist()]))
    assert kept.refs.tolist() == [[1, 5], [1, 2], [2, 1], [2, 2]]  # old: prefix of 2; new: 2 nearest (ties: first)
    assert kept.labels.tolist() == [0, 0, 1, 1]


def test_coreset_json_round_trip_and_shape_check():
    c = coreset.Coreset.of_classes({1: np.array([[2, 3]]), 0: np.array([[1, 0], [1, 0]])})
    assert c.refs.tolist() == [[1, 0], [1, 0], [2, 3]] and c.labels.tolist() == [0, 0, 1]
    back = coreset.Coreset.from_json(c.to_json())
    assert back.refs.tolist() == c.refs.tolist() and back.labels.tolist() == c.labels.tolist()
    with pytest.raises(ValueError, match="coreset refs of shape"):
        coreset.Coreset(np.zeros((2, 3), np.int64), np.zeros(2, np.int64))


def test_bic_holdout_by_hand():
    """A coreset of 20 and 2 past classes: 2 held out, 1 per class, from the new classes' first images
    and the old classes' first coreset entries."""
    new = np.array([2, 2, 3, 3, 3])
    core = np.array([0] * 10 + [1] * 10)
    h = coreset.bic_holdout(new, core, 0.1, past=2)
    assert h.new_held.tolist() == [0, 2] and h.new_train.tolist() == [1, 3, 4]
    assert h.coreset_held.tolist() == [0, 10] and len(h.coreset_train) == 18
    # int(0.1 * 20) / 3 past classes rounds down to 0: nothing held out, as the authors' rounding gives
    assert coreset.bic_holdout(new, core, 0.1, past=3).new_held.tolist() == []
