"""The study file: a frozen, fully validated pydantic model.

Everything is checked at load time, before any data is read, any storage is
created or any device is claimed. Errors name the file, the key path, the bad
value and the fix, e.g. ``data.folds must be >= 2, got 1 (in digits.yaml)``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from search_spaces import SearchSpace, preset_names, preset_path
from tuner.durations import parse_duration
from tuner.errors import ConfigError
from tuner.secrets import mask_secrets

__all__ = [
    "BudgetConfig",
    "DataConfig",
    "DivergenceConfig",
    "FoldPruningConfig",
    "MlflowConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "PrunerConfig",
    "SamplerConfig",
    "StudyConfig",
    "TrainingConfig",
    "load_config",
]

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
FAMILIES = ("mlp", "cnn", "resnet18")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectiveConfig(_Strict):
    metric: Literal["accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"] = (
        "balanced_accuracy"
    )
    function: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="custom objective plug-in, package.module:function (see objectives/plugins.py)",
    )

    @property
    def direction(self) -> str:
        return "minimize" if self.metric == "log_loss" else "maximize"


class DataConfig(_Strict):
    source: str = Field(min_length=1)
    target: str | None = Field(default=None, description="target column of a .csv source")
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
            if name not in ("digits", "breast_cancer", "wine", "iris"):
                raise ValueError(
                    f"unknown built-in dataset {name!r}; use sklearn:digits, sklearn:breast_cancer, "
                    "sklearn:wine or sklearn:iris, or a path to a .npz or .csv file"
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
        if image_only and self.is_image is not True or (
            self.source.startswith("sklearn:") and image_only
        ):
            raise ValueError(
                f"data.{image_only[0]} applies to imagefolder: and torchvision: sources only, "
                f"not to {self.source}; remove it"
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


class TrainingConfig(_Strict):
    max_epochs: int = Field(default=15, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=1 << 16)
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    threads: int | None = Field(
        default=None, ge=1, le=1024, description="torch CPU threads; default: all cores / workers"
    )
    amp: bool | None = Field(
        default=None,
        description="automatic mixed precision; default: on for CUDA, off elsewhere "
        "(true on a machine without CUDA is an error)",
    )

    @model_validator(mode="after")
    def _amp_needs_cuda(self) -> TrainingConfig:
        if self.amp and self.device in ("cpu", "mps"):
            raise ValueError(
                f"training.amp: true needs a CUDA device, but training.device is {self.device}; "
                "remove training.amp or use device: cuda"
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
        from tuner.registry import build_sampler

        build_sampler(self.name, self.args)
        return self


class PrunerConfig(_Named):
    name: str = "MedianPruner"

    @model_validator(mode="after")
    def _buildable(self) -> PrunerConfig:
        from tuner.registry import build_pruner

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


class MlflowConfig(_Strict):
    enabled: bool = True
    tracking_uri: str | None = Field(
        default=None, description="default: sqlite:///mlflow.db beside the study file"
    )
    experiment: str | None = Field(default=None, min_length=1, description="default: the study name")
    log_model: bool = True


class StudyConfig(_Strict):
    # Declared first: search_space resolves relative files against base_dir.
    # Where relative paths (data, sqlite files) are resolved; set by load_config.
    base_dir: Path = Field(default=Path("."), exclude=True)
    source_file: str = Field(default="<memory>", exclude=True)

    name: str = Field(min_length=1, max_length=100)
    seed: int = Field(default=0, ge=0, lt=2**32)
    objective: ObjectiveConfig = ObjectiveConfig()
    data: DataConfig
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    search_space: SearchSpace
    budget: BudgetConfig = BudgetConfig()
    sampler: SamplerConfig = SamplerConfig()
    pruner: PrunerConfig | None = PrunerConfig(name="MedianPruner", n_warmup_steps=3)
    fold_pruning: FoldPruningConfig = FoldPruningConfig()
    divergence: DivergenceConfig = DivergenceConfig()
    storage: str | None = Field(default=None, description="default: sqlite:///<name>.db beside")
    mlflow: MlflowConfig = MlflowConfig()

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
            from tuner.storage import check_scheme

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
        from objectives.params import check_params
        from tuner.extensions import check_extensions

        handled, problems = check_extensions(self)
        problems = problems or check_params(self.search_space, self.model.family, handled)
        if problems:
            raise ValueError(problems)
        fold_ok = self.fold_pruning.min_folds < self.data.folds
        if self.fold_pruning.enabled and not fold_ok:
            raise ValueError(
                f"fold_pruning.min_folds ({self.fold_pruning.min_folds}) must be below "
                f"data.folds ({self.data.folds}), or set fold_pruning.enabled: false"
            )
        return self

    @property
    def direction(self) -> str:
        return self.objective.direction

    def resolve_path(self, value: str) -> Path:
        """``value`` as a path, relative to the study file's folder."""
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def storage_url(self) -> str:
        """The storage URL to use, with relative sqlite/journal paths resolved."""
        from tuner.storage import default_storage_url, resolve_url

        url = self.storage or default_storage_url(self)
        return resolve_url(url, self.base_dir)

    @property
    def tracking_uri(self) -> str:
        from tuner.storage import resolve_url

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
    data = _safe_load(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, Mapping):
        raise ValueError(f"{path} must hold a mapping of parameter specs")
    return dict(data)


