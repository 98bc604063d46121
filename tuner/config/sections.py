"""The sections of a study file (``objective:``, ``data:``, ``training:``, ...), each a
frozen pydantic model that forbids unknown keys and checks its own fields."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tuner.config.durations import parse_duration

__all__ = [
    "BudgetConfig",
    "DataConfig",
    "DivergenceConfig",
    "EarlyStoppingConfig",
    "FoldPruningConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PrunerConfig",
    "SamplerConfig",
    "TrainingConfig",
]

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
LOWER_IS_BETTER = ("log_loss", "rmse", "mae", "mape")
REGRESSION_LOSSES = ("mse", "mae", "huber")
TARGET_TRANSFORMS = ("none", "standardize", "log1p")
FAMILIES = ("mlp", "cnn", "resnet18")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_number(cls, v: Any, info: Any) -> Any:
        # Pydantic reads `n_trials: true` as 1; YAML's true is never meant as a number.
        if isinstance(v, bool) and not _takes_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError("must be a number (YAML's true and false are not numbers)")
        return v


def _takes_bool(annotation: Any) -> bool:
    """Whether a field's type admits a bool: anything but a number (``int``, ``float``,
    ``int | None``, ...); pydantic itself refuses a bool for text."""
    import typing

    if annotation is bool or annotation is Any:
        return True
    args = typing.get_args(annotation)
    if not args:
        return not isinstance(annotation, type) or not issubclass(annotation, (int, float))
    return any(_takes_bool(a) for a in args if a is not type(None))


class ObjectiveConfig(_Strict):
    metric: Literal[
        "accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss", "rmse", "mae", "r2", "mape"
    ] = Field(
        default="balanced_accuracy",
        description="classification: accuracy, balanced_accuracy, f1_macro, roc_auc, log_loss; "
        "regression: rmse (its default), mae, r2, mape",
    )
    function: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="custom objective plug-in, package.module:function (see objectives/plugins.py)",
    )

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"


class DataConfig(_Strict):
    source: str = Field(min_length=1)
    target: str | None = Field(default=None, description="target column of a .csv source")
    target_transform: Literal["none", "standardize", "log1p"] | None = Field(
        default=None,
        description="task: regression only: the network learns the target standardized (the "
        "default), as log1p then standardized (skewed, positive targets), or as it is; fitted on "
        "each fold's training rows only and inverted before any metric",
    )
    split: Literal["stratified", "quantile", "kfold"] | None = Field(
        default=None,
        description="how the test split and the folds are drawn: stratified by class "
        "(classification, the only choice there); for regression plain shuffled K-fold (kfold, "
        "the default) or stratified on quantile bins of the target (quantile)",
    )
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    folds: int = Field(default=5, ge=2, le=50)
    normalize: bool = Field(
        default=True, description="standardize inputs with statistics of the training folds only"
    )
    max_test_duplicates: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="fraction of test samples with an exact duplicate outside the test split "
        "above which tuning stops (leakage); any smaller share is a warning",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if v.startswith("sklearn:"):
            name = v.split(":", 1)[1]
            if name not in ("digits", "breast_cancer", "wine", "iris", "diabetes"):
                raise ValueError(
                    f"unknown built-in dataset {name!r}; use sklearn:digits, sklearn:breast_cancer, "
                    "sklearn:wine, sklearn:iris (classification) or sklearn:diabetes (regression), "
                    "or a path to a .npz or .csv file"
                )
        elif v.startswith("torchvision:"):
            name = v.split(":", 1)[1]
            if name not in ("MNIST", "FashionMNIST", "CIFAR10"):
                raise ValueError(
                    f"unknown torchvision dataset {name!r}; use torchvision:MNIST, "
                    "torchvision:FashionMNIST or torchvision:CIFAR10 (with data.root)"
                )
        elif v.startswith("imagefolder:"):
            if not v.split(":", 1)[1]:
                raise ValueError("imagefolder: needs a folder, e.g. imagefolder:data/vehicles")
        elif not v.lower().endswith((".npz", ".csv")):
            raise ValueError(
                f"cannot read {v!r}: give sklearn:digits (or breast_cancer, wine, iris), "
                "imagefolder:FOLDER, torchvision:MNIST|FashionMNIST|CIFAR10, "
                "or a path to a .npz file (arrays X and y) or a .csv file (with data.target)"
            )
        return v

    @property
    def is_image(self) -> bool | None:
        """Whether the source holds images; None when only the data can tell (.npz)."""
        s = self.source
        if s.startswith(("imagefolder:", "torchvision:")) or s == "sklearn:digits":
            return True
        if s.lower().endswith(".npz"):
            return None
        return False

    image_size: int | tuple[int, int] | None = Field(
        default=None,
        description="resize images to this (64 or [h, w]); default: 64 for imagefolder, "
        "the native size for torchvision",
    )
    root: str | None = Field(default=None, description="folder of torchvision dataset files")
    download: bool = Field(default=False, description="let torchvision download missing files")
    cache_limit_mb: int = Field(
        default=4096, ge=1, description="largest decoded image tensor (MiB) kept in memory"
    )
    cache: Literal["auto", "memory", "disk", "stream"] = Field(
        default="auto",
        description="imagefolder: only. memory: decode into memory (up to cache_limit_mb); disk: "
        "decode once into data.cache_dir and read that into memory; stream: train from the disk "
        "cache a batch at a time, for folders larger than memory; auto: memory while it fits "
        "under cache_limit_mb (or a disk cache exists), else stream",
    )
    loader_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="data.cache: stream only: DataLoader processes that read training batches "
        "from the disk cache ahead of the training loop (0: read in the training process)",
    )
    cache_dir: str | None = Field(
        default=None,
        description="where the decoded image cache lives (default: .tuner-cache beside the "
        "image folder); shared by every trial, worker and re-run",
    )

    @field_validator("image_size")
    @classmethod
    def _size(cls, v: Any) -> Any:
        sizes = (v,) if isinstance(v, int) else (v or ())
        if any(s < 1 or s > 4096 for s in sizes):
            raise ValueError(f"image sizes must lie in [1, 4096] pixels, got {v}")
        return v

    @model_validator(mode="after")
    def _csv_needs_target(self) -> DataConfig:
        if self.source.lower().endswith(".csv") and not self.target:
            raise ValueError("a .csv source needs data.target: the name of the label column")
        image_only = [k for k in ("image_size", "root") if getattr(self, k) is not None]
        image_only += ["download"] if self.download else []
        if image_only and self.is_image is not True or (self.source.startswith("sklearn:") and image_only):
            raise ValueError(
                f"data.{image_only[0]} applies to imagefolder: and torchvision: sources only, "
                f"not to {self.source}; remove it"
            )
        changed = {"cache", "cache_dir", "loader_workers"} & self.model_fields_set
        if changed and not self.source.startswith("imagefolder:"):
            key = sorted(changed)[0]
            raise ValueError(
                f"data.{key} applies to imagefolder: sources only, not to {self.source}; remove it"
            )
        if (self.root is not None or self.download) and not self.source.startswith("torchvision:"):
            key = "root" if self.root is not None else "download"
            raise ValueError(f"data.{key} applies to torchvision: sources only; remove it")
        return self


class ModelConfig(_Strict):
    family: Literal["mlp", "cnn", "resnet18"] = "mlp"
    factory: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="model plug-in, package.module:function(params, input_shape, n_classes)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.factory and "family" in self.model_fields_set:
            raise ValueError("give model.family or model.factory, not both")
        return self


class EarlyStoppingConfig(_Strict):
    """End a fold when its validation loss has not improved for ``patience`` epochs
    (``objectives.early_stopping``); ``patience`` and ``min_delta`` are searchable as
    ``early_stopping.patience`` / ``early_stopping.min_delta``."""

    patience: int = Field(default=3, ge=1, le=10_000, description="epochs without improvement")
    min_delta: float = Field(
        default=0.0, ge=0.0, description="the smallest fall of the validation loss that counts"
    )
    restore_best: bool = Field(
        default=True, description="score the fold at its best epoch rather than its last"
    )


class TrainingConfig(_Strict):
    max_epochs: int = Field(default=15, ge=1, le=10_000)
    loss: Literal["mse", "mae", "huber"] | None = Field(
        default=None,
        description="task: regression only (default mse; searchable as search_space.loss); "
        "classification always trains on cross-entropy",
    )
    early_stopping: EarlyStoppingConfig | None = Field(
        default=None,
        description="off by default (see docs/pruning.md for why); true takes the defaults "
        "{patience: 3, min_delta: 0, restore_best: true}",
    )
    batch_size: int = Field(default=64, ge=1, le=1 << 16)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="torch CPU threads; default: the cores other work leaves free (at least 1), or a worker's share",
    )
    amp: bool | None = Field(
        default=None,
        description="automatic mixed precision; default: on for CUDA, off elsewhere "
        "(true on a machine without CUDA is an error)",
    )

    cuda_graphs: bool | None = Field(
        default=None,
        description="record each full batch's training step once as a CUDA graph and replay "
        "it (CUDA only, not with float16 loss scaling); default: off",
    )

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _on_off(cls, v: Any) -> Any:
        if v is True:
            return {}
        if v is False or v is None:
            return None
        return v

    @model_validator(mode="after")
    def _cuda_only_needs_cuda(self) -> TrainingConfig:
        for key in ("amp", "cuda_graphs"):
            if getattr(self, key) and self.device in ("cpu", "mps"):
                raise ValueError(
                    f"training.{key}: true needs a CUDA device, but training.device is {self.device}; "
                    f"remove training.{key} or use device: cuda"
                )
        return self


class BudgetConfig(_Strict):
    n_trials: int = Field(default=20, ge=1, le=1_000_000)
    timeout: float | None = Field(default=None, description="e.g. 20m, 1h30m or seconds")
    max_consecutive_failures: int = Field(default=5, ge=1, le=1000)

    @field_validator("timeout", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return None if v is None else parse_duration(v)


class _Named(BaseModel):
    """A ``{name: Class, **kwargs}`` mapping; the kwargs are checked against the class."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SamplerConfig(_Named):
    name: str = "TPESampler"

    @model_validator(mode="after")
    def _buildable(self) -> SamplerConfig:
        from tuner.config.registry import build_sampler

        build_sampler(self.name, self.args)
        return self


