"""tuner's own cost per trial, against two loops running the same objective.

Every arm trains the same deterministic job per trial (the cross-validated objective
on digits: a small MLP, 2 folds, fixed epochs, reporting each epoch's validation score
to Optuna; the searched parameters do not change the compute, and pruning is off):

  (a) bare:  a hand-written Optuna loop, in-memory storage, no logging;
  (b) tuner as it runs by default: ``run_study`` with the embedded SQLite storage and
      MLflow on (per-epoch curves, diagnoses, the progress line); here, one torch
      thread on a machine with more cores, a trial's reports and attributes are
      written by a child process (``tuner.run.write_behind.write_mode``);
  (b') tuner with every storage write made on the training process
      (``TUNER_STORAGE_WRITER=inline``, the default when torch takes every core);
  (c) the user's alternative: a hand-written Optuna loop on an SQLite storage, as
      Optuna's docs show it, with optuna-integration's ``MLflowCallback``.

The arms run interleaved, in ``--rounds`` rounds (the machine's load drifts between
arms run one after the other); per-trial figures are medians over the rounds.

For trials of about 0.3 s and 1 s (``--lengths``; the epochs are calibrated on this
machine first), prints per trial (steady state, between the first trial's start and
the last one's end): tuner's added cost (b - a, target <= 30 ms) split into the
sampler, the storage, MLflow, the wait for the storage writer and the rest (time on the
training thread between the warm trials' end and the last one's); b / a (target <= 1.10 at 0.3 s, <= 1.03 at
1 s) and b / c (target <= 0.7). ``--prefill N`` adds the same per-trial cost once the
study already holds N trials (with fold pruning on but never pruning, so each trial
builds the best trial's reference as the default config does). Needs ``pip install optuna-integration``.
Run: ``python benchmarks/overhead.py [--trials 80] [--prefill 10000]``.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import optuna  # noqa: E402
import torch  # noqa: E402

from tuner.config import validate_config  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "lr": {"float": [1e-3, 1e-2], "log": True},
    "dropout": {"float": [0.0, 0.3]},
    "weight_decay": {"float": [1e-6, 1e-3], "log": True},
}


# Fold pruning on, but never pruning: a fold check still builds the best trial's
# reference (as the default config does), and every trial still trains every fold.
NEVER_PRUNING = {"enabled": True, "margin": 1e9}


def study_doc(name: str, epochs: int, trials: int, fold_pruning: dict | None = None) -> dict:
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
        "fold_pruning": fold_pruning or {"enabled": False},
        "mlflow": {"log_model": False},
    }


class Timers:
    """Accumulate seconds spent inside wrapped callables, by bucket."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = collections.defaultdict(float)
        self.depth: dict[str, int] = collections.defaultdict(int)
        self._undo: list = []
        self.armed = False  # counting only in a study's steady state (see mark)
        self.first = 0  # the number of the study's first timed trial (after a prefill)

    def mark(self, number: int, last: int) -> None:
        """After trial ``number`` of a study whose last trial is ``last``: count from the
        end of the warm trials to the end of the last one, the window ``steady`` times."""
        self.armed = self.first + WARM - 1 <= number < last

    def wrap(self, owner, name: str, bucket: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*a, **k):
            if not self.armed:
                return original(*a, **k)
            # Time on the training (main) thread is what a trial waits for; other threads'
            # (Optuna's heartbeat) is counted apart, as "<bucket> behind".
            key = bucket if threading.current_thread() is threading.main_thread() else f"{bucket} behind"
            self.depth[key] += 1
            start = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                self.depth[key] -= 1
                if self.depth[key] == 0:  # nested calls count once
                    self.seconds[key] += time.perf_counter() - start

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
    # the trial's end waiting for the storage writer child to apply its last writes
    from tuner.run.write_behind import WriteBehind

    t.wrap(WriteBehind, "flush", "writer wait")
    # the steady state: from the end of the warm trials to the last one's
    from tuner.run.trial import AfterTrial

    original = AfterTrial.__call__

    def after(self, st, ft):
        try:
            return original(self, st, ft)
        finally:
            t.mark(ft.number, self.config.budget.n_trials - 1)

    AfterTrial.__call__ = after
    t._undo.append((AfterTrial, "__call__", original))


class _Quiet:
    """A reporter that shows nothing: the bare loops have no progress line or MLflow."""

    def epoch(self, record, step):
        pass

    def fold_done(self, fold, score):
        pass


def bare(cfg, n_trials: int, timers: Timers) -> float:
    """(a): the same objective in a hand-written loop, in-memory, no logging."""
    from objectives.cv import CrossValidatedObjective
    from tuner.run.runner import prepare

    prep = prepare(cfg)
    objective = CrossValidatedObjective(cfg, prep.dataset, prep.splits, torch.device("cpu"))
    # NopPruner: Optuna's default MedianPruner would stop most bare trials early, while the
    # tuner arm runs with pruning off; both arms must train every epoch.
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0), pruner=optuna.pruners.NopPruner()
    )
    start = time.perf_counter()
    study.optimize(
        lambda tr: objective(tr, cfg.search_space.suggest(tr), _Quiet()),
        n_trials=n_trials,
        callbacks=[lambda st, ft: timers.mark(ft.number, n_trials - 1)],
    )
    return time.perf_counter() - start, steady(study.trials)


