"""Overhead of tuner against a hand-written Optuna loop running the same objective.

Both arms train the same deterministic job per trial (the cross-validated
objective on digits: a small MLP, 2 folds, fixed epochs; the searched parameters
do not change the amount of compute, and pruning is off):

  (a) bare:  optuna in-memory storage, no logging, no progress, no tuner layers;
  (b) tuner: ``run_study`` with the embedded SQLite storage and MLflow logging on.

Prints wall(b)/wall(a) and tuner's per-trial overhead in ms, split into the
sampler, the storage, MLflow and the rest (by timing those libraries' public
entry points in-process), then the same per-trial overhead once the study already
holds many trials. Run: ``python benchmarks/overhead.py [--trials 200] [--prefill 2000]``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import optuna  # noqa: E402
import torch  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "lr": {"float": [1e-3, 1e-2], "log": True},
    "dropout": {"float": [0.0, 0.3]},
    "weight_decay": {"float": [1e-6, 1e-3], "log": True},
}


def study_doc(name: str, epochs: int, trials: int) -> dict:
    return {
        "name": name,
        "seed": 0,
        "data": {"source": "sklearn:digits", "folds": 2},
        "model": {"family": "mlp"},
        "training": {"max_epochs": epochs, "batch_size": 128, "threads": 1},
        "search_space": dict(SPACE, width=32),
        "budget": {"n_trials": trials},
        "sampler": {"name": "TPESampler", "seed": 0},
        "pruner": None,
        "fold_pruning": {"enabled": False},
        "mlflow": {"log_model": False},
    }


class Timers:
    """Accumulate seconds spent inside wrapped callables, by bucket."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.depth: dict[str, int] = collections.defaultdict(int)
        self._undo: list = []

    def wrap(self, owner, name: str, bucket: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*a, **k):
            self.depth[bucket] += 1
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                self.depth[bucket] -= 1
                if self.depth[bucket] == 0:  # nested calls count once
                    self.seconds[bucket] += time.perf_counter() - start

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def wrap_public(self, cls, bucket: str) -> None:
        for name, value in list(vars(cls).items()):
            if callable(value) and not name.startswith("_"):
                self.wrap(cls, name, bucket)

    def undo(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def instrument(t: Timers) -> None:
    from mlflow.tracking import MlflowClient

    t.wrap_public(optuna.samplers.TPESampler, "sampler")
    t.wrap_public(optuna.storages.RDBStorage, "storage")
    t.wrap_public(optuna.storages.InMemoryStorage, "storage")
    t.wrap_public(MlflowClient, "mlflow")
    # trial runs written by tuner.tracking.writer's child: what the study process still spends
    from tuner.tracking.writer import RemoteTrialRun

    t.wrap_public(RemoteTrialRun, "mlflow")


def bare(cfg, n_trials: int, timers: Timers) -> float:
    """(a): the same objective in a hand-written loop, in-memory, no logging."""
    from objectives.cv import CrossValidatedObjective
    from tuner.run.runner import prepare

    prep = prepare(cfg)

    class Quiet:
        def epoch(self, record, step):
            pass

        def fold_done(self, fold, score):
            pass

    objective = CrossValidatedObjective(cfg, prep.dataset, prep.splits, torch.device("cpu"))
    # NopPruner: Optuna's default MedianPruner would stop most bare trials early, while the
    # tuner arm runs with pruning off; both arms must train every epoch.
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0), pruner=optuna.pruners.NopPruner()
    )
    start = time.perf_counter()
    study.optimize(lambda tr: objective(tr, cfg.search_space.suggest(tr), Quiet()), n_trials=n_trials)
    return time.perf_counter() - start, steady(study.trials)


def steady(trials) -> float:
    """Seconds per trial between the first trial's start and the last one's end:
    the per-trial cost once a study runs, without process start-up or the end's plots."""
    trials = [t for t in trials if t.datetime_start and t.datetime_complete]
    span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
    return span.total_seconds() / len(trials)


def through_tuner(cfg, timers: Timers, skip: int = 0) -> tuple[float, float]:
    import contextlib
    import io

    from tuner.run.runner import run_study

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        run_study(cfg, refit=False, say=lambda s: None, live=False)
    wall = time.perf_counter() - start
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    return wall, steady(study.get_trials(deepcopy=False)[skip:])


