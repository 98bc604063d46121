"""The lockbox split and the folds: stratified, disjoint, reproducible."""

from __future__ import annotations

import numpy as np
import pytest

from objectives.data import load_dataset
from objectives.splits import make_splits
from tuner.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("sklearn:digits")


def test_test_split_is_stratified_and_disjoint(digits):
    s = make_splits(digits.y, test_size=0.2, folds=5, seed=0)
    assert len(np.intersect1d(s.test, s.trainval)) == 0
    assert len(s.test) + len(s.trainval) == len(digits.y)
    assert abs(len(s.test) - 0.2 * len(digits.y)) <= 1
    overall = np.bincount(digits.y) / len(digits.y)
    in_test = np.bincount(digits.y[s.test], minlength=10) / len(s.test)
    assert np.abs(overall - in_test).max() < 0.01


def test_folds_cover_trainval_once_and_never_touch_test(digits):
    s = make_splits(digits.y, test_size=0.2, folds=5, seed=0)
    vals = np.concatenate([va for _, va in s.folds])
    assert sorted(vals.tolist()) == sorted(s.trainval.tolist())
    for tr, va in s.folds:
        assert len(np.intersect1d(tr, va)) == 0
        assert len(np.intersect1d(np.concatenate([tr, va]), s.test)) == 0
        counts = np.bincount(digits.y[va], minlength=10)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 3  # stratified


def test_same_seed_same_split_other_seed_other_split(digits):
    a = make_splits(digits.y, test_size=0.2, folds=5, seed=0)
    b = make_splits(digits.y, test_size=0.2, folds=5, seed=0)
    c = make_splits(digits.y, test_size=0.2, folds=5, seed=1)
    assert np.array_equal(a.test, b.test)
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a.folds, b.folds, strict=True))
    assert not np.array_equal(a.test, c.test)
    fp = digits.fingerprint()
    assert a.fingerprint(fp) == b.fingerprint(fp) != c.fingerprint(fp)


def test_class_too_small_for_folds_names_the_class():
    y = np.array([0] * 50 + [1] * 50 + [2] * 4)
    with pytest.raises(
        DataError, match=r"class 2 has \d samples outside the test split, fewer than data.folds=5"
    ):
        make_splits(y, test_size=0.2, folds=5, seed=0)
