"""Who a worker is: its name on each trial (``host:pid``), its rank, and the sampler
seed offset that keeps workers from sampling the same points."""

from __future__ import annotations

import os
import socket

from tuner.errors import ConfigError

__all__ = ["certainly_dead", "resolve_rank", "unnamed_worker_offset", "worker_name"]


# The kernel's initial PID namespace (PROC_PID_INIT_INO): a process outside any container.
_INIT_PID_NAMESPACE = 0xEFFFFFFC


def _where() -> str:
    """The name of the place whose pids this process's pid is one of: the host name, plus
    the PID namespace inside a container. Containers on the host's network share its host
    name (and each numbers its processes from 1), so ``host:pid`` alone named two workers
    alike and let one take the other's live trial for a dead one."""
    host = socket.gethostname()
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # not Linux, or /proc not mounted
        return host
    return host if namespace == _INIT_PID_NAMESPACE else f"{host}/pidns-{namespace}"


def worker_name(pid: int | None = None) -> str:
    """``host:pid`` (``host/pidns-N:pid`` inside a container), recorded on each trial
    (``tuner.run.workers`` finds its dead workers' trials)."""
    return f"{_where()}:{pid or os.getpid()}"


def certainly_dead(worker: str) -> bool:
    """Whether worker ``host:pid`` is certainly gone: it ran where this process runs (the
    same host and PID namespace) and no process has its pid. A worker elsewhere is never
    *certainly* dead (its heartbeat tells)."""
    where, _, pid = worker.rpartition(":")
    if where != _where() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's process: alive
        return False
    return False


def resolve_rank(explicit: int | None) -> int | None:
    """This worker's rank: ``--workers`` gives it; else ``$TUNER_WORKER_RANK``, else a
    Kubernetes indexed Job's ``$JOB_COMPLETION_INDEX``; None when nothing names it.

    Raises:
        ConfigError: for a rank that is not a non-negative integer.
    """
    if explicit is not None:
        return explicit
    for var in ("TUNER_WORKER_RANK", "JOB_COMPLETION_INDEX"):
        value = os.environ.get(var)
        if value is not None and value.strip():
            if not value.strip().isdigit():
                raise ConfigError(f"${var} must be a non-negative integer (the worker's rank), got {value!r}")
            return int(value)
    return None


def unnamed_worker_offset(worker_name: str) -> int:
    """A seed offset for a worker without a rank, stable for its ``host:pid``."""
    import zlib

    return 1_000 + zlib.crc32(worker_name.encode()) % 1_000_000
