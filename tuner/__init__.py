"""tuner: cross-validated hyperparameter search for PyTorch models, honestly scored."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "StorageError", "TunerError", "__version__", "load_config"]

from tuner.errors import ConfigError, DataError, StorageError, TunerError


def load_config(path, overrides=None):  # type: ignore[no-untyped-def]
    """Read and validate a study file (see ``tuner.config.load_config``)."""
    from tuner.config import load_config as _load

    return _load(path, overrides)
