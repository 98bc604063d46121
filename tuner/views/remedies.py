"""What each diagnosis suggests trying, in the words of the study's task: a regression's
targets are numbers, not labels, and its loss blowing up often means the target's scale."""

from __future__ import annotations

from tuner.views.skill import REGRESSION_METRICS

__all__ = ["REMEDIES", "remedy"]

REMEDIES = {
    "healthy": "",
    "overfitting": "more data or augmentation, more dropout, more weight decay, fewer epochs "
    "(early stopping) or a smaller model",
    "underfitting": "less regularization (dropout, weight decay), a bigger model, more epochs "
    "or a higher learning rate",
    "vanishing_gradients": "a shallower net, relu/gelu instead of a saturating activation "
    "(tanh), batch norm (batchnorm: before_activation), or adam with a higher learning rate",
    "diverged": "input normalization (data.normalize), batch norm, a lower learning rate or "
    "gradient clipping (max_norm)",
    "data_pipeline_suspect": "inspect the data pipeline: labels aligned with features, the "
    "label encoding, duplicated or leaked rows, the scale of the inputs",
    "stopped_early": "",
}
# where a regression study needs other words: a loss that blows up often means the
# target's scale (or its outliers) meet a squared error
_REGRESSION_REMEDIES = {
    "diverged": "input normalization (data.normalize), a standardized target "
    "(data.target_transform: standardize, or log1p for a skewed positive target), a robust "
    "loss (training.loss: huber or mae, searchable as loss), a lower learning rate or "
    "gradient clipping (max_norm)",
    "data_pipeline_suspect": "inspect the data pipeline: targets aligned with features, the "
    "target's units and scale (data.target_transform), duplicated or leaked rows, the scale of "
    "the inputs",
}


def remedy(name: str, metric: str | None = None) -> str:
    """The remedy suggested for diagnosis ``name``, in the words of ``metric``'s task."""
    if metric in REGRESSION_METRICS:
        return _REGRESSION_REMEDIES.get(name, REMEDIES[name])
    return REMEDIES[name]
