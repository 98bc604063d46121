"""`tune` on data that fails a blocking pre-flight check: exit status 2, a message with the
evidence and the fix, and nothing created (no study storage, no MLflow store)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from tests.conftest import tiny_study

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}


def test_leaky_duplicates_exit_2_with_evidence_and_create_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4)).astype(np.float32)
    X[50:] = X[:50]  # every sample twice: the test split is full of copies of training rows
    y = np.tile(np.arange(2), 50)
    y[50:] = y[:50]
    np.savez(tmp_path / "data.npz", X=X, y=y)
    doc = tiny_study(**{"data.source": "data.npz"})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    out = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "study.yaml"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    err = out.stderr
    assert err.startswith("tune: error: leakage:") and "Traceback" not in err
    assert "of 20 test samples" in err and "max_test_duplicates=0.05" in err and "~" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "study.yaml"]
