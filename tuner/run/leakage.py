"""Target leakage in one column: a feature that alone predicts the label near-perfectly.

Each feature of a table gets a one-feature model: a decision tree with at most
``2 * C`` leaves (two intervals per class), fit on one half of the non-test rows and
scored on the other, both ways, with balanced accuracy adjusted for chance (skill:
0 at chance, 1 perfect). A feature at ``LEAK_SKILL`` or above is reported. Only the
non-test rows are read: fitting on the test rows' labels would open the lockbox.

Cost is bounded by ``LEAK_MAX_ROWS`` (a random sample of the non-test rows) and
``LEAK_MAX_FEATURES`` (the first columns examined), and a vectorized screen skips the
trees for features that cannot reach the limit. It bounds from below the rows any
model of K intervals misclassifies: rows sharing a value get one class, so all but a
value's commonest label are errors; and along the sorted values (ties in label order)
E errors leave at most 2E + K - 1 label changes. A feature whose bound is above
``SCREEN_SLACK`` times the errors the limit allows is skipped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEAK_MAX_FEATURES", "LEAK_MAX_ROWS", "LEAK_SKILL", "leaking_columns"]

# Skill at or above which one feature is reported. On digits' labels (10 classes), a copy
# of the label scores 1.0, a copy with 1% of its labels changed 0.98-0.99, with 2%
# changed 0.97-0.98 (the edge), with 20% 0.75-0.79; the best single features of the
# built-in tables score far lower (held out, 5 seeds: iris 0.92-0.95, breast_cancer
# 0.79-0.83, wine 0.66-0.75, one digits pixel 0.18-0.20).
LEAK_SKILL = 0.98
LEAK_MAX_ROWS = 2000  # non-test rows sampled: a skill of 0.98 is known to about +-0.01
LEAK_MAX_FEATURES = 2000  # columns examined, in order
SCREEN_SLACK = 2.0  # held-out errors vs the in-sample bound: keep a feature unless far off
CHUNK = 256  # columns sorted at once (bounds the screen's memory)


def leaking_columns(X: np.ndarray, y: np.ndarray, columns: np.ndarray, seed: int) -> list[tuple[int, float]]:
    """The columns among ``columns`` whose one-feature skill is at least ``LEAK_SKILL``.

    Args:
        X: the non-test rows of a table, ``(N, F)``.
        y: their labels.
        columns: the column indices to examine (the first ``LEAK_MAX_FEATURES``).
        seed: the study's seed (row sample and halves).

    Returns:
        ``(column, skill)`` pairs, highest skill first.
    """
    rng = np.random.default_rng(seed)
    rows = np.arange(len(y))
    if len(rows) > LEAK_MAX_ROWS:
        rows = np.sort(rng.choice(rows, LEAK_MAX_ROWS, replace=False))
    # a class seen once can be in one half only, where no model could learn it: leave it out
    _, codes, counts = np.unique(y[rows], return_inverse=True, return_counts=True)
    rows = rows[counts[codes] >= 2]
    _, codes = np.unique(y[rows], return_inverse=True)
    n_classes = int(codes.max()) + 1 if len(codes) else 0
    if n_classes < 2:
        return []
    columns = np.asarray(columns)[:LEAK_MAX_FEATURES]
    Xs = X[rows][:, columns]
    # Stratified halves: every other row of each class, in a random order.
    order = rng.permutation(len(codes))
    order = order[np.argsort(codes[order], kind="stable")]
    first = np.zeros(len(codes), dtype=bool)
    first[order[::2]] = True
    found = []
    for j in np.flatnonzero(_screen(Xs, codes, n_classes)):
        skill = _tree_skill(Xs[:, j : j + 1], codes, first, n_classes)
        if skill >= LEAK_SKILL:
            found.append((int(columns[j]), skill))
    return sorted(found, key=lambda p: -p[1])


def _screen(X: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Which columns could reach ``LEAK_SKILL``: a lower bound on the rows any model of
    ``2 * C`` intervals misclassifies, against the errors that skill allows."""
    counts = np.bincount(y, minlength=n_classes)
    # Balanced skill s allows at most n_max * (C - 1) * (1 - s) misclassified rows.
    allowed = SCREEN_SLACK * counts.max() * (n_classes - 1) * (1 - LEAK_SKILL)
    by_label = np.argsort(y, kind="stable")
    Xl, yl = X[by_label], y[by_label]
    keep = np.empty(X.shape[1], dtype=bool)
    for start in range(0, X.shape[1], CHUNK):
        # a stable sort keeps rows with equal values in label order: fewest changes
        order = np.argsort(Xl[:, start : start + CHUNK], axis=0, kind="stable")
        values = np.take_along_axis(Xl[:, start : start + CHUNK], order, axis=0).T
        labels = yl[order].T
        changes = (labels[:, 1:] != labels[:, :-1]).sum(axis=1)
        # K intervals and E errors leave at most 2E + K - 1 label changes
        close = (changes - (2 * n_classes - 1)) / 2 <= allowed
        close[close] = _tie_errors(values[close], labels[close]) <= allowed
        keep[start : start + CHUNK] = close
    return keep


def _tie_errors(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (sorted, ties in label order): the rows any model of that
    feature misclassifies, since rows with one value get one class."""
    n_cols, n = values.shape
    new_value = np.ones((n_cols, n), dtype=bool)
    new_value[:, 1:] = values[:, 1:] != values[:, :-1]  # column 0 starts a new block
    new_run = new_value.copy()
    new_run[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    run_start = np.flatnonzero(new_run)  # runs of one value and one label, flattened
    run_length = np.diff(np.append(run_start, n_cols * n))
    block_first_run = np.flatnonzero(new_value.ravel()[run_start])
    size = np.add.reduceat(run_length, block_first_run)
    majority = np.maximum.reduceat(run_length, block_first_run)
    column = run_start[block_first_run] // n
    return np.bincount(column, weights=size - majority, minlength=n_cols)


def _tree_skill(x: np.ndarray, y: np.ndarray, first: np.ndarray, n_classes: int) -> float:
    """Held-out skill of a one-feature tree: fit on each half, predict the other."""
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.tree import DecisionTreeClassifier

    predicted = np.empty_like(y)
    for fit_on in (first, ~first):
        tree = DecisionTreeClassifier(max_leaf_nodes=2 * n_classes, random_state=0)
        tree.fit(x[fit_on], y[fit_on])
        predicted[~fit_on] = tree.predict(x[~fit_on])
    return float(balanced_accuracy_score(y, predicted, adjusted=True))
