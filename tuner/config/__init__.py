"""The study file: read it safely (``document``), validate it into a frozen
``StudyConfig`` (``schema``, ``sections``, ``checks``, ``registry``, ``plugins``) and
explain what is wrong in one paragraph (``explain``), all before anything runs.

May import ``search_spaces``, ``tuner.storage`` (URL checks), ``tuner.errors`` and
``tuner.secrets``; never what runs, trains, tracks or shows a study.
"""

from __future__ import annotations

from tuner.config.loader import load_config, validate_config
from tuner.config.schema import StudyConfig
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
)
from tuner.config.tracking import MlflowConfig, RegisterConfig

__all__ = [
    "BudgetConfig",
    "DataConfig",
    "DivergenceConfig",
    "FoldPruningConfig",
    "MlflowConfig",
    "RegisterConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PrunerConfig",
    "SamplerConfig",
    "StudyConfig",
    "TrainingConfig",
    "load_config",
    "validate_config",
]
