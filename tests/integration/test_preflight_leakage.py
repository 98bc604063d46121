"""A real tiny study on digits as a table with a copy of the label and a constant column
appended, and float labels: the pre-flight names the leaked and the constant column,
and says once that the float labels were read as integer classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study


def test_study_names_the_leaked_and_the_constant_column(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    rows = np.random.default_rng(0).permutation(len(d.target))[:600]
    X, y = d.data[rows], d.target[rows]
    X = np.c_[X, y, np.full(len(y), 5.0)].astype(np.float32)  # column 64 = label, 65 constant
    np.savez(tmp_path / "data.npz", X=X, y=y.astype(np.float64))
    doc = tiny_study(
        **{
            "data.source": "data.npz",
            "search_space": {"lr": 3e-3, "width": 16},
            "budget.n_trials": 1,
            "training.max_epochs": 1,
            "mlflow.enabled": False,
        }
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    said: list[str] = []
    run_study(load_config(tmp_path / "study.yaml"), refit=False, say=said.append, live=False)

    [leak] = [s for s in said if s.startswith("pre-flight warning: possible target leakage")]
    assert "column 64 (skill 1.000) alone predicts the label" in leak and "drop it" in leak
    [constant] = [s for s in said if s.startswith("pre-flight warning: constant features")]
    assert "column 65" in constant
    assert not any("duplicate features" in s for s in said)
    notes = [s for s in said if s.startswith("pre-flight note:")]
    assert len(notes) == 1 and "floats that are whole numbers (0.0 ... 9.0)" in notes[0], said
