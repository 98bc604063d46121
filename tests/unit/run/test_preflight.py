"""Pre-flight checks: one test per blocking error and per warning, each asserting that the
message names the evidence (which class, how many, which rows, what ratio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from objectives.dataset import Dataset
from objectives.splits import make_splits
from tests.conftest import tiny_study
from tuner.config import validate_config
from tuner.errors import DataError
from tuner.run.preflight import check_dataset, check_splits, log_warnings


def config(**over: Any) -> Any:
    return validate_config(tiny_study(**over), base_dir=Path("."), source="study.yaml")


def table(n: int = 120, classes: int = 3, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % classes
    return Dataset(X=X, y=y, classes=[str(c) for c in range(classes)], source="data.npz")


def test_clean_data_passes_without_warnings() -> None:
    ds = table()
    cfg = config()
    splits = make_splits(ds.y, test_size=0.2, folds=2, seed=0)
    assert check_dataset(cfg, ds) == [] and check_splits(cfg, ds, splits) == []


def test_nan_or_inf_features_block_naming_the_rows() -> None:
    ds = table()
    ds.X[7, 2] = np.nan
    ds.X[9, 0] = np.inf
    with pytest.raises(DataError, match=r"2 NaN/inf feature values in 2 samples \(first rows: \[7, 9\]\)"):
        check_dataset(config(), ds)


def test_labels_outside_0_to_c_minus_1_block() -> None:
    ds = table()
    ds.y[4] = 5  # three classes declared
    with pytest.raises(DataError, match=r"labels must be integers 0..2.*y\[4\] = 5 \(1 such labels\)"):
        check_dataset(config(), ds)


def test_empty_class_blocks_with_the_counts() -> None:
    ds = table()
    ds.y[ds.y == 1] = 0
    with pytest.raises(DataError, match=r"class 1 has no samples \(counts: \[80, 0, 40\]\)"):
        check_dataset(config(), ds)


def test_cnn_on_a_table_blocks() -> None:
    with pytest.raises(DataError, match="a table of 6 features: use model.family: mlp"):
        check_dataset(config(**{"model.family": "cnn"}), table())


def test_class_too_small_for_the_folds_names_class_and_count() -> None:
    y = np.array([0] * 40 + [1] * 40 + [2] * 4)
    with pytest.raises(
        DataError, match=r"class 2 has 3 samples outside the test split, fewer than data.folds=5"
    ):
        make_splits(y, test_size=0.2, folds=5, seed=0)


def _with_duplicates(n_dup: int) -> tuple[Dataset, Any]:
    ds = table(200)
    splits = make_splits(ds.y, test_size=0.2, folds=2, seed=0)
    for t, o in zip(splits.test[:n_dup], splits.trainval[:n_dup], strict=True):
        ds.X[t] = ds.X[o]
    return ds, splits


def test_a_few_test_duplicates_warn_with_count_and_indices() -> None:
    ds, splits = _with_duplicates(2)  # 2 of 40 test rows: 5%, at the default limit
    warnings = check_splits(config(), ds, splits)
    assert len(warnings) == 1
    pair = f"{splits.test[0]}~{splits.trainval[0]}"
    assert "2 of 40 test samples (5.0%)" in warnings[0] and pair in warnings[0]


def test_many_test_duplicates_block_above_the_users_threshold() -> None:
    ds, splits = _with_duplicates(6)
    with pytest.raises(DataError, match=r"leakage: 6 of 40 test samples \(15.0%\).*max_test_duplicates=0.05"):
        check_splits(config(), ds, splits)
    # the user can raise the limit when the duplicates are genuine
    assert len(check_splits(config(**{"data.max_test_duplicates": 0.2}), ds, splits)) == 1


def test_imbalance_warns_with_the_ratio_and_suggests_a_balanced_metric() -> None:
    ds = table(130, classes=2)
    ds.y[:] = 0
    ds.y[:10] = 1  # 120 vs 10
    [w] = check_dataset(config(**{"objective.metric": "accuracy"}), ds)
    assert "class 0 has 120 samples and class 1 10, a ratio of 12.0" in w
    assert "balanced_accuracy" in w and "class_weight" in w
    [w] = check_dataset(config(), ds)  # balanced_accuracy already
    assert "ratio of 12.0" in w and "accounts for it" in w


def test_unnormalized_features_warn_and_say_whether_normalization_is_on() -> None:
    ds = table()
    ds.X[:, 3] = ds.X[:, 3] * 500 + 2000
    [on] = check_dataset(config(), ds)
    assert "feature 3 has mean 19" in on and "std 52" in on and "data.normalize is on" in on
    [off] = check_dataset(config(**{"data.normalize": False}), ds)
    assert "exploding gradients" in off and "data.normalize is OFF" in off


def test_warnings_go_to_the_parent_run() -> None:
    logged: dict[str, Any] = {}

    class Client:
        def log_text(self, run_id: str, text: str, name: str) -> None:
            logged[name] = (run_id, text)

        def set_tag(self, run_id: str, key: str, value: str) -> None:
            logged[key] = value

    class Tracker:
        parent_id = "p1"
        client = Client()

    log_warnings(Tracker(), ["first problem", "second problem"])
    assert logged["preflight_warnings.txt"] == ("p1", "first problem\n\nsecond problem\n")
    assert logged["tuner.preflight_warnings"] == "2: first problem | second problem"


def test_non_integer_labels_block_naming_the_first_one(tmp_path: Path) -> None:
    from objectives.data import load_dataset

    y = np.array([0, 1, 0.5, 1, 2.5] * 4)
    np.savez(tmp_path / "d.npz", X=np.zeros((20, 3), np.float32), y=y)
    with pytest.raises(
        DataError, match=r"labels must be integers 0..C-1, but y\[2\] = 0.5 \(8 such labels\)"
    ):
        load_dataset("d.npz", base_dir=tmp_path)
