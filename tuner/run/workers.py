"""Local workers: ``tune STUDY.yaml --workers N`` or ``--gpus 0,1|all [--trials-per-gpu N]``.

Optuna's distributed model is workers sharing one storage; this module only starts
N of them on one machine. Each worker is an ordinary ``tune run`` process (the same
code a user starts on another machine) with:

- its rank, so its sampler seed is ``seed + rank`` (the same seed in every worker
  would make them sample the same points);
- ``CUDA_VISIBLE_DEVICES`` pinned to its GPU (``--gpus``; with ``--trials-per-gpu N``,
  N workers share each GPU, so a small model's trials fill a large GPU), and
- its share of the CPU cores as torch threads: oversubscribing 2 cores made
  training ~30x slower here.

The parent process only waits: it forwards Ctrl-C/SIGTERM once to every worker
(they close their trial and MLflow run and exit 130), and when all workers have
finished it does the single refit and test scoring (``run_study`` with the budget
already reached runs no trial).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuner.errors import ConfigError, TunerError

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "WorkerPlan",
    "busy_elsewhere",
    "default_threads",
    "init_study",
    "plan_workers",
    "reap_dead_workers",
    "run_workers",
    "usable_cores",
    "worker_argv",
]


@dataclass(frozen=True)
class WorkerPlan:
    """Which workers to start: their GPUs (None on CPU) and torch threads each."""

    gpus: tuple[str | None, ...]
    threads: int

    @property
    def n(self) -> int:
        return len(self.gpus)


def _visible_gpus() -> list[str]:
    """GPU ids a worker may be pinned to, honouring an outer CUDA_VISIBLE_DEVICES."""
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")
    if outer is not None:
        return [g.strip() for g in outer.split(",") if g.strip() and g.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no CUDA build: no GPUs
        return []


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def busy_elsewhere(samples: int = 5, interval: float = 0.02) -> int:
    """Tasks running or waiting for a core other than this one, now: the median of a
    few samples of Linux's ``/proc/loadavg`` runnable count (0 where there is none).
    Not the load average: that lags a minute, and would count a ``tune`` run that
    just ended."""
    import statistics

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # less this reader
        except (OSError, ValueError, IndexError):
            return 0
        if i + 1 < samples:
            time.sleep(interval)
    return max(0, int(statistics.median_low(counts)))


def default_threads(cores: int | None = None, busy: int | None = None) -> tuple[int, int]:
    """torch's CPU threads when neither ``training.threads`` nor a worker's share sets
    them, and the cores found busy: the cores this process may use, less those other
    work keeps busy, at least one. More threads than free cores is the worst case for
    torch's thread pool: at a load of about 6 on 2 cores, the quickstart took 594 s
    with 2 threads and 257 s with 1 (docs/benchmarks.md)."""
    cores = cores or usable_cores()
    if busy is None:
        busy = busy_elsewhere()
    return max(1, min(cores, cores - busy)), busy


def plan_workers(
    workers: int | None,
    gpus: str | None,
    cores: int | None = None,
    threads: int | None = None,
    per_gpu: int | None = None,
) -> WorkerPlan:
    """Resolve ``--workers``/``--gpus``/``--trials-per-gpu`` to a plan.

    Args:
        workers: ``--workers N`` (CPU workers), or None.
        gpus: ``--gpus`` as given: ``all`` or a comma-separated list of ids, or None.
        cores: CPU cores to share (default: ``os.cpu_count()``), evenly between all workers.
        threads: ``training.threads`` from the study file; overrides the fair share.
        per_gpu: ``--trials-per-gpu N``: N workers pinned to each GPU (default 1).

    Raises:
        ConfigError: for a bad value, naming the flag and the fix.
    """
    cores = cores or os.cpu_count() or 1
    if workers is not None and gpus is not None:
        raise ConfigError("give either --workers N (CPU) or --gpus IDS (one worker per GPU), not both")
    if per_gpu is not None and (gpus is None or per_gpu < 1):
        raise ConfigError(
            f"--trials-per-gpu {per_gpu}: it needs --gpus and an integer >= 1 (on CPU, --workers N "
            "starts N workers)"
        )
    if gpus is not None:
        visible = _visible_gpus()
        if gpus.strip().lower() == "all":
            if not visible:
                raise ConfigError(
                    "--gpus all, but no CUDA GPU is visible (torch.cuda.device_count() is 0): use "
                    "--workers N on CPU, or check the driver and CUDA_VISIBLE_DEVICES"
                )
            ids: list[str | None] = list(visible)
        else:
            named = [g.strip() for g in gpus.split(",")]
            bad = [g for g in named if not g.isdigit()]
            if bad or not named:
                raise ConfigError(f"--gpus must be 'all' or comma-separated GPU ids like 0,1,2, got {gpus!r}")
            if len(set(named)) != len(named):
                raise ConfigError(f"--gpus lists a GPU twice ({gpus!r}): give each GPU id once")
            missing = [g for g in named if g not in visible]
            if missing:
                raise ConfigError(
                    f"--gpus {gpus}: GPU {', '.join(str(g) for g in missing)} is not visible (visible: "
                    f"{', '.join(visible) or 'none'}); use --gpus all, or --workers N on CPU"
                )
            ids = list(named)
        ids = [g for g in ids for _ in range(per_gpu or 1)]  # N workers on each GPU, side by side
    else:
        n = 1 if workers is None else workers
        if n < 1:
            raise ConfigError(f"--workers must be an integer >= 1, got {n}")
        ids = [None] * n
    share = threads or max(1, cores // len(ids))
    return WorkerPlan(gpus=tuple(ids), threads=share)


def worker_argv(base: Sequence[str], rank: int, threads: int) -> list[str]:
    """The command line of worker ``rank``: the user's ``tune run`` arguments, no refit."""
    return [
        sys.executable,
        "-m",
        "tuner.cli",
        "run",
        *base,
        "--no-refit",
        "--worker-rank",
        str(rank),
        "--threads",
        str(threads),
    ]


