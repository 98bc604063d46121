"""`tune` on the regression example, as a user would run it: a subprocess, what it
prints, `tune report --json` and `tune best`; and a bad regression key's one-line error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}


def _tune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUNE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_the_regression_example_tunes_refits_and_reports(tmp_path):
    shutil.copy(REPO / "examples" / "diabetes.yaml", tmp_path)
    out = _tune("diabetes.yaml", "--n-trials", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "held-out test (89 samples" in text and "rmse" in text
    assert "test metrics: rmse" in text and "r2" in text and "largest errors" in text
    assert "Traceback" not in out.stderr
    report = _tune("report", "diabetes.yaml", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["metric"] == "rmse" and data["direction"] == "minimize"
    assert set(data["test"]["metrics"]) == {"rmse", "mae", "r2", "mape"}
    assert 30 < data["test"]["score"] < 120  # the target's units (sd 77), not standardized
    best = _tune("best", "diabetes.yaml", cwd=tmp_path)
    assert best.returncode == 0 and "loss:" in best.stdout
    html = _tune("report", "diabetes.yaml", "--html", "r.html", cwd=tmp_path)
    page = (tmp_path / "r.html").read_text()
    assert html.returncode == 0 and "rmse" in page and "largest error" in page


def test_a_classification_metric_under_regression_is_one_clear_line(tmp_path):
    doc = yaml.safe_load((REPO / "examples" / "diabetes.yaml").read_text())
    doc["objective"]["metric"] = "accuracy"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    out = _tune("bad.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert "objective.metric accuracy is a classification metric" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list(tmp_path.glob("*.db"))  # nothing written for a config that fails its checks