WARM = 2  # trials each arm runs before its steady state is timed


def steady(trials) -> float:
    """Seconds per trial from the end of the first ``WARM`` trials to the last one's end:
    the per-trial cost once a study runs, without process start-up (the writer processes
    importing their libraries), the first trials' warm-up or the end's plots."""
    trials = sorted((t for t in trials if t.datetime_start and t.datetime_complete), key=lambda t: t.number)
    if len(trials) > WARM:
        start = trials[WARM - 1].datetime_complete
        trials = trials[WARM:]
        return (max(t.datetime_complete for t in trials) - start).total_seconds() / len(trials)
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
        folds = [rnd.uniform(0.8, 0.95) for _ in range(2)]
        trials.append(
            create_trial(
                state=TrialState.COMPLETE,
                value=sum(folds) / 2,
                params=params,
                distributions=dists,
                user_attrs={
                    "fold_scores": folds,
                    "cv_mean": sum(folds) / 2,
                    "cv_std": abs(folds[0] - folds[1]) / 2,
                },
            )
        )
    study.add_trials(trials)


def users_loop(cfg, n_trials: int, base: Path) -> tuple[float, float]:
    """(c): what a user would otherwise write: the same objective, reporting the same
    per-epoch values, in a hand-written loop on an SQLite storage as Optuna's docs show
    it, with optuna-integration's ``MLflowCallback`` logging each trial to MLflow."""
    import contextlib
    import io
    import logging

    from optuna_integration.mlflow import MLflowCallback

    from objectives.cv import CrossValidatedObjective
    from tuner.run.runner import prepare

    prep = prepare(cfg)
    objective = CrossValidatedObjective(cfg, prep.dataset, prep.splits, torch.device("cpu"))
    name = f"user-{cfg.name}"
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{base / (name + '.db')}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
    )
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    callback = MLflowCallback(
        tracking_uri=f"sqlite:///{base / (name + '-mlflow.db')}", metric_name="cv_score"
    )
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        study.optimize(
            lambda tr: objective(tr, cfg.search_space.suggest(tr), _Quiet()),
            n_trials=n_trials,
            callbacks=[callback],
        )
    return time.perf_counter() - start, steady(study.get_trials(deepcopy=False))


def epochs_for(seconds: float, base: Path) -> int:
    """Epochs per fold that make one bare trial (2 folds) last about ``seconds``."""
    cfg = validate_config(study_doc("calibrate", 4, 3), base, "calibrate.yaml")
    _, per = bare(cfg, 3, Timers())
    return max(1, round(seconds / (per / 4)))


ARMS = {
    "bare": "(a) bare optuna, in-memory, no logging",
    "tuner": "(b) tuner (sqlite + mlflow, curves, lockbox)",
    "inline": "(b') tuner, storage writes inline",
    "user": "(c) user's loop (sqlite + MLflowCallback)",
}


def _tuner_arm(cfg, timers: Timers, writer: str | None) -> float:
    """tuner's per-trial seconds, with its storage writes made as by default (None),
    ``inline`` or by a child ``process`` (``TUNER_STORAGE_WRITER``)."""
    old = os.environ.get("TUNER_STORAGE_WRITER")
    if writer is None:
        os.environ.pop("TUNER_STORAGE_WRITER", None)
    else:
        os.environ["TUNER_STORAGE_WRITER"] = writer
    try:
        return through_tuner(cfg, timers)[1]
    finally:
        if old is None:
            os.environ.pop("TUNER_STORAGE_WRITER", None)
        else:
            os.environ["TUNER_STORAGE_WRITER"] = old