def worker_env(gpu: str | None, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    # BLAS/OpenMP pools outside torch too, so N workers do not oversubscribe the cores.
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def init_study(config: StudyConfig, allow_changes: bool = False, say: Callable[[str], None] = print) -> None:
    """Create (or join and check) the study and its MLflow parent run once, before
    the workers start: so a refused join is reported once, not N times, and N
    workers never race to create the same MLflow store or storage tables."""
    import optuna

    from tuner.run.prepare import prepare
    from tuner.run.stores import open_stores
    from tuner.run.study import open_study, opened, shared_parent_run
    from tuner.tracking.params import study_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prep = prepare(config)
    storage, tracker = open_stores(config)
    study, created = open_study(
        config,
        storage,
        split_fp=prep.split_fp,
        sampler=None,
        pruner=None,
        allow_changes=allow_changes,
    )
    shared_parent_run(
        study, tracker, created, study_params(config), {"tuner.split_fingerprint": prep.split_fp}
    )
    say(opened(config, created))


def run_workers(  # type: ignore[no-untyped-def]
    plan: WorkerPlan, base: Sequence[str], config_url: str, study_name: str, say=print
) -> int:
    """Start the workers, wait for all of them, forward Ctrl-C/SIGTERM.

    Returns:
        0 when at least one worker finished (the study carries on without the
        others, and their trials are reaped), 130 when interrupted, else the first
        failing worker's exit code.

    Raises:
        TunerError: when a worker cannot be started.
    """
    procs: list[subprocess.Popen[bytes]] = []
    forwarded = {"signal": 0}

    def forward(signum: int, frame: object) -> None:
        # Once: a second Ctrl-C must not interrupt the workers' own clean-up.
        if forwarded["signal"]:
            return
        forwarded["signal"] = signum
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    old_int = signal.signal(signal.SIGINT, forward)
    old_term = signal.signal(signal.SIGTERM, forward)
    try:
        for rank, gpu in enumerate(plan.gpus):
            where = f"GPU {gpu}" if gpu is not None else "CPU"
            say(f"worker {rank}: {where}, {plan.threads} torch thread(s)")
            try:
                # Own process group: a terminal Ctrl-C reaches the parent only, which
                # forwards it exactly once.
                procs.append(
                    subprocess.Popen(
                        worker_argv(base, rank, plan.threads),
                        env=worker_env(gpu, plan.threads),
                        process_group=0,
                    )
                )
            except OSError as e:
                forward(signal.SIGTERM, None)
                raise TunerError(f"cannot start worker {rank}: {e}") from None
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:  # the parent itself died of an error: leave no worker behind
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    if forwarded["signal"] or 130 in codes:
        return 130
    bad = [(rank, c) for rank, c in enumerate(codes) if c != 0]
    for rank, code in bad:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        say(f"worker {rank} {how}")
    if len(bad) == len(codes):
        return bad[0][1] if bad[0][1] > 0 else 1
    if bad:
        # The study carried on without them; their trials are failed and retried
        # once their heartbeat is stale (see reap_dead_workers).
        reap_dead_workers(config_url, study_name, [p.pid for p in procs], say=say)
    return 0


def reap_dead_workers(url: str, study_name: str, pids: Sequence[int], say=print) -> int:  # type: ignore[no-untyped-def]
    """Fail the trials our dead workers left RUNNING, once their heartbeat is stale.

    Optuna fails a stale trial only when some worker starts a new trial; after the
    last worker stopped nobody would. Waits at most the grace period. Returns how
    many such trials are still RUNNING (always the case on journal storages, which
    have no heartbeat).
    """
    import warnings

    import optuna

    from tuner.run.identity import worker_name
    from tuner.storage.backends import GRACE_PERIOD, HEARTBEAT_INTERVAL, build_storage
    from tuner.storage.urls import supports_heartbeat

    names = {worker_name(pid) for pid in pids}
    study = optuna.load_study(study_name=study_name, storage=build_storage(url))
    deadline = time.monotonic() + GRACE_PERIOD + 2 * HEARTBEAT_INTERVAL
    while True:
        running = [
            t
            for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if t.user_attrs.get("worker") in names
        ]
        if not running or not supports_heartbeat(url) or time.monotonic() > deadline:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        time.sleep(min(1.0, HEARTBEAT_INTERVAL))
    if running:
        say(
            f"{len(running)} trial(s) of dead workers still RUNNING: this storage has no heartbeat "
            "(journal/Redis), so they are never retried; use sqlite:// or postgresql:// for crash recovery"
        )
    return len(running)
