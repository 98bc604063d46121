"""What the refit got wrong, from real tiny studies with MLflow on: the most confident
mistakes on the refit's run (a CSV of the rows for a table, an image grid for images),
and per-class recall and the top mistakes in `tune report`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.views.report import render, summarize

QUICK = {"search_space": {"lr": 3e-4, "width": 8}, "budget.n_trials": 1, "training.max_epochs": 1}


def _study(tmp_path: Path, **over: Any) -> tuple[Any, dict[str, Any], str, MlflowClient]:
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(tiny_study(**{**QUICK, **over})))
    config = load_config(tmp_path / "study.yaml")
    run_study(config, say=lambda _: None, live=False)  # refit on: the test split is scored
    summary = summarize(config, optuna.load_study(study_name=config.name, storage=config.storage_url))
    client = MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name(config.experiment_name)
    (refit,) = [
        r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("tuner.role") == "refit"
    ]
    return config, summary, refit.info.run_id, client


def test_a_table_gets_its_mistakes_as_rows_and_the_report_per_class_recall(tmp_path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True)
    rows = np.random.default_rng(0).permutation(len(d.target))[:200]
    frame = d.data.iloc[rows].reset_index(drop=True)
    frame["diagnosis"] = np.array(["malignant", "benign"])[d.target.to_numpy()[rows]]
    frame.to_csv(tmp_path / "data.csv", index=False)
    config, summary, run_id, client = _study(
        tmp_path, **{"data.source": "data.csv", "data.target": "diagnosis"}
    )

    test = summary["test"]
    assert test["mistakes"]["count"] > 0, "the premise: a one-epoch model makes mistakes"
    arts = {a.path for a in client.list_artifacts(run_id, "errors")}
    assert arts == {"errors/most_confident_mistakes.csv", "errors/most_confident_mistakes.json"}
    with open(client.download_artifacts(run_id, "errors/most_confident_mistakes.csv", str(tmp_path))) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["row", "true", "predicted", "confidence", "p_true", *d.feature_names]
    assert len(table) == min(25, test["mistakes"]["count"])
    confidence = [float(r["confidence"]) for r in table]
    assert confidence == sorted(confidence, reverse=True)
    source = pd.read_csv(tmp_path / "data.csv")
    for r in table:
        assert r["true"] != r["predicted"]
        row = source.iloc[int(r["row"])]  # the dataset row is the CSV's data row
        assert r["true"] == row["diagnosis"]
        assert np.allclose(
            [float(r[k]) for k in d.feature_names], row[d.feature_names].astype(float), rtol=1e-5
        )
    # the report: per-class recall (as the classification report has it) and the top mistakes
    report = json.loads(
        Path(client.download_artifacts(run_id, "classification_report.json", str(tmp_path))).read_text()
    )
    for name in ("benign", "malignant"):
        assert test["per_class_recall"][name]["recall"] == round(report[name]["recall"], 4)
        assert test["per_class_recall"][name]["support"] == report[name]["support"]
    text = render(summary)
    assert "per-class recall: benign " in text and ", malignant " in text
    top = test["mistakes"]["most_confident"][0]
    assert top["row"] == int(table[0]["row"])
    assert f"    row {top['row']}: true {top['true']}, predicted {top['predicted']}" in text


def test_images_get_a_grid_of_their_most_confident_mistakes(tmp_path: Path) -> None:
    config, summary, run_id, client = _study(tmp_path)  # sklearn:digits, (N, 1, 8, 8)
    assert summary["test"]["mistakes"]["count"] > 0
    arts = {a.path for a in client.list_artifacts(run_id, "errors")}
    assert arts == {"errors/most_confident_mistakes.png", "errors/most_confident_mistakes.json"}
    png = Path(client.download_artifacts(run_id, "errors/most_confident_mistakes.png", str(tmp_path)))
    assert png.read_bytes().startswith(b"\x89PNG")
    listing = json.loads(
        Path(
            client.download_artifacts(run_id, "errors/most_confident_mistakes.json", str(tmp_path))
        ).read_text()
    )
    assert listing["n_wrong"] == summary["test"]["mistakes"]["count"] and len(listing["mistakes"]) == 25
    assert client.get_run(run_id).data.tags["tuner.test_mistakes"] == f"{listing['n_wrong']} of 360"
    assert "most confident of the" in render(summary)


def test_no_mistakes_logs_no_empty_files(tmp_path: Path) -> None:
    from tuner.run.mistakes import find_mistakes, log_mistakes

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    warnings: list[str] = []
    tracker = SimpleNamespace(client=client, warn=warnings.append)
    y = np.array([0, 1, 1, 0])
    mistakes = find_mistakes(["a", "b"], np.arange(4), y, np.eye(2)[y])
    dataset = SimpleNamespace(is_image=False, X=np.zeros((4, 3), np.float32), feature_names=[])
    assert log_mistakes(tracker, run_id, mistakes, dataset) == []
    assert client.list_artifacts(run_id) == [] and warnings == []
    assert client.get_run(run_id).data.tags["tuner.test_mistakes"] == "0 of 4"
