"""A study's settings as the MLflow params of its parent run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuner.storage.urls import scheme

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["study_params"]


def study_params(config: StudyConfig) -> dict[str, Any]:
    """The study's settings for MLflow: everything but URLs (they may hold secrets)."""
    out: dict[str, Any] = {
        "seed": config.seed,
        "metric": config.objective.metric,
        "data.source": config.data.source,
        "data.test_size": config.data.test_size,
        "data.folds": config.data.folds,
        "data.normalize": config.data.normalize,
        "model.family": config.model.family if not config.model.factory else "factory",
        "model.factory": config.model.factory or "",
        "objective.function": config.objective.function or "",
        "data.image_size": config.data.image_size,
        "budget.n_trials": config.budget.n_trials,
        "sampler": config.sampler.name,
        "pruner": config.pruner.name if config.pruner else "none",
        "fold_pruning": config.fold_pruning.enabled,
        "divergence_guard": config.divergence.enabled,
        "storage.kind": scheme(config.storage_url),
    }
    for k, v in config.training.model_dump().items():
        out[f"training.{k}"] = v
    for k, v in config.sampler.args.items():
        out[f"sampler.{k}"] = v
    for k, v in (config.pruner.args if config.pruner else {}).items():
        out[f"pruner.{k}"] = v
    return out