class PrunerConfig(_Named):
    name: str = "MedianPruner"

    @model_validator(mode="after")
    def _buildable(self) -> PrunerConfig:
        from tuner.config.registry import build_pruner

        build_pruner(self.name, self.args)
        return self


class FoldPruningConfig(_Strict):
    """Stop a trial between folds when it is clearly worse than the best trial so far
    (a paired comparison on the same folds, see ``objectives.cv.fold_verdict``)."""

    enabled: bool = True
    min_folds: int = Field(default=1, ge=1, description="folds a trial finishes before the test")
    margin: float = Field(
        default=1.5,
        ge=0.0,
        description="how many standard errors of the predicted K-fold mean the trial must trail "
        "the best trial by, fold by fold on the same folds",
    )
    min_gain: float = Field(
        default=0.0,
        ge=0.0,
        description="the smallest gain over the best trial worth finishing a trial for, in "
        "standard errors of a K-fold mean difference (what cross-validation can resolve); "
        "0 stops only trials expected to lose",
    )
    pruner_peers: Literal["complete", "finished"] = Field(
        default="complete",
        description="which trials the epoch pruner compares a trial with at each step: complete "
        "ones only (Optuna's own behaviour), or every finished one that reached the step (a "
        "trial stopped between folds trained its first folds in full)",
    )


class DivergenceConfig(_Strict):
    """The divergence guard: thresholds on gradient norms and training loss."""

    enabled: bool = True
    max_grad_norm: float | None = Field(default=1.0e4, gt=0, description="absolute limit")
    baseline_steps: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="first steps of a fold whose median is the baseline norm and initial loss "
        "(1: the first step, taken before any update, so the learning rate cannot inflate it)",
    )
    grad_norm_factor: float | None = Field(default=100.0, gt=1, description="x baseline limit")
    loss_factor: float | None = Field(default=10.0, gt=1, description="x initial loss limit")
    patience: int = Field(
        default=5,
        ge=1,
        le=100_000,
        description="steps whose mean norm and mean loss are held to the limits",
    )
    check_every: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="steps between checks on a GPU, where reading a value is a host sync "
        "(always 1 on a CPU); a trip is found at the latest at the epoch's end",
    )
