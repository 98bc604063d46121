"""``tune storage-proxy``: Optuna's gRPC storage proxy in front of a database.

With very many workers, each holding its own database connections, the database
becomes the bottleneck; the proxy holds one cached storage and serves the workers
(``--storage grpc://HOST:PORT``). It is Optuna's ``run_grpc_proxy_server``; tuner
only adds URL checks and password-free messages.
"""

from __future__ import annotations

import warnings

from tuner.errors import ConfigError
from tuner.secrets import mask_url

__all__ = ["serve"]

_DATABASES = ("sqlite", "postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql")


def serve(url: str | None, host: str, port: int) -> int:
    """Serve the database at ``url`` on ``host:port`` until interrupted.

    Raises:
        ConfigError: for a missing or unsupported URL or a bad port.
        StorageError: when the database cannot be opened (host named, no password).
    """
    import optuna

    from tuner.storage.backends import build_storage
    from tuner.storage.urls import describe, resolve_url, scheme

    if not url:
        raise ConfigError(
            "tune storage-proxy needs the database: --storage postgresql://USER@HOST/DB (or $TUNER_STORAGE)"
        )
    if scheme(url) not in _DATABASES:
        raise ConfigError(
            f"tune storage-proxy serves a database (postgresql://, mysql://, sqlite:///), got "
            f"{mask_url(url)!r}: Optuna's gRPC proxy does not support journal or Redis storages, "
            "and workers can share those directly"
        )
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    from pathlib import Path

    url = resolve_url(url, Path.cwd())
    storage = build_storage(url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"serving {describe(url)} to workers at grpc://{host}:{port} (Ctrl-C stops)", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # get_storage adds Optuna's in-process trial cache, as its docs advise for the proxy.
        optuna.storages.run_grpc_proxy_server(optuna.storages.get_storage(storage), host=host, port=port)
    return 0
