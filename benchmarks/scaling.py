"""Scaling of distributed studies, as ratios against a baseline measured in the same run.

Three measurements (pick with --only; all by default):

- ``workers``: trials/hour of the same tiny study with 1 vs 2 local workers
  (``tune --workers N``, one torch thread each) on PostgreSQL and on the embedded
  default (SQLite). Throughput counts from the first trial's start to the last
  trial's end, so process start-up (imports) is not charged to the trials.
- ``overhead``: per-trial storage cost of a no-op objective through tuner's path
  (Optuna ask/tell with heartbeat + tuner's budget count after every trial) with
  100, 1,000 and 10,000 trials already in the study, against the old budget count
  (``study.get_trials(states=...)``).
- ``embedded``: SQLite vs Optuna's journal file, per-trial cost of a no-op objective
  with 20 reports, for 1 and 2 processes writing the same study.

    python benchmarks/scaling.py                 # everything (~10 minutes on 2 cores)
    python benchmarks/scaling.py --only overhead --sizes 100,1000

The machine may be shared: the script prints the load average before and after.
PostgreSQL: a throwaway database on 127.0.0.1:5432 (user postgres), dropped after.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PG = "postgresql://postgres@127.0.0.1:5432"
MLFLOW = True  # --no-mlflow: measure the study storage alone


@contextmanager
def pg_database():  # type: ignore[no-untyped-def]
    import psycopg2

    name = f"tuner_bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG}/{name}"
    finally:
        conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


# ----------------------------------------------------------------------------- workers


def _study_file(tmp: Path, url: str, n_trials: int, epochs: int = 2) -> Path:
    import yaml

    from tests.conftest import tiny_study

    doc = tiny_study(
        **{"data.source": "sklearn:digits", "training.max_epochs": epochs, "budget.n_trials": n_trials}
    )
    doc["storage"] = url
    doc["mlflow"] = {"enabled": MLFLOW, "log_model": False}
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _throughput(url: str, workers: int, n_trials: int, epochs: int) -> tuple[float, int]:
    """Trials/hour from the first trial start to the last trial end."""
    import optuna

    with tempfile.TemporaryDirectory() as tmp:
        study_file = _study_file(Path(tmp), url, n_trials, epochs)
        cmd = [sys.executable, "-m", "tuner.cli", "run", str(study_file), "--no-refit"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        subprocess.run(cmd, check=True, cwd=tmp, env=env, stdout=subprocess.DEVNULL)
        trials = [
            t
            for t in optuna.load_study(study_name="tiny", storage=url).get_trials()
            if t.datetime_complete is not None
        ]
    # Steady state: while every worker is up (their imports end at different times on
    # a loaded machine), i.e. from the last worker's first start to the first worker's
    # last end; count the trials that ran wholly inside that window.
    by_worker: dict[str, list[Any]] = {}
    for t in trials:
        by_worker.setdefault(t.user_attrs.get("worker", "?"), []).append(t)
    start = max(min(t.datetime_start for t in ts) for ts in by_worker.values())
    end = min(max(t.datetime_complete for t in ts) for ts in by_worker.values())
    inside = [t for t in trials if t.datetime_start >= start and t.datetime_complete <= end]
    if len(by_worker) == 1 or len(inside) < 4:
        start = min(t.datetime_start for t in trials)
        end = max(t.datetime_complete for t in trials)
        inside = trials
    return 3600.0 * len(inside) / (end - start).total_seconds(), len(inside)


def bench_workers(n_trials: int, epochs: int) -> None:
    print(
        f"\n== trials/hour, 1 vs 2 workers (digits mlp, {epochs} epochs x 2 folds, {n_trials} trials, 1 thread each)"
    )
    for kind in ("sqlite", "postgresql"):
        rates = {}
        for workers in (1, 2):
            if kind == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    rates[workers], n = _throughput(f"sqlite:///{tmp}/s.db", workers, n_trials, epochs)
            else:
                with pg_database() as url:
                    rates[workers], n = _throughput(url, workers, n_trials, epochs)
            print(
                f"  {kind:10s} {workers} worker(s): {rates[workers]:8.0f} trials/h ({n} trials)", flush=True
            )
        print(f"  {kind:10s} speed-up 2 vs 1 workers: {rates[2] / rates[1]:.2f}x   (target >= 1.85x)")


# ----------------------------------------------------------------------------- overhead


def _prefill(study: Any, n: int) -> None:
    import optuna

    dist = optuna.distributions.FloatDistribution(0.0, 1.0)
    batch = [
        optuna.trial.create_trial(
            params={"x": (i % 997) / 997}, distributions={"x": dist}, value=float(i % 13)
        )
        for i in range(n)
    ]
    study.add_trials(batch)


def _measure(url: str, prefill: int, k: int) -> dict[str, float]:
    """On one study with ``prefill`` trials: seconds per no-op trial through tuner's
    path (ask/tell with heartbeat + the budget count) with the new and the old count,
    and the median cost of each count alone."""
    import statistics

    import optuna

    from tuner.run.budget import count_finished
    from tuner.storage.backends import build_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = build_storage(url)
    name = f"noop-{uuid.uuid4().hex[:8]}"
    study = optuna.create_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(0))
    _prefill(study, prefill)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    counts = {
        "new": lambda st: count_finished(st, storage),
        "old": lambda st: len(st.get_trials(deepcopy=False, states=finished)),
    }
    out: dict[str, float] = {}
    # warm Optuna's trial cache the way a running worker has it
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    for kind, count in counts.items():
        started = time.perf_counter()
        study.optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=k, callbacks=[lambda st, _t, c=count: c(st)]
        )
        out[kind] = (time.perf_counter() - started) / k
        samples = []
        for _ in range(15):
            t0 = time.perf_counter()
            count(study)
            samples.append(time.perf_counter() - t0)
        out[f"{kind}_count"] = statistics.median(samples)
    if hasattr(storage, "engine"):
        storage.engine.dispose()  # the server's connection slots are shared
    return out


def bench_overhead(sizes: list[int], k: int, storages: list[str]) -> None:
    print(f"\n== per-trial storage overhead of a no-op objective ({k} trials timed per cell)")
    print("   per trial = ask/tell (+heartbeat) + budget count; count = the budget count alone (median)")
    print("   new = tuner's count (one COUNT query on RDB storages); old = get_trials(states=...)")
    with tempfile.TemporaryDirectory() as tmp, pg_database() as pg:
        for kind, url in (
            ("sqlite", f"sqlite:///{tmp}/o.db"),
            ("journal", f"journal:///{tmp}/o.log"),
            ("postgresql", pg),
        ):
            if kind not in storages:
                continue
            for n in sizes:
                m = _measure(url, n, k)
                print(
                    f"  {kind:10s} {n:6d} in study: per trial new {1000 * m['new']:7.2f} ms, "
                    f"old {1000 * m['old']:7.2f} ms | count new {1000 * m['new_count']:6.2f} ms, "
                    f"old {1000 * m['old_count']:6.2f} ms",
                    flush=True,
                )


# ----------------------------------------------------------------------------- embedded


def _reporting_worker(url: str, name: str, n: int, reports: int) -> None:
    import optuna

    from tuner.storage.backends import build_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(
        study_name=name, storage=build_storage(url), sampler=optuna.samplers.RandomSampler()
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(reports):
            trial.report(x * step, step)
        return x

    study.optimize(objective, n_trials=n)


def bench_embedded(n: int, reports: int) -> None:
    import optuna

    from tuner.storage.backends import build_storage

    print(f"\n== embedded storages: {n} no-op trials x {reports} reports in total, ms/trial (wall)")
    for procs in (1, 2):
        per: dict[str, float] = {}
        for kind in ("sqlite", "journal"):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/e.db" if kind == "sqlite" else f"journal:///{tmp}/e.log"
                optuna.create_study(study_name="e", storage=build_storage(url))
                ctx = mp.get_context("spawn")
                workers = [
                    ctx.Process(target=_reporting_worker, args=(url, "e", n // procs, reports))
                    for _ in range(procs)
                ]
                started = time.perf_counter()
                for w in workers:
                    w.start()
                for w in workers:
                    w.join()
                # process start-up included; the same for both storages
                per[kind] = (time.perf_counter() - started) / n
        print(flush=True)
        print(
            f"  {procs} process(es): sqlite {1000 * per['sqlite']:6.2f}   journal {1000 * per['journal']:6.2f}"
            f"   sqlite/journal {per['sqlite'] / per['journal']:.2f}x"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=("workers", "overhead", "embedded"))
    p.add_argument("--trials", type=int, default=24, help="trials per throughput run")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fold in the throughput study")
    p.add_argument("--sizes", default="100,1000,10000", help="trials already in the study")
    p.add_argument("--timed", type=int, default=50, help="no-op trials timed per size")
    p.add_argument("--storages", default="sqlite,journal,postgresql", help="for --only overhead")
    p.add_argument("--no-mlflow", action="store_true", help="throughput runs without MLflow tracking")
    args = p.parse_args()
    global MLFLOW
    MLFLOW = not args.no_mlflow
    print(f"load average before: {os.getloadavg()}  cores: {os.cpu_count()}")
    if args.only in (None, "embedded"):
        bench_embedded(300, 20)
    if args.only in (None, "overhead"):
        bench_overhead([int(s) for s in args.sizes.split(",")], args.timed, args.storages.split(","))
    if args.only in (None, "workers"):
        bench_workers(args.trials, args.epochs)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
