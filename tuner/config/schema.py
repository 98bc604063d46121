"""The study file: a frozen, fully validated pydantic model.

Everything is checked at load time, before any data is read, any storage is
created or any device is claimed. Errors name the file, the key path, the bad
value and the fix, e.g. ``data.folds must be >= 2, got 1 (in digits.yaml)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from search_spaces import SearchSpace, preset_names, preset_path
from tuner.config.document import MAX_FILE_BYTES, safe_load
from tuner.config.sections import (
    BudgetConfig,
    DataConfig,
    DivergenceConfig,
    FoldPruningConfig,
    ModelConfig,
    ObjectiveConfig,
    PrunerConfig,
    SamplerConfig,
    TrainingConfig,
    _Strict,
)
from tuner.config.tracking import MlflowConfig

__all__ = ["StudyConfig"]


class StudyConfig(_Strict):
    # Declared first: search_space resolves relative files against base_dir.
    # Where relative paths (data, sqlite files) are resolved; set by load_config.
    base_dir: Path = Field(default=Path("."), exclude=True)
    source_file: str = Field(default="<memory>", exclude=True)

    name: str = Field(min_length=1, max_length=100)
    seed: int = Field(default=0, ge=0, lt=2**32)
    task: Literal["classification", "regression"] = "classification"
    objective: ObjectiveConfig = ObjectiveConfig()
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    search_space: SearchSpace
    budget: BudgetConfig = BudgetConfig()
    sampler: SamplerConfig = SamplerConfig()
    # SuccessiveHalving + fold pruning: the cheapest setting measured for its score (docs/benchmarks.md#pruning)
    pruner: PrunerConfig | None = PrunerConfig.model_validate({"name": "SuccessiveHalvingPruner"})
    fold_pruning: FoldPruningConfig = FoldPruningConfig()
    divergence: DivergenceConfig = DivergenceConfig()
    storage: str | None = Field(default=None, description="default: sqlite:///<name>.db beside")
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, v: Any) -> Any:
        """A regression study's metric defaults to rmse, not to a classification metric."""
        if isinstance(v, Mapping) and v.get("task") == "regression":
            objective = v.get("objective")
            if objective is None or (isinstance(objective, Mapping) and "metric" not in objective):
                return {**v, "objective": {**(objective or {}), "metric": "rmse"}}
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # It names the storage file, the MLflow experiment and the study row.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", v):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
            )
        return v

    @field_validator("storage")
    @classmethod
    def _storage_scheme(cls, v: str | None) -> str | None:
        if v is not None:
            from tuner.storage.urls import check_scheme

            check_scheme(v)
        return v

    @field_validator("search_space", mode="before")
    @classmethod
    def _space(cls, v: Any, info: Any) -> Any:
        if isinstance(v, str):
            base = (info.data or {}).get("base_dir") or Path(".")
            return _read_space(v, Path(base))
        if not isinstance(v, Mapping):
            raise ValueError(
                "search_space must be a preset name "
                f"({', '.join(preset_names())}), a .yaml file or an inline mapping"
            )
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> StudyConfig:
        from search_spaces.params import check_params, early_stopping_params
        from tuner.config.checks import check_extensions, check_task

        problem = check_task(self.task, self.objective, self.data, self.training, self.search_space)
        if problem:
            raise ValueError(problem)

        handled, problems = check_extensions(
            self.search_space, self.data, self.model, self.objective, self.base_dir
        )
        problems = problems or check_params(self.search_space, self.model.family, handled)
        if problems:
            raise ValueError(problems)
        searched = early_stopping_params(self.search_space.names)
        off = self.training.early_stopping is None and "early_stopping" in self.training.model_fields_set
        if searched and off:  # written `early_stopping: false`, yet searched
            raise ValueError(
                f"search_space.{searched[0]} searches early stopping, but training.early_stopping "
                "is false; remove one of them"
            )
        fold_ok = self.fold_pruning.min_folds < self.data.folds
        if self.fold_pruning.enabled and not fold_ok:
            raise ValueError(
                f"fold_pruning.min_folds ({self.fold_pruning.min_folds}) must be below "
                f"data.folds ({self.data.folds}), or set fold_pruning.enabled: false"
            )
        return self

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return self.objective.direction

    def resolve_path(self, value: str) -> Path:
        """``value`` as a path, relative to the study file's folder."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def storage_url(self) -> str:
        """The storage URL to use, with relative sqlite/journal paths resolved."""
        from tuner.storage.urls import resolve_url

        url = self.storage or f"sqlite:///{self.name}.db"  # the embedded default, beside the study file
        return resolve_url(url, self.base_dir)

    @property
    def tracking_uri(self) -> str:
        from tuner.storage.urls import resolve_url

        return resolve_url(self.mlflow.tracking_uri or "sqlite:///mlflow.db", self.base_dir)

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.name


def _read_space(ref: str, base: Path) -> dict[str, Any]:
    path = preset_path(ref)
    if path is None:
        candidate = Path(os.path.expanduser(ref))
        candidate = candidate if candidate.is_absolute() else base / candidate
        if ref.endswith((".yaml", ".yml")) and candidate.is_file():
            path = candidate
        else:
            raise ValueError(
                f"unknown search space {ref!r}: use a preset ({', '.join(preset_names())}), "
                "a path to a .yaml file, or an inline mapping of parameters"
            )
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(
            f"{path} is over {MAX_FILE_BYTES // 10**6} MB: a search space file holds parameter specs only"
        )
    data = safe_load(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a mapping of parameter specs")
    return dict(data)
