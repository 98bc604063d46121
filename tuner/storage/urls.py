"""Study storage URLs: which schemes tuner opens, how relative file paths resolve,
and how a storage is named in messages (never with its password)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from tuner.secrets import mask_url

__all__ = [
    "SCHEMES",
    "check_scheme",
    "describe",
    "is_file_storage",
    "resolve_url",
    "scheme",
    "supports_heartbeat",
]

SCHEMES = (
    "sqlite",
    "postgresql",
    "postgresql+psycopg2",
    "mysql",
    "mysql+pymysql",
    "journal",
    "redis",
    "rediss",
    "grpc",
)


def scheme(url: str) -> str:
    """The URL's scheme, lower-case (``postgresql+psycopg2``); empty when it has none."""
    return url.split(":", 1)[0].lower() if ":" in url else ""


def check_scheme(url: str) -> None:
    """Raise ``ValueError`` for a storage URL tuner cannot open (password masked): an
    unknown scheme, a file URL without its third slash, or a storage that lives only as
    long as the process (no resume, and every re-run would score the test split again)."""
    kind = scheme(url)
    if kind not in SCHEMES:
        raise ValueError(
            f"unsupported storage URL {mask_url(url)!r}: use sqlite:///FILE.db, "
            "postgresql://USER@HOST/DB, journal:///FILE.log, redis://HOST:PORT/DB or grpc://HOST:PORT"
        )
    if kind in ("sqlite", "journal"):
        rest = url.split(":", 1)[1]
        if not rest.startswith("///"):
            path = rest.lstrip("/")
            raise ValueError(
                f"{url!r} lacks a slash: a {kind} URL is {kind}:/// followed by the file "
                f"({kind}:///{path or 'study.db'} beside the study file, {kind}:////abs/path for "
                "an absolute path)"
            )
        path = rest[3:].split("?", 1)[0]
        if path in ("", ":memory:") or "mode=memory" in url:
            raise ValueError(
                f"{url!r} is an in-memory storage, gone when the process ends: the study could not "
                "resume, and every re-run would score the held-out test split again. Use a file "
                f"({kind}:///study.db) or a database server"
            )


def resolve_url(url: str, base_dir: Path) -> str:
    """Make file-backed URLs absolute relative to ``base_dir``."""
    for prefix in ("sqlite:///", "journal:///"):
        if url.startswith(prefix):
            rest = url[len(prefix) :]
            if rest and not rest.startswith("/") and rest != ":memory:":
                return prefix + str((base_dir / rest).resolve())
    return url


def is_file_storage(url: str) -> bool:
    """Whether the storage is a file on this machine (SQLite, a journal file), not a server."""
    return scheme(url) in ("sqlite", "journal")


def supports_heartbeat(url: str) -> bool:
    """Whether a killed worker's trial is detected and retried on this storage."""
    return scheme(url) in ("sqlite", "postgresql", "postgresql+psycopg2", "mysql", "mysql+pymysql")


def describe(url: str) -> str:
    """A short, password-free description of the storage for messages."""
    kind = scheme(url)
    if kind in ("sqlite", "journal"):
        return f"{kind} file {url.split(':///', 1)[-1]}"
    parsed = urlparse(url)
    host = parsed.hostname or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{kind} at {host}{port}{parsed.path if kind != 'grpc' else ''}"
