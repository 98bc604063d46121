"""A real tiny study on a 90/10 table searching ``sampling`` (issue 16): every trial's
folds and the refit train on resampled rows, validation folds keep the data's balance.

What the training loop trained on is observed by a spy around ``objectives.training.fit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study


def test_a_study_searching_sampling_resamples_training_rows_only(tmp_path: Path, monkeypatch) -> None:
    import objectives.training

    rng = np.random.default_rng(0)
    y = np.array([0] * 180 + [1] * 20, dtype=np.int64)[rng.permutation(200)]
    X = (rng.normal(size=(200, 6)) + y[:, None]).astype(np.float32)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    space = {"lr": 0.01, "width": 8, "sampling": {"categorical": ["none", "oversample", "undersample"]}}
    doc = tiny_study(
        **{"data.source": "data.npz", "search_space": space, "mlflow.enabled": False, "budget.n_trials": 3}
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))

    seen: list[dict[str, Any]] = []
    real_fit = objectives.training.fit

    def spy(model: Any, hp: Any, X: torch.Tensor, y: torch.Tensor, **kw: Any) -> Any:
        y_val = kw.get("y_val")
        seen.append(
            {
                "fold": kw["fold"],
                "sampling": hp.sampling,
                "train": torch.bincount(y, minlength=2).tolist(),
                "val": None if y_val is None else torch.bincount(y_val, minlength=2).tolist(),
            }
        )
        return real_fit(model, hp, X, y, **kw)

    monkeypatch.setattr(objectives.training, "fit", spy)
    cfg = load_config(tmp_path / "study.yaml")
    run_study(cfg, refit=True, say=lambda _: None, live=False)

    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    trials = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    drawn = [t.params["sampling"] for t in trials]
    assert len(trials) == 3 and {"oversample", "undersample"} & set(drawn), drawn
    folds = [s for s in seen if s["fold"] >= 0]
    assert [s["sampling"] for s in folds] == [m for m in drawn for _ in range(2)]  # 2 folds a trial

    # what each fold trained on, from the natural counts of its training rows (the "none" trials'
    # or, failing one, the trainval rows minus the validation fold)
    trainval = [a + b for a, b in zip(folds[0]["val"], folds[1]["val"], strict=True)]
    natural = {k: [t - v for t, v in zip(trainval, folds[k]["val"], strict=True)] for k in (0, 1)}
    for s in folds:
        k = s["fold"]
        expected = {
            "none": natural[k],
            "oversample": [max(natural[k])] * 2,
            "undersample": [min(natural[k])] * 2,
        }[s["sampling"]]
        assert s["train"] == expected, s
        assert s["val"] == folds[k]["val"]  # every trial validates on the same, untouched rows
    assert min(trainval) * 5 < max(trainval)  # validation kept the data's imbalance

    (refit,) = [s for s in seen if s["fold"] == -1]
    best = study.best_trial.params["sampling"]
    assert refit["sampling"] == best and refit["val"] is None
    assert (
        refit["train"]
        == {"none": trainval, "oversample": [max(trainval)] * 2, "undersample": [min(trainval)] * 2}[best]
    )