def prefill(cfg, n: int) -> None:
    """Put ``n`` finished trials into the study's storage, as a long study would have."""
    import random

    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from tuner.run.runner import prepare
    from tuner.run.study import open_study
    from tuner.storage.backends import build_storage

    rnd = random.Random(0)
    prep = prepare(cfg)
    storage = build_storage(cfg.storage_url)
    study, _ = open_study(
        cfg, storage, split_fp=prep.split_fp, sampler=optuna.samplers.TPESampler(seed=0), pruner=None
    )
    dists = {k: FloatDistribution(*v["float"], log=v.get("log", False)) for k, v in SPACE.items()}
    trials = []
    for _ in range(n):
        params = {
            k: (d.low * (d.high / d.low) ** rnd.random() if d.log else rnd.uniform(d.low, d.high))
            for k, d in dists.items()
        }
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                value=rnd.uniform(0.8, 0.95),
                params=params,
                distributions=dists,
                user_attrs={"fold_scores": [0.9, 0.9], "cv_mean": 0.9, "cv_std": 0.0},
            )
        )
    study.add_trials(trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per fold (sets the job's size)")
    ap.add_argument("--prefill", type=int, default=2000, help="trials already in the study, second run")
    ap.add_argument("--prefill-trials", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from tuner.config import validate_config

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        cfg = validate_config(study_doc("overhead", args.epochs, args.trials), base, "bench.yaml")
        timers = Timers()
        instrument(timers)
        # warm-up (imports, first allocations) outside both measurements
        bare(validate_config(study_doc("warm", args.epochs, 2), base, "w.yaml"), 2, timers)
        timers.seconds.clear()
        wall_a, per_a = bare(cfg, args.trials, timers)
        a = dict(timers.seconds)
        timers.seconds.clear()
        wall_b, per_b = through_tuner(cfg, timers)
        b = dict(timers.seconds)
        n = args.trials
        per_trial_ms = (per_b - per_a) * 1000
        print(f"trials: {n}, job: digits mlp, 2 folds x {args.epochs} epochs, 1 thread")
        print(f"(a) bare optuna, in-memory:   whole run {wall_a:7.2f} s   per trial {per_a * 1000:7.1f} ms")
        print(f"(b) tuner, sqlite + mlflow:   whole run {wall_b:7.2f} s   per trial {per_b * 1000:7.1f} ms")
        print(
            f"ratio wall(b)/wall(a): whole run {wall_b / wall_a:.3f} (start-up and end-of-study plots "
            f"included), per trial {per_b / per_a:.3f}   (target <= 1.03)"
        )
        print(
            f"tuner overhead per trial: {per_trial_ms:.1f} ms; ratio 1.03 is reached by trials of "
            f"{per_trial_ms / 0.03 / 1000:.1f} s or longer"
        )
        print("  split (time inside each library, b - a, per trial):")
        for bucket in ("sampler", "storage", "mlflow"):
            d = (b.get(bucket, 0.0) - a.get(bucket, 0.0)) / n * 1000
            print(
                f"    {bucket:<8} {d:7.1f} ms   [a {a.get(bucket, 0) / n * 1000:.1f}, "
                f"b {b.get(bucket, 0) / n * 1000:.1f}]"
            )
        rest = per_trial_ms - sum(
            (b.get(k, 0) - a.get(k, 0)) / n * 1000 for k in ("sampler", "storage", "mlflow")
        )
        print(f"    rest     {rest:7.1f} ms   (diagnosis, progress, python between the libraries)")

        if args.prefill:
            timers.seconds.clear()
            big = validate_config(
                study_doc("big", args.epochs, args.prefill + args.prefill_trials), base, "big.yaml"
            )
            prefill(big, args.prefill)
            timers.seconds.clear()
            _, per_big = through_tuner(big, timers, skip=args.prefill)
            g = dict(timers.seconds)
            m = args.prefill_trials
            small = validate_config(study_doc("small", args.epochs, m), base, "small.yaml")
            timers.seconds.clear()
            _, per_small = through_tuner(small, timers)
            s = dict(timers.seconds)
            ms = lambda x: x / m * 1000  # noqa: E731
            print(f"\nwith {args.prefill} trials already in the study ({m} new trials), per trial:")
            print(f"  whole trial:     {per_big * 1000:7.1f} ms   (empty study: {per_small * 1000:7.1f} ms)")
            for bucket in ("sampler", "storage", "mlflow"):
                print(
                    f"  {bucket:<15}  {ms(g.get(bucket, 0)):7.1f} ms   (empty study: {ms(s.get(bucket, 0)):7.1f} ms)"
                )
            grow = (per_big - per_small) * 1000 - (ms(g.get("sampler", 0)) - ms(s.get("sampler", 0)))
            print(f"  growth beyond the sampler's own: {grow:+.1f} ms per trial")
        timers.undo()


if __name__ == "__main__":
    main()
