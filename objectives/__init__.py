"""What is trained: datasets and splits, model families, the training loop, the
divergence guard, early stopping, plug-ins and the cross-validated objective.

May import ``tuner.config`` (the study's settings, plug-in loading), ``search_spaces``,
``tuner.errors`` and ``tuner.secrets``. Never storage, MLflow, tracking or the views:
the objective receives what it needs and returns a score or raises ``TrialPruned``."""

from __future__ import annotations

__all__ = [
    "CrossValidatedObjective",
    "Dataset",
    "DivergenceGuard",
    "Diverged",
    "Splits",
    "load_dataset",
    "make_splits",
]


def __getattr__(name: str):  # lazy: keep torch off import paths that do not train
    if name in ("CrossValidatedObjective",):
        from objectives.cv import CrossValidatedObjective

        return CrossValidatedObjective
    if name == "Dataset":
        from objectives.dataset import Dataset

        return Dataset
    if name == "load_dataset":
        from objectives.data import load_dataset

        return load_dataset
    if name in ("DivergenceGuard", "Diverged"):
        import objectives.guard as g

        return getattr(g, name)
    if name in ("Splits", "make_splits"):
        import objectives.splits as s

        return getattr(s, name)
    raise AttributeError(name)
