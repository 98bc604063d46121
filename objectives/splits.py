"""The held-out test split (the lockbox) and the stratified K folds on the rest.

Made once from the seed, before the search; identical on every call and every worker
with the same data and seed, which the fingerprint lets a joining worker check.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from tuner.errors import DataError

__all__ = ["Splits", "make_splits"]


@dataclass(frozen=True)
class Splits:
    """Indices into the dataset: ``test`` is fenced off; ``folds`` cover ``trainval``."""

    test: np.ndarray
    trainval: np.ndarray
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train, validation) per fold

    def fingerprint(self, data_fingerprint: str) -> str:
        h = hashlib.sha256(data_fingerprint.encode())
        h.update(np.sort(self.test).astype(np.int64).tobytes())
        for _train, val in self.folds:
            h.update(np.sort(val).astype(np.int64).tobytes())
        return h.hexdigest()[:16]


def make_splits(y: np.ndarray, *, test_size: float, folds: int, seed: int) -> Splits:
    """Stratified test split, then stratified K-fold on the remainder.

    Raises:
        DataError: when a class has too few samples for the split and the folds.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"the labels hold a single class ({classes.tolist()}); need at least 2")
    idx = np.arange(len(y))
    try:
        trainval, test = train_test_split(
            idx, test_size=test_size, stratify=y, random_state=seed, shuffle=True
        )
    except ValueError as e:
        raise DataError(f"cannot make a stratified test split of {test_size:g}: {e}") from None
    tv_classes, tv_counts = np.unique(y[trainval], return_counts=True)
    short = [(int(c), int(n)) for c, n in zip(tv_classes, tv_counts, strict=True) if n < folds]
    missing = sorted(set(classes.tolist()) - set(tv_classes.tolist()))
    if missing or short:
        c, n = (int(missing[0]), 0) if missing else short[0]
        raise DataError(
            f"class {c} has {n} samples outside the test split, fewer than data.folds={folds}: "
            f"every fold needs one of each class. Lower data.folds to {max(2, n)} or less, "
            "collect more samples of that class, or merge it with another"
        )
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_idx = tuple(
        (trainval[tr], trainval[va]) for tr, va in skf.split(np.zeros(len(trainval)), y[trainval])
    )
    return Splits(test=np.sort(test), trainval=np.sort(trainval), folds=fold_idx)
