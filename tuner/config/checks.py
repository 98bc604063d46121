"""Load-time checks for image data, augmentation, resnet18 and plug-ins.

Called by ``StudyConfig``'s cross-field validator before any data is read. Returns
the search-space names it vouches for (``augment.*``, ``early_stopping.*``, and with a plug-in the names
only the plug-in reads) and the first problem as a message naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces import SearchSpace
from search_spaces.params import (
    KNOWN_PARAMS,
    augment_params,
    check_augment,
    check_early_stopping,
    early_stopping_params,
)
from tuner.config.plugins import load_callable
from tuner.config.sections import DataConfig, ModelConfig, ObjectiveConfig

__all__ = ["NOT_FOR_RESNET", "check_extensions"]

# Parameters the mlp/cnn builders read but resnet18's fixed architecture does not.
NOT_FOR_RESNET = ("batchnorm", "width", "depth", "activation")


def _values(spec: Any) -> list[Any]:
    rng = spec.float_ if spec.float_ is not None else spec.int_
    return list(rng) if rng is not None else list(spec.choices() or ())


def check_extensions(
    space: SearchSpace, data: DataConfig, model: ModelConfig, objective: ObjectiveConfig, base_dir: Path
) -> tuple[set[str], str | None]:
    """``(handled names, problem or None)`` for a study's sections (``StudyConfig``'s
    cross-field validator passes its own; ``base_dir`` is where plug-ins are found)."""
    names = space.names
    handled: set[str] = set()
    image = data.is_image
    family = model.family
    plugin_model = model.factory
    plugin_objective = objective.function

    for name in augment_params(names):
        handled.add(name)
        problem = check_augment(name, _values(space.params[name]))
        if problem:
            return handled, problem
        if image is False:
            return handled, (
                f"search_space.{name} augments images, but data.source {data.source} is a "
                "table; remove the augment.* parameters"
            )
    for name in early_stopping_params(names):
        handled.add(name)
        problem = check_early_stopping(name, _values(space.params[name]))
        if problem:
            return handled, problem
    if family in ("cnn", "resnet18") and not plugin_model and image is False:
        return handled, (
            f"model.family {family} needs images, but data.source {data.source} is a "
            "table: use model.family: mlp"
        )
    if family == "resnet18" and not plugin_model and not plugin_objective:
        for name in NOT_FOR_RESNET:
            if name in names:
                return handled, (
                    f"search_space.{name} does not apply to model.family resnet18: its "
                    "architecture is torchvision's (batch norm after every convolution, fixed "
                    f"width, depth and ReLU), so searching {name} would do nothing; remove it "
                    "(dropout, lr, weight_decay, optimizer, ... and augment.* apply)"
                )
    if plugin_objective:
        if plugin_model or "family" in model.model_fields_set:
            return handled, (
                "objective.function builds and trains its own model, so model.family / "
                "model.factory would be ignored; remove the model section"
            )
    if plugin_model or plugin_objective:
        # the plug-in receives every parameter; tuner cannot know which ones it reads
        handled.update(n for n in names if n not in KNOWN_PARAMS)
        for key, ref in (("model.factory", plugin_model), ("objective.function", plugin_objective)):
            if ref:
                try:
                    load_callable(ref, base_dir, key)
                except ValueError as e:
                    return handled, str(e)
    return handled, None


# Parameters that only mean something for one task: searching them under the other would do nothing.
CLASSIFICATION_ONLY = ("class_weight", "sampling", "label_smoothing")
REGRESSION_ONLY = ("loss",)


def check_task(task: str, objective: Any, data: Any, training: Any, space: SearchSpace) -> str | None:
    """The first key that does not fit ``task`` (classification or regression), as a
    message naming the key and the fix; None when every key fits."""
    from tuner.config.sections import CLASSIFICATION_METRICS, REGRESSION_METRICS

    metric = objective.metric
    if task == "classification":
        if metric in REGRESSION_METRICS:
            return (
                f"objective.metric {metric} needs task: regression (add it to the study file), "
                f"or choose a classification metric: {', '.join(CLASSIFICATION_METRICS)}"
            )
        if data.source == "sklearn:diabetes":
            return "data.source sklearn:diabetes is a regression dataset: add task: regression"
        for key, value in (
            ("data.target_transform", data.target_transform),
            ("training.loss", training.loss),
        ):
            if value is not None:
                return f"{key} applies to task: regression only; remove it or add task: regression"
        if data.split not in (None, "stratified"):
            return (
                f"data.split {data.split} applies to task: regression; classification splits are "
                "always stratified by class: remove data.split"
            )
        for name in REGRESSION_ONLY:
            if name in space.names:
                return (
                    f"search_space.{name} chooses a regression loss; classification trains on "
                    "cross-entropy: remove it, or add task: regression"
                )
        return None
    if data.source.startswith(("imagefolder:", "torchvision:")):
        return (
            f"data.source {data.source} labels images by class (folder or dataset classes); "
            "task: regression needs a numeric target: a .csv (data.target) or a .npz (X, y float)"
        )
    if metric in CLASSIFICATION_METRICS:
        return (
            f"objective.metric {metric} is a classification metric; with task: regression use "
            f"{', '.join(REGRESSION_METRICS)} (rmse is the default)"
        )
    if data.split == "stratified":
        return (
            "data.split stratified stratifies by class; for task: regression use kfold (the "
            "default) or quantile (stratified on quantile bins of the target)"
        )
    for name in CLASSIFICATION_ONLY:
        if name in space.names:
            return (
                f"search_space.{name} only applies to classification (it acts per class); "
                "remove it for task: regression"
            )
    return None