# --------------------------------------------------------------------------- loading

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(node: Any, path: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of the document."""
    if isinstance(node, Mapping):
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                raise ConfigError(
                    f"{path} refers to ${{{m.group(1)}}}, but the environment variable "
                    f"{m.group(1)} is not set: export it, or write ${{{m.group(1)}:-default}}"
                )
            return value

        return _ENV.sub(sub, node)
    return node


class _StrictLoader(yaml.SafeLoader):
    """``safe_load``, except that a key given twice is an error, not a silent overwrite."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.MarkedYAMLError(
                        problem=f"duplicate key {key_node.value!r} (YAML would silently keep the "
                        "last one): remove one of them",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# YAML aliases can make a tiny file expand to billions of values or refer to itself.
MAX_NODES, MAX_DEPTH = 100_000, 64


def _check_size(doc: Any, source: str) -> None:
    count = 0

    def walk(node: Any, where: str, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_NODES:
            shown = where if len(where) < 80 else where[:60] + "..."
            raise ConfigError(
                f"{source}: {shown or '(top level)'} nests deeper than {MAX_DEPTH} levels or the "
                f"file expands to more than {MAX_NODES} values (recursive or repeated YAML "
                "aliases?): write the study out plainly"
            )
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k), depth + 1)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", depth + 1)

    walk(doc, "", 0)


def _safe_load(text: str, source: str) -> Any:
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        _check_size(doc, source)
        return doc
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(
            f"{source}: YAML tag not allowed ({e.problem}); tuner reads plain YAML only "
            "(no !!python tags)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read, interpolate and validate a study file.

    Args:
        path: the study YAML file.
        overrides: dotted keys (``budget.n_trials``) → values from the command line;
            validated like the file itself.

    Raises:
        ConfigError: naming the file, key path, value and fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"study file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read study file {path}: {e}") from None
    raw = _safe_load(text, path.name)
    if not isinstance(raw, Mapping):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            f"{path.name} must be a YAML mapping (name:, data:, search_space:, ...), got {kind}; "
            "run `tune init` for a starter file"
        )
    raw = _interpolate(dict(raw), "")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        node[leaf] = value
    return validate_config(raw, base_dir=path.resolve().parent, source=path.name)


def validate_config(raw: Mapping[str, Any], base_dir: Path, source: str) -> StudyConfig:
    """Validate an already-parsed document (see ``load_config``)."""
    for reserved in ("base_dir", "source_file"):
        if reserved in raw:
            raise ConfigError(f"unknown key {reserved} (in {source})")
    # base_dir first so search_space can resolve relative files against it.
    data = {"base_dir": base_dir, "source_file": source, **raw}
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e, source)) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{mask_secrets(str(e))} (in {source})") from None


def _explain(err: ValidationError, source: str) -> str:
    """One paragraph: each problem as ``path: what, got value`` then the file."""
    parts = []
    for item in err.errors(include_url=False)[:5]:
        loc = [str(x) for x in item["loc"] if not str(x).startswith("function-")]
        loc = [x for x in loc if x not in ("params",)]
        where = ".".join(loc) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            fields = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
            fields = [f for f in fields if f not in ("base_dir", "source_file")]
            close = difflib.get_close_matches(loc[-1], fields, n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(fields)}"
            parts.append(f"unknown key {where} ({hint})")
            continue
        if item["type"] == "missing":
            parts.append(f"{where} is required")
            continue
        got = item.get("input")
        shown = "" if isinstance(got, (Mapping, list)) or got is None else f", got {got!r}"
        if shown and shown in msg:  # our own validators already name the value
            shown = ""
        plain = _plain(msg)
        sep = " " if plain != msg else ": "
        parts.append(f"{where}{sep}{mask_secrets(plain)}{mask_secrets(shown)}")
    more = len(err.errors()) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return "; ".join(parts) + tail + f" (in {source})"


_PLAIN = [
    (re.compile(r"^Input should be greater than or equal to (.+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be greater than (.+)$"), r"must be > \1"),
    (re.compile(r"^Input should be less than or equal to (.+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be less than (.+)$"), r"must be < \1"),
    (re.compile(r"^Input should be a valid integer.*$"), "must be an integer"),
    (re.compile(r"^Input should be a valid number.*$"), "must be a number"),
    (re.compile(r"^Input should be a valid boolean.*$"), "must be true or false"),
    (re.compile(r"^Input should be a valid string.*$"), "must be a string"),
    (re.compile(r"^Input should be (.+)$"), r"must be \1"),
    (re.compile(r"^String should match pattern '(.+)'$"), r"must match the pattern \1"),
    (re.compile(r"^String should have at least (\d+) characters?$"), r"must have at least \1 character(s)"),
    (re.compile(r"^String should have at most (\d+) characters$"), r"must have at most \1 characters"),
]


def _plain(msg: str) -> str:
    """pydantic's "Input should be ..." as "must be ...", so the message reads as one sentence."""
    for pattern, repl in _PLAIN:
        if pattern.match(msg):
            return pattern.sub(repl, msg)
    return msg


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = StudyConfig
    for key in loc:
        field = model.model_fields.get(key)
        ann = getattr(field, "annotation", None)
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        nxt = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model
