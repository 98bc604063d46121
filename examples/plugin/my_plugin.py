"""A runnable plug-in example: a model factory and a custom objective.

    tune examples/plugin/factory.yaml      # tuner's loop trains the model `build` returns
    tune examples/plugin/objective.yaml    # `objective` trains it its own way

tuner imports this module only because a study file names it (``model.factory`` /
``objective.function``); the study file's folder is on the import path.
"""

from __future__ import annotations

import torch
from torch import nn


def build(params: dict, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Model factory: called per fold with the trial's params and one sample's shape.

    ``hidden`` and ``layers`` are this factory's own parameters (tuner does not know
    them; with a factory, the search space may name them). tuner standardizes the
    inputs in front of this model and trains it with its own loop (lr, optimizer,
    weight_decay, batch_size, augment.* all apply).
    """
    n_in = 1
    for d in input_shape:
        n_in *= d
    hidden, layers = int(params.get("hidden", 32)), int(params.get("layers", 1))
    mods: list[nn.Module] = [nn.Flatten()]
    for _ in range(layers):
        mods += [nn.Linear(n_in, hidden), nn.SiLU()]
        n_in = hidden
    mods.append(nn.Linear(n_in, n_classes))
    return nn.Sequential(*mods)


def objective(trial, data, reporter) -> nn.Module:
    """Custom objective: trains one fold its own way and returns the model.

    ``data`` holds the fold's tensors (``X_train``, ``y_train``, ``X_val``, ``y_val``, on
    ``data.device``), the trial's ``params`` and resolved ``hp``, ``max_epochs``, the
    training-fold normalization (``data.standardize()``) and ``data.batches()``
    (shuffled, augmented when the trial asks). ``reporter.step`` feeds the divergence
    guard; ``reporter.epoch`` logs to MLflow and lets Optuna's pruner stop the trial
    (it raises ``optuna.TrialPruned``: let it propagate).
    """
    p = data.params
    model = nn.Sequential(data.standardize(), build(p, data.input_shape, data.n_classes)).to(data.device)
    opt = torch.optim.SGD(
        model.parameters(), lr=data.hp.lr, momentum=float(p.get("momentum", 0.9)), nesterov=True
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=data.max_epochs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=data.hp.label_smoothing)
    for epoch in range(data.max_epochs):
        model.train()
        for xb, yb in data.batches():
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            reporter.step(loss, model)  # before clipping / stepping: the guard sees the true norm
            opt.step()
        sched.step()
        reporter.epoch(epoch, model)
    return model