def compare(length: float, n: int, rounds: int, base: Path, timers: Timers) -> dict[str, float]:
    """The arms on trials of about ``length`` seconds, interleaved in ``rounds`` rounds of
    ``n // rounds`` trials each (the machine's load drifts between arms run one after the
    other); per-trial seconds are the median over the rounds, ratios are per round."""
    epochs = epochs_for(length, base)
    tag = f"{length:g}s".replace(".", "_")
    per: dict[str, list[float]] = {arm: [] for arm in ARMS}
    spent: dict[str, float] = collections.defaultdict(float)  # (b) - (a), by library
    m = max(WARM + 1, n // rounds)
    for r in range(rounds):
        cfg = validate_config(study_doc(f"overhead-{tag}-{r}", epochs, m), base, f"{tag}-{r}.yaml")
        timers.seconds.clear()
        per["bare"].append(bare(cfg, m, timers)[1])
        for k, v in timers.seconds.items():
            spent[k] -= v
        timers.seconds.clear()
        per["tuner"].append(_tuner_arm(cfg, timers, None))
        for k, v in timers.seconds.items():
            spent[k] += v
        icfg = validate_config(study_doc(f"inline-{tag}-{r}", epochs, m), base, f"i{tag}-{r}.yaml")
        per["inline"].append(_tuner_arm(icfg, Timers(), "inline"))

        per["user"].append(users_loop(cfg, m, base)[1])
    med = {arm: statistics.median(v) for arm, v in per.items()}
    ratio = lambda x, y: statistics.median(p / q for p, q in zip(per[x], per[y], strict=True))  # noqa: E731
    print(
        f"\ntrials of ~{length:g} s: digits mlp, 2 folds x {epochs} epochs, 1 thread, {rounds} rounds x {m} trials"
    )
    for arm, label in ARMS.items():
        spread = ", ".join(f"{v * 1000:.0f}" for v in per[arm])
        print(f"  {label:<46} {med[arm] * 1000:8.1f} ms per trial  (rounds: {spread})")
    added = statistics.median((b - a) * 1000 for a, b in zip(per["bare"], per["tuner"], strict=True))
    print(f"  tuner's added cost per trial (b - a):       {added:7.1f} ms   (target <= 30 ms)")
    target = 1.10 if length < 0.65 else 1.03
    print(
        f"  ratio tuner / bare (b / a):                 {ratio('tuner', 'bare'):7.3f}   (target <= {target:.2f})"
    )
    print(f"  ratio tuner / user's loop (b / c):          {ratio('tuner', 'user'):7.3f}   (target <= 0.70)")
    print(f"  ratio inline writes / default (b' / b):     {ratio('inline', 'tuner'):7.3f}")
    total = (m - WARM) * rounds  # the library times cover the steady state only
    print("  where (b - a) goes, time on the training thread per steady-state trial (all rounds):")
    for bucket in ("sampler", "storage", "mlflow", "writer wait"):
        print(f"    {bucket:<8} {spent.get(bucket, 0.0) / total * 1000:7.1f} ms")
    print(
        f"    storage on other threads of this process (Optuna's heartbeat): {spent.get('storage behind', 0.0) / total * 1000:.1f} ms"
    )
    print("    (writer wait: the trial's end waiting for the storage writer child; the rest of b - a is")
    print("    tuner's own code, and the helper processes sharing the machine)")
    return {**med, "added_ms": added}


def growth(args, base: Path, timers: Timers) -> None:
    """tuner's per-trial cost once the study already holds ``--prefill`` trials."""
    m = args.prefill_trials
    big = validate_config(study_doc("big", args.epochs, args.prefill + m, NEVER_PRUNING), base, "big.yaml")
    prefill(big, args.prefill)
    timers.seconds.clear()
    timers.first = args.prefill
    _, per_big = through_tuner(big, timers, skip=args.prefill)
    timers.first = 0
    g = dict(timers.seconds)
    small = validate_config(study_doc("small", args.epochs, m, NEVER_PRUNING), base, "small.yaml")
    timers.seconds.clear()
    _, per_small = through_tuner(small, timers)
    s = dict(timers.seconds)
    ms = lambda x: x / (m - WARM) * 1000  # noqa: E731  (steady-state trials)
    print(f"\nwith {args.prefill} trials already in the study ({m} new trials), per trial:")
    print(f"  whole trial:     {per_big * 1000:7.1f} ms   (empty study: {per_small * 1000:7.1f} ms)")
    for bucket in ("sampler", "storage", "mlflow"):
        print(
            f"  {bucket:<15}  {ms(g.get(bucket, 0)):7.1f} ms   (empty study: {ms(s.get(bucket, 0)):7.1f} ms)"
        )
    grow = (per_big - per_small) * 1000 - (ms(g.get("sampler", 0)) - ms(s.get("sampler", 0)))
    print(f"  growth beyond the sampler's own: {grow:+.1f} ms per trial")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=80, help="trials per arm")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds the trials are split into")
    ap.add_argument(
        "--lengths", type=float, nargs="+", default=[0.3, 1.0], help="bare trial lengths to compare, seconds"
    )
    ap.add_argument("--prefill", type=int, default=0, help="trials already in the study (growth check)")
    ap.add_argument("--prefill-trials", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=12, help="epochs per fold in the growth check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from tuner.run.write_behind import write_mode

    print(
        f"(b) writes a trial's reports and attributes: {write_mode()} (1 torch thread, {os.cpu_count()} cores)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        timers = Timers()
        instrument(timers)
        # warm-up (imports, first allocations) outside every measurement
        bare(validate_config(study_doc("warm", 2, 2), base, "w.yaml"), 2, timers)
        for length in args.lengths:
            compare(length, args.trials, args.rounds, base, timers)
        if args.prefill:
            growth(args, base, timers)
        timers.undo()


if __name__ == "__main__":
    main()
