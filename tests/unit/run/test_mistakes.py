"""Picking the refit's most confident mistakes and per-class recall from constructed
probabilities, and what the scoring record keeps of them."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from tuner.run.mistakes import (
    MAX_CLASSES_RECORDED,
    N_LOWEST_RECORDED,
    N_RECORDED,
    find_mistakes,
    mistakes_csv,
    most_confident_wrong,
    per_class_recall,
)

# six samples, three classes; rows 1, 3, 4 and 5 are wrong (argmax != label)
Y = np.array([0, 1, 2, 0, 1, 2])
P = np.array(
    [
        [0.90, 0.05, 0.05],  # right, and the most confident of all: never a mistake
        [0.60, 0.30, 0.10],  # wrong, p=0.60
        [0.10, 0.10, 0.80],  # right
        [0.05, 0.15, 0.80],  # wrong, p=0.80
        [0.10, 0.30, 0.60],  # wrong, p=0.60 (ties row 1: the earlier position first)
        [0.20, 0.70, 0.10],  # wrong, p=0.70
    ]
)


def test_most_confident_wrong_ranks_only_the_mistakes_by_confidence() -> None:
    assert most_confident_wrong(Y, P, 10).tolist() == [3, 5, 1, 4]
    assert most_confident_wrong(Y, P, 2).tolist() == [3, 5]
    assert most_confident_wrong(P.argmax(axis=1), P, 10).tolist() == []  # all right: none


def test_a_non_finite_row_ranks_last() -> None:
    p = P.copy()
    p[1] = [np.nan, 0.0, 0.0]  # argmax of a NaN row is the NaN: class 0, a mistake
    assert most_confident_wrong(Y, p, 10).tolist() == [3, 5, 4, 1]


def test_per_class_recall_and_support_with_an_absent_class() -> None:
    recall = per_class_recall(Y, P.argmax(axis=1), ["a", "b", "c", "d"])
    assert list(recall) == ["a", "b", "c", "d"]
    assert recall["a"] == {"recall": 0.5, "support": 2}  # row 0 right, row 3 wrong
    assert recall["b"] == {"recall": 0.0, "support": 2}
    assert recall["c"] == {"recall": 0.5, "support": 2}
    assert recall["d"] == {"recall": None, "support": 0}  # no test sample: undefined, not 0


def test_find_mistakes_reports_dataset_rows_and_a_small_record() -> None:
    rows = np.array([10, 11, 12, 13, 14, 15]) * 7  # the test split's rows in the dataset
    m = find_mistakes(["a", "b", "c"], rows, Y, P)
    assert m.n_wrong == 4 and m.n_test == 6
    listing = m.listing()
    assert [x["row"] for x in listing] == [91, 105, 77, 98]
    assert listing[0] == {"row": 91, "true": "a", "predicted": "c", "confidence": 0.8, "p_true": 0.05}
    assert all(x["true"] != x["predicted"] for x in listing)
    record = m.record()
    assert record["mistakes"]["count"] == 4
    assert len(record["mistakes"]["most_confident"]) == min(N_RECORDED, 4)
    assert set(record["mistakes"]["most_confident"][0]) == {"row", "true", "predicted", "confidence"}
    assert record["n_classes"] == 3 and list(record["per_class_recall"]) == ["a", "b", "c"]
    json.dumps(record, allow_nan=False)  # it lives in the study's user attrs, as JSON


def test_the_record_keeps_the_lowest_recalls_of_many_classes() -> None:
    n = MAX_CLASSES_RECORDED + 10
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n), 4)
    p = np.eye(n)[y] + rng.uniform(0, 0.1, size=(len(y), n))
    worst = [3, 17, 42]  # three samples each of these classes predicted as class 0
    for c in worst:
        p[np.flatnonzero(y == c)[:3], 0] = 5.0
    record = find_mistakes([f"c{i}" for i in range(n)], np.arange(len(y)), y, p).record()
    kept = record["per_class_recall"]
    assert record["n_classes"] == n and len(kept) == N_LOWEST_RECORDED
    assert {"c3", "c17", "c42"} <= set(kept) and kept["c17"] == {"recall": 0.25, "support": 4}
    assert record["mistakes"]["count"] == 9


def test_mistakes_csv_columns_rows_and_features() -> None:
    X = np.arange(6 * 2, dtype=np.float32).reshape(6, 2) / 4
    m = find_mistakes(["a", "b", "c"], np.arange(6), Y, P)
    rows = list(csv.reader(io.StringIO(mistakes_csv(m, X, ["width", "height"]))))
    assert rows[0] == ["row", "true", "predicted", "confidence", "p_true", "width", "height"]
    assert [r[0] for r in rows[1:]] == ["3", "5", "1", "4"]
    assert rows[1] == ["3", "a", "c", "0.8", "0.05", "1.5", "1.75"]  # X[3] = [6, 7] / 4
    no_names = list(csv.reader(io.StringIO(mistakes_csv(m, X, []))))
    assert no_names[0][5:] == ["f0", "f1"]


def test_the_image_grid_has_a_tile_per_mistake() -> None:
    from tuner.views.plots import figure_png, mistakes_figure

    rng = np.random.default_rng(0)
    for channels in (1, 3):
        images = rng.normal(size=(7, channels, 8, 8)).astype(np.float32)
        fig = mistakes_figure(images, [f"tile {i}" for i in range(7)])
        assert [ax.get_title() for ax in fig.axes] == [f"tile {i}" for i in range(7)]
        shown = fig.axes[0].get_images()[0].get_array()
        assert shown.shape == ((8, 8) if channels == 1 else (8, 8, 3))
        assert float(shown.min()) == 0.0 and float(shown.max()) == 1.0  # min-max per image
        assert figure_png(fig).startswith(b"\x89PNG")
