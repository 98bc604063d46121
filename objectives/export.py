"""The refit model, taken away for further training: its *recipe* (family, params,
input shape, classes: what builds the same network) and its state dict, and the
``RefitModel`` that rebuilds it and fine-tunes it with the best trial's optimizer,
learning rate, batch size and regularization.

The MLflow inference export (``mlflow.pytorch``) predicts without tuner installed;
this is the other half: with tuner installed, three lines rebuild the network as a
plain ``torch.nn.Module`` and train it further (see docs/seeing-the-study.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["RECIPE_FILE", "RefitModel", "STATE_FILE", "recipe", "save"]

FORMAT = "tuner-model/1"
RECIPE_FILE = "recipe.json"
STATE_FILE = "state_dict.pt"


def recipe(config: StudyConfig, dataset: Any, params: dict[str, Any], trial_number: int) -> dict[str, Any]:
    """What rebuilds the refit's network: plain JSON."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        tuner_version = version("tuner")
    except PackageNotFoundError:  # run from a source tree that is not installed
        tuner_version = "unknown"
    return {
        "format": FORMAT,
        "study": config.name,
        "trial_number": trial_number,
        "family": None if config.objective.function else config.model.family,
        "factory": config.model.factory,
        "objective_function": config.objective.function,
        "params": dict(params),
        "batch_size": config.training.batch_size,
        "sample_shape": list(dataset.sample_shape),
        "task": config.task,
        "target_transform": (config.data.target_transform or "standardize")
        if dataset.is_regression
        else None,
        "n_classes": int(dataset.n_outputs),
        "classes": list(dataset.classes) if dataset.classes else None,
        "metric": config.objective.metric,
        "loss": config.training.loss,
        "seed": config.seed,
        "tuner_version": tuner_version,
        "torch_version": torch.__version__,
    }


def save(folder: Path, model: torch.nn.Module, the_recipe: dict[str, Any]) -> None:
    """Write ``recipe.json`` and ``state_dict.pt`` (CPU tensors) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECIPE_FILE).write_text(json.dumps(the_recipe, indent=2, default=str))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, folder / STATE_FILE)


@dataclass
class RefitModel:
    """A refit network rebuilt from its recipe and state dict, ready to train further.

    ``module`` is a plain ``torch.nn.Module``: its first layer standardizes inputs with
    the statistics of the data it was first trained on (kept when fine-tuning).
    """

    module: torch.nn.Module
    recipe: dict[str, Any]

    @classmethod
    def load(cls, folder: str | Path) -> RefitModel:
        """Rebuild from a folder holding ``recipe.json`` and ``state_dict.pt``."""
        from search_spaces.params import HParams
        from tuner.errors import TunerError

        folder = Path(folder)
        r = json.loads((folder / RECIPE_FILE).read_text())
        if r.get("format") != FORMAT:
            raise TunerError(f"{folder / RECIPE_FILE} is not a {FORMAT} recipe (format {r.get('format')!r})")
        if r.get("objective_function"):
            raise TunerError(
                f"this model was trained by objective.function {r['objective_function']}: tuner does not "
                f"know its network; load {folder / STATE_FILE} into your own with load_state_dict"
            )
        from objectives.models import ModelSpec, build_model

        shape = tuple(int(d) for d in r["sample_shape"])
        spec = ModelSpec(r["family"], shape, int(r["n_classes"]), r.get("factory"))
        hp = HParams.resolve(r["params"], int(r["batch_size"]), r.get("loss"))
        state = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        # the first layer's input statistics are in the state dict with the weights
        module = build_model(spec, hp, state["0.mean"], state["0.std"], params=r["params"])
        if r.get("task") == "regression":  # its target scale too, in the last layer's buffers
            from objectives.task import TargetScale

            module.append(TargetScale(r.get("target_transform") or "standardize"))
        module.load_state_dict(state)
        module.eval()
        return cls(module, r)

    @property
    def task(self) -> Any:
        from objectives.task import task_for

        return task_for(self.recipe.get("task") or "classification")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), in eval mode."""
        from objectives.training import predict_proba

        if self.task.name == "regression":
            raise TypeError("a regression model predicts numbers, not class probabilities: use predict(X)")
        device = next(self.module.parameters()).device
        return predict_proba(self.module, torch.as_tensor(np.asarray(X, dtype=np.float32), device=device))

    def predict(self, X: Any) -> np.ndarray:
        """Regression: predictions (N,) in the target's own units; classification: the
        predicted class index (N,) (names in ``recipe["classes"]``)."""
        device = next(self.module.parameters()).device
        out = self.task.predict(self.module, torch.as_tensor(np.asarray(X, dtype=np.float32), device=device))
        return out if self.task.name == "regression" else out.argmax(axis=1)

    def fine_tune(
        self, X: Any, y: Any, epochs: int = 5, lr: float | None = None, seed: int = 0
    ) -> RefitModel:
        """Train further on ``X, y`` with the best trial's optimizer, batch size,
        regularization, augmentation, class weights and sampling (``lr`` overrides its
        learning rate), under the divergence guard. Returns ``self``; ``module`` is left
        in eval mode."""
        from objectives.augment import Augment, make_augmenter
        from objectives.guard import DivergenceGuard
        from objectives.sampling import resample
        from objectives.training import fit
        from search_spaces.params import HParams
        from tuner.config.sections import DivergenceConfig

        params = dict(self.recipe["params"])
        if lr is not None:
            params["lr"] = lr
        hp = HParams.resolve(params, int(self.recipe["batch_size"]), self.recipe.get("loss"))
        device = next(self.module.parameters()).device
        X_t = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
        regression = self.task.name == "regression"
        y_t = torch.as_tensor(np.asarray(y, dtype=np.float64 if regression else np.int64), device=device)
        aug = Augment.from_params(params)
        shape = tuple(int(d) for d in self.recipe["sample_shape"])
        augment = make_augmenter(aug, shape, scale=float(X_t.max())) if aug.active else None
        # the new rows are treated as the refit treated its own: same imbalance remedy
        X_t, y_t = resample(X_t, y_t, hp.sampling, seed)
        fit(
            self.module,
            hp,
            X_t,
            y_t,
            augment=augment,
            epochs=epochs,
            metric=self.recipe["metric"],
            n_classes=int(self.recipe["n_classes"]),
            guard=DivergenceGuard(DivergenceConfig()),
            fold=-1,
            seed=seed,
            task=self.task,  # regression keeps the target scale of the first training
        )
        self.module.eval()
        return self
