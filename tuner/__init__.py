"""tuner: cross-validated hyperparameter search for PyTorch models, honestly scored."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "StorageError",
    "TunerError",
    "__version__",
    "load_config",
    "load_refit",
]

from tuner.errors import ConfigError, DataError, StorageError, TunerError


def load_config(path, overrides=None):  # type: ignore[no-untyped-def]
    """Read and validate a study file (see ``tuner.config.load_config``)."""
    from tuner.config import load_config as _load

    return _load(path, overrides)


def load_refit(ref, tracking_uri=None):  # type: ignore[no-untyped-def]
    """Rebuild a study's refit model for further training: ``ref`` is a study file, a
    refit run (``runs:/<id>``), a registered version (``models:/NAME@alias``) or a local
    folder (see ``tuner.run.takeaway.load_refit``). Returns an
    ``objectives.export.RefitModel``: ``.module`` (a torch.nn.Module), ``.fine_tune``,
    ``.predict_proba``, ``.recipe``."""
    from tuner.run.takeaway import load_refit as _load

    return _load(ref, tracking_uri)
