"""Pre-flight checks on a table's columns (constant, duplicate, label-leaking), read on the
non-test rows only, and float labels that are whole numbers: each warning names its
columns and evidence, and the realistic negatives raise nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from objectives.data import load_dataset
from objectives.dataset import Dataset
from objectives.splits import make_splits
from tests.conftest import tiny_study
from tuner.config import validate_config
from tuner.errors import DataError
from tuner.run import leakage
from tuner.run.preflight import check_splits


def config(**over: Any) -> Any:
    return validate_config(tiny_study(**over), base_dir=Path("."), source="study.yaml")


def digits_table() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target.astype(np.int64)


def warnings_for(X: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> list[str]:
    classes = [str(c) for c in range(int(y.max()) + 1)]
    ds = Dataset(X=X, y=y, classes=classes, source="data.npz", feature_names=names or [])
    return check_splits(config(), ds, make_splits(y, test_size=0.2, folds=2, seed=0))


def about(warnings: list[str], what: str) -> list[str]:
    return [w for w in warnings if w.startswith(what)]


def noise(n: int = 600, features: int = 6, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, features)).astype(np.float32), np.arange(n, dtype=np.int64) % classes


def test_constant_columns_warn_naming_them_with_their_feature_names() -> None:
    X, y = noise(features=9)
    X[:, [2, 5, 6, 7, 8]] = 3.0
    X[:, 8] = -0.0  # constant too
    [w] = warnings_for(X, y, names=[f"f{j}" for j in range(9)])
    assert w.startswith("constant features: 5 of 9 columns hold one value on every non-test row")
    assert "column 2 (f2), column 5 (f5), column 6 (f6), column 7 (f7), column 8 (f8)" in w
    assert "drop them" in w


def test_a_column_constant_outside_the_test_split_counts_as_constant() -> None:
    X, y = noise()
    splits = make_splits(y, test_size=0.2, folds=2, seed=0)
    X[:, 4] = 1.0
    X[splits.test, 4] = 7.0  # varies only across the sealed rows
    [w] = warnings_for(X, y)
    assert "1 of 6 columns" in w and "(column 4)" in w


def test_constant_pixels_of_images_are_normal() -> None:
    X, y = noise(features=16)
    X[:, :4] = 0.0  # a blank border
    ds = Dataset(X=X.reshape(-1, 1, 4, 4), y=y, classes=["0", "1", "2"], source="imgs.npz")
    assert check_splits(config(), ds, make_splits(y, test_size=0.2, folds=2, seed=0)) == []


def test_duplicate_columns_warn_naming_the_pairs() -> None:
    X, y = noise(features=8)
    X[:, 5] = X[:, 1]
    X[:, 7] = X[:, 1]
    X[:10, 3] = 0.0
    X[:, 6] = X[:, 3]
    X[:10, 6] = -0.0  # equal values
    splits = make_splits(y, test_size=0.2, folds=2, seed=0)
    X[:, 4] = X[:, 2]
    X[splits.trainval[-1], 4] += 1  # equal on all rows but one non-test row: not a copy
    [w] = about(warnings_for(X, y), "duplicate features")
    assert "3 columns repeat an earlier column on every non-test row" in w
    assert "(column 1 = column 5, column 3 = column 6, column 1 = column 7)" in w


def test_plain_digits_table_has_no_leak_nor_duplicate_only_its_blank_pixels() -> None:
    X, y = digits_table()
    [w] = warnings_for(X, y)  # no single pixel predicts the digit
    assert w.startswith("constant features: 4 of 64 columns")
    assert "column 0, column 24, column 32, column 39" in w


def test_a_copy_of_the_label_is_named_with_its_score() -> None:
    X, y = digits_table()
    X = np.c_[X[:, 1:24], y, X[:, 25:32]].astype(np.float32)  # no constant columns
    [w] = warnings_for(X, y, names=[f"pixel_{j}" for j in range(23)] + ["digit"] + ["p"] * 7)
    assert w.startswith("possible target leakage: column 23 (digit) (skill 1.000) alone predicts")
    assert f"limit {leakage.LEAK_SKILL:g}" in w and "drop it" in w


def test_a_noisy_continuous_leak_is_found_and_an_informative_feature_is_not() -> None:
    X, y = digits_table()
    rng = np.random.default_rng(0)
    informative = np.where(rng.random(len(y)) < 0.8, y, rng.integers(0, 10, len(y)))
    leak = y * 3.7 + rng.uniform(0, 2, len(y))  # a rescaled label with noise in its gaps
    X = np.c_[X[:, 1:24], informative, leak].astype(np.float32)
    [w] = about(warnings_for(X, y), "possible target leakage")
    assert w.startswith("possible target leakage: column 24 (skill 1.000) alone predicts")
    assert "column 23" not in w


def test_the_leak_check_never_reads_the_test_labels() -> None:
    X, y = noise(features=3)
    splits = make_splits(y, test_size=0.2, folds=2, seed=0)
    X[splits.test, 2] = y[splits.test]  # the label itself, but on the sealed rows only
    assert warnings_for(X, y) == []
    # a copy of the label on the non-test rows, unrelated to it on the test rows: a check
    # that read the test labels would see 20% of rows disagree, and a skill near 0.8
    X[:, 2] = y
    X[splits.test, 2] = np.random.default_rng(1).permutation(y[splits.test])
    [w] = warnings_for(X, y)
    assert "column 2 (skill 1.000)" in w


def test_only_the_first_columns_are_examined(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = noise(features=4)
    X[:, 3] = y
    assert "column 3" in warnings_for(X, y)[0]
    monkeypatch.setattr(leakage, "LEAK_MAX_FEATURES", 3)
    assert warnings_for(X, y) == []


def test_the_screen_keeps_every_feature_the_tree_would_flag() -> None:
    # noisy copies of the label, discrete and continuous, some classes rare
    rng = np.random.default_rng(1)
    for n, p in ((400, [0.5, 0.3, 0.15, 0.05]), (1500, [0.1] * 10), (900, [0.9, 0.1])):
        y = rng.choice(len(p), n, p=p)
        cols = []
        for flip in (0.0, 0.005, 0.01, 0.02, 0.1):
            noisy = np.where(rng.random(n) < flip, rng.integers(0, len(p), n), y)
            cols += [noisy, noisy * 2.0 + rng.uniform(0, 1.5, n), rng.normal(size=n)]
        X = np.array(cols, dtype=np.float32).T
        first = np.arange(n) % 2 == 0
        skills = np.array([leakage._tree_skill(X[:, [j]], y, first, len(p)) for j in range(X.shape[1])])
        kept = leakage._screen(X, y, len(p))
        assert (skills >= leakage.LEAK_SKILL).sum() >= 4  # the clean and 0.5% copies
        assert kept[skills >= leakage.LEAK_SKILL].all(), (skills, kept)
        assert not kept[2::3].any()  # pure noise is screened out


def test_float_labels_that_are_whole_numbers_are_read_as_integers_once(tmp_path: Path) -> None:
    X, y = digits_table()
    np.savez(tmp_path / "f.npz", X=X, y=y.astype(np.float64))
    np.savez(tmp_path / "i.npz", X=X, y=y)
    floats, ints = load_dataset("f.npz", base_dir=tmp_path), load_dataset("i.npz", base_dir=tmp_path)
    assert floats.classes == ints.classes == [str(c) for c in range(10)]
    assert floats.fingerprint() == ints.fingerprint()  # the study's splits stay the same
    assert ints.notes == ()
    [note] = floats.notes
    assert "f.npz: y holds floats that are whole numbers (0.0 ... 9.0)" in note
    assert "integer classes 0 ... 9" in note
    np.savez(tmp_path / "h.npz", X=X[:4], y=np.array([0.0, 1.0, 2.5, 1.0]))
    with pytest.raises(DataError, match=r"y\[2\] = 2.5 \(1 such labels\)"):
        load_dataset("h.npz", base_dir=tmp_path)


def test_csv_numeric_labels_sort_as_numbers_and_whole_floats_as_integers(tmp_path: Path) -> None:
    rows = [(0.5, 10.0, 10, 1.5, "b"), (1.5, 2.0, 2, 2.5, "a"), (2.5, 0.0, 0, 10.5, "c")] * 4
    (tmp_path / "d.csv").write_text(
        "x,whole,ints,halves,text\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )

    def load(target: str) -> Dataset:
        return load_dataset("d.csv", base_dir=tmp_path, target=target)

    whole = load("whole")
    assert whole.classes == ["0", "2", "10"] and whole.y[:3].tolist() == [2, 1, 0]
    [note] = whole.notes
    assert "column 'whole' holds floats that are whole numbers (0.0 ... 10.0)" in note
    ints = load("ints")
    assert ints.classes == ["0", "2", "10"] and ints.notes == ()
    halves = load("halves")  # names as written, in numeric order, nothing to say
    assert halves.classes == ["1.5", "2.5", "10.5"] and halves.notes == ()
    assert load("text").classes == ["a", "b", "c"]
