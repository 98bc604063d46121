"""What is trained: datasets and splits, model families, the training loop, the
divergence guard and the cross-validated objective."""

from __future__ import annotations

__all__ = [
    "CrossValidatedObjective",
    "Dataset",
    "DivergenceGuard",
    "Diverged",
    "HParams",
    "Splits",
    "load_dataset",
    "make_splits",
]


def __getattr__(name: str):  # lazy: keep torch off import paths that do not train
    if name in ("CrossValidatedObjective",):
        from objectives.cv import CrossValidatedObjective

        return CrossValidatedObjective
    if name in ("Dataset", "load_dataset"):
        import objectives.data as d

        return getattr(d, name)
    if name in ("DivergenceGuard", "Diverged"):
        import objectives.guard as g

        return getattr(g, name)
    if name == "HParams":
        from objectives.params import HParams

        return HParams
    if name in ("Splits", "make_splits"):
        import objectives.splits as s

        return getattr(s, name)
    raise AttributeError(name)
