"""Train one model on one fold (or the refit): the one place that decides *how*.

The built-in loop (``objectives.training.fit``) on a built-in family or a
``model.factory`` plug-in, or the user's ``objective.function``; in every case with
the trial's augmentation on training batches only, mixed precision per
``training.amp`` and cuDNN autotuning where it pays (``objectives.devices``), and the
trial's ``sampling`` of the training rows (``objectives.sampling``), never of the
validation rows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["train_fold"]


def train_fold(
    config: StudyConfig,
    spec: Any,
    params: dict[str, Any],
    hp: Any,
    X: Any,
    y: Any,
    *,
    mean: Any,
    std: Any,
    guard: Any,
    fold: int,
    seed: int,
    X_val: Any = None,
    y_val: Any = None,
    on_epoch: Callable[[Any], None] = lambda r: None,
    trial: Any = None,
    epochs: int | None = None,
) -> Any:
    """A freshly initialised model trained on ``X, y`` (resampled per ``hp.sampling``) for
    ``epochs`` (default ``training.max_epochs``); raises ``Diverged`` or whatever
    ``on_epoch`` raises (``optuna.TrialPruned``, ``objectives.early_stopping.StopFold``)."""
    import torch

    from objectives.augment import Augment, make_augmenter
    from objectives.devices import configure_backends, resolve_amp, use_cuda_graphs
    from objectives.models import build_model
    from objectives.sampling import resample
    from objectives.task import task_for
    from objectives.training import fit

    device = X.device
    task = task_for(config.task)
    epochs = config.training.max_epochs if epochs is None else epochs
    aug = Augment.from_params(params)
    augment = None
    if aug.active:
        # colour jitter works on [0, 1] images: the scale comes from the training rows only
        augment = make_augmenter(aug, spec.sample_shape, scale=float(X.max()))
    amp = resolve_amp(config.training.amp, device)
    graphs = use_cuda_graphs(config.training.cuda_graphs, device, amp)
    configure_backends(device, spec.family if not spec.factory else "cnn")
    X, y = resample(X, y, hp.sampling, seed)  # training rows only: X_val keeps the data's balance
    torch.manual_seed(seed)  # the init weights too, whatever ran before in this process
    function = config.objective.function
    if function:
        from objectives.plugins import FoldData, run_objective

        data = FoldData(
            X_train=X, y_train=y, X_val=X_val, y_val=y_val, fold=fold, params=dict(params), hp=hp,
            n_classes=spec.n_classes, input_shape=tuple(spec.sample_shape), device=device, seed=seed,
            max_epochs=epochs, metric=config.objective.metric, mean=mean, std=std, augment=augment,
            task=task.name, target=task.head(y, config.data.target_transform),
        )  # fmt: skip
        return run_objective(function, trial, data, guard, on_epoch)
    model = build_model(spec, hp, mean, std, params).to(device)
    head = task.head(y, config.data.target_transform)  # the training rows' target scale
    if head is not None:
        model.append(head)
    return fit(
        model, hp, X, y,
        epochs=epochs, metric=config.objective.metric,
        n_classes=spec.n_classes, guard=guard, fold=fold, seed=seed,
        X_val=X_val, y_val=y_val, on_epoch=on_epoch, augment=augment, amp=amp, task=task,
        graphs=graphs,
    )  # fmt: skip
