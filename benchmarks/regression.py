"""Yardsticks for ``task: regression``: what scikit-learn gets on the same held-out test split.

Data: ``sklearn.datasets.load_diabetes`` (442 rows, 10 features, target 25..346). Every arm
sees the same split, made by tuner's own splitter (``objectives.splits.make_splits`` with
``task="regression"``, ``split="kfold"`` (the regression default), test_size 0.2, 5 folds, the seed): each arm is
fitted on the 80 % outside the test split and scores the held-out 20 % ONCE.

Arms:

  dummy (mean)     ``DummyRegressor``: predicts the training mean, the floor;
  ridge (RidgeCV)  ``StandardScaler`` + ``RidgeCV(alphas=logspace(-3, 3, 13))``;
  svr (grid 48)    ``GridSearchCV`` over ``StandardScaler`` + ``SVR``: C x epsilon x gamma,
                   5-fold shuffled ``KFold``, chosen on RMSE;
  hgb (default)    ``HistGradientBoostingRegressor(random_state=seed)``;
  hgb (grid 12)    the same in a ``GridSearchCV`` over learning_rate x max_leaf_nodes;
  tuner            ``tune STUDY.yaml`` (``--tuner``, default examples/diabetes.yaml) run as a
                   subprocess on a copy of the study file in a fresh temporary directory, then
                   its lockbox (the first look at the test split) read back.

For each arm: test RMSE, MAE and R² (``sklearn.metrics``) and its seconds: for the sklearn arms
the fit (their cross-validated search included), for tuner the whole ``tune`` command (search,
refit, test scoring and process start-up). With several ``--seeds`` the split changes with the
seed; the table gives the median and the min-max over seeds. The tuner arm runs on seed 0 only
unless ``--tuner-seeds`` says otherwise (it edits the ``seed:`` key of the copied study file);
the study file must use the same split (test_size 0.2, 5 folds, kfold), or the script says so.
The last line says, on the seeds tuner ran, which sklearn arms the network beats on RMSE.
The sklearn fits run on ``--threads`` OpenMP/BLAS threads (1 by default: HGB's threads spin
against other processes on a shared machine, and its seconds went from 3 to 30).

Run: ``python benchmarks/regression.py [--seeds 0 1 2 3 4] [--skip-tuner]
[--tuner examples/diabetes.yaml] [--tuner-seeds 0 1] [--per-seed]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TEST_SIZE = 0.2
FOLDS = 5
SPLIT = "kfold"
TUNER = "tuner"


@dataclass(frozen=True)
class Score:
    """One arm's held-out scores on one seed's split."""

    rmse: float
    mae: float
    r2: float
    seconds: float


def sklearn_arms(seed: int, jobs: int) -> dict[str, Any]:
    """The scikit-learn estimators, unfitted; the searches cross-validate on 5 shuffled folds."""
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    cv = KFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    # chosen on RMSE, the metric a regression study optimizes by default (GridSearchCV's own
    # default for a regressor would be R²)
    scoring = "neg_root_mean_squared_error"
    svr = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("svr", SVR())]),
        {
            "svr__C": [1, 10, 100, 1000],
            "svr__epsilon": [0.1, 1, 5, 10],
            "svr__gamma": ["scale", 0.01, 0.1],
        },
        cv=cv,
        scoring=scoring,
        n_jobs=jobs,
    )
    hgb_grid = GridSearchCV(
        HistGradientBoostingRegressor(random_state=seed),
        {"learning_rate": [0.03, 0.1, 0.3], "max_leaf_nodes": [4, 8, 16, 31]},
        cv=cv,
        scoring=scoring,
        n_jobs=jobs,
    )
    return {
        "dummy (mean)": DummyRegressor(strategy="mean"),
        "ridge (RidgeCV)": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "svr (grid 48)": svr,
        "hgb (default)": HistGradientBoostingRegressor(random_state=seed),
        "hgb (grid 12)": hgb_grid,
    }


def score(y_true: np.ndarray, y_pred: np.ndarray, seconds: float) -> Score:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return Score(
        rmse=float(root_mean_squared_error(y_true, y_pred)),
        mae=float(mean_absolute_error(y_true, y_pred)),
        r2=float(r2_score(y_true, y_pred)),
        seconds=seconds,
    )


def run_sklearn(X: np.ndarray, y: np.ndarray, seed: int, jobs: int) -> dict[str, Score]:
    """Every sklearn arm fitted on this seed's train+validation rows, scored once on its test rows."""
    from objectives.splits import make_splits

    s = make_splits(y, test_size=TEST_SIZE, folds=FOLDS, seed=seed, task="regression", split=SPLIT)
    out = {}
    for name, est in sklearn_arms(seed, jobs).items():
        start = time.perf_counter()
        est.fit(X[s.trainval], y[s.trainval])
        seconds = time.perf_counter() - start
        out[name] = score(y[s.test], est.predict(X[s.test]), seconds)
    return out


# ---- the tuner arm ------------------------------------------------------------------------


def _tune_exe() -> Path:
    return Path(sys.executable).parent / "tune"


def _split_mismatch(doc: dict[str, Any], y: np.ndarray) -> str | None:
    """Why the study's test split differs from the sklearn arms' on the same seed, or None
    when it holds the same rows (``data.folds`` alone need not change it: it only caps the
    number of quantile bins)."""
    from objectives.splits import make_splits

    data = doc.get("data") or {}
    task, source = doc.get("task", "classification"), data.get("source")
    if task != "regression" or source != "sklearn:diabetes":
        return f"task={task!r}, data.source={source!r} (the sklearn arms: regression on sklearn:diabetes)"
    kw = {"test_size": data.get("test_size", TEST_SIZE), "folds": data.get("folds", FOLDS)}
    split, seed = data.get("split", SPLIT), doc.get("seed", 0)
    try:
        theirs = make_splits(y, seed=seed, task="regression", split=split, **kw).test
    except Exception as e:  # a split the splitter refuses: the study itself will say why
        return f"its split could not be made here: {e}"
    ours = make_splits(y, test_size=TEST_SIZE, folds=FOLDS, seed=seed, task="regression", split=SPLIT).test
    if np.array_equal(np.sort(theirs), np.sort(ours)):
        return None
    return (
        f"data.test_size={kw['test_size']}, data.folds={kw['folds']}, data.split={split!r} draw "
        f"another test split than the sklearn arms' ({TEST_SIZE}, {FOLDS}, {SPLIT!r})"
    )


def _fingerprint_note(record: dict[str, Any] | None, doc: dict[str, Any]) -> str | None:
    """Whether ``tune`` really scored the split ``objectives.splits`` makes from the study's
    settings: the lockbox record's split fingerprint against the one computed here."""
    from objectives.data import load_dataset
    from objectives.splits import make_splits

    got = (record or {}).get("split_fingerprint")
    if not got:
        return "its split fingerprint could not be read: the test rows are unchecked"
    data = doc.get("data") or {}
    try:
        ds = load_dataset("sklearn:diabetes", task="regression")
        s = make_splits(
            ds.y,
            test_size=data.get("test_size", TEST_SIZE),
            folds=data.get("folds", FOLDS),
            seed=doc.get("seed", 0),
            task="regression",
            split=data.get("split", SPLIT),
        )
        want = s.fingerprint(ds.fingerprint())
    except Exception as e:  # a check, not the measurement: say so and go on
        return f"its split fingerprint could not be checked: {e}"
    if got == want:
        return None
    return (
        f"tune's split fingerprint {got} is not {want}, the split objectives.splits makes from "
        "the study's settings: its test rows may not be the sklearn arms'"
    )


def _lockbox_from_report(exe: Path, study: Path) -> dict[str, Any] | None:
    """The first look at the test split, from ``tune report --json`` (``test``)."""
    proc = subprocess.run([str(exe), "report", str(study), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    try:
        test = json.loads(proc.stdout).get("test")
    except json.JSONDecodeError:
        return None
    return test if isinstance(test, dict) and test.get("metrics") else None


def _lockbox_from_storage(study: Path, doc: dict[str, Any]) -> dict[str, Any] | None:
    """The first look at the test split, read from the Optuna study's attributes."""
    import optuna

    from tuner.storage.records import scorings

    try:
        from tuner.config import load_config

        url = load_config(study).storage_url
    except Exception:  # the study's own config may not load here; try the default storage
        url = f"sqlite:///{study.parent / (doc['name'] + '.db')}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    history = scorings(optuna.load_study(study_name=doc["name"], storage=url))
    return history[0] if history else None


def run_tuner(study: Path, seed: int, timeout: float | None, y: np.ndarray) -> tuple[Score | None, str]:
    """``tune`` on a copy of ``study`` with ``seed``: its test scores, or None and why not."""
    import yaml

    exe = _tune_exe()
    if not exe.exists():
        return None, f"no tune executable at {exe} (pip install -e . in the venv)"
    if not study.exists():
        return None, f"no study file {study}"
    with tempfile.TemporaryDirectory(prefix="tuner-regression-") as tmp:
        copy = Path(tmp) / study.name
        shutil.copy(study, copy)
        doc = yaml.safe_load(copy.read_text()) or {}
        doc["seed"] = seed
        copy.write_text(yaml.safe_dump(doc, sort_keys=False))
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                [str(exe), str(copy)], capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env
            )
        except subprocess.TimeoutExpired:
            return None, f"tune ran past --tuner-timeout {timeout:g} s"
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return None, f"tune exited {proc.returncode}: " + " | ".join(tail)
        record = _lockbox_from_report(exe, copy)
        try:  # the raw lockbox record: the report leaves out its split fingerprint
            stored = _lockbox_from_storage(copy, doc)
        except Exception as e:  # report what failed, keep the sklearn table
            if record is None:
                return None, f"tune finished but its test score could not be read: {e}"
            stored = None
        record = record or stored
        if record is None:
            return None, "tune finished but recorded no test score (is the lockbox off?)"
        m = record["metrics"]
        try:
            result = Score(float(m["rmse"]), float(m["mae"]), float(m["r2"]), seconds)
        except KeyError as e:
            return None, f"the test record has no {e} metric (it holds {sorted(m)})"
        note = _split_mismatch(doc, y) or _fingerprint_note(stored, doc)
        return result, f"note: {note}" if note else ""


# ---- the table ----------------------------------------------------------------------------


def _spread(values: list[float], fmt: str) -> str:
    values = [round(v, 3) + 0.0 for v in values]  # + 0.0: no "-0.000" for the dummy's R²
    med = format(statistics.median(values), fmt)
    if len(values) == 1:
        return med
    return f"{med} [{format(min(values), fmt)}–{format(max(values), fmt)}]"


def print_table(results: dict[str, dict[int, Score]]) -> None:
    head = f"{'arm':<17} {'seeds':>5}  {'test RMSE':<20} {'MAE':>6}  {'R²':<20} {'seconds':>8}"
    print(head)
    print("-" * len(head))
    for arm, by_seed in results.items():
        if not by_seed:
            continue
        sc = list(by_seed.values())
        print(
            f"{arm:<17} {len(sc):>5}  {_spread([s.rmse for s in sc], '.1f'):<20} "
            f"{statistics.median(s.mae for s in sc):6.1f}  {_spread([s.r2 for s in sc], '.3f'):<20} "
            f"{statistics.median(s.seconds for s in sc):8.2f}"
        )
    print("(median [min–max] over seeds; MAE and seconds are medians)")


def verdict(results: dict[str, dict[int, Score]]) -> str:
    """Which sklearn arms the network beats on test RMSE, on the seeds tuner ran (paired)."""
    net = results.get(TUNER) or {}
    if not net:
        best = min(
            (a for a in results if a != TUNER and results[a]),
            key=lambda a: statistics.median(s.rmse for s in results[a].values()),
        )
        return (
            f"no tuner result: no verdict on the network; the best sklearn arm on median test RMSE is {best}"
        )
    seeds = sorted(net)
    parts_beat, parts_not = [], []
    for arm, by_seed in results.items():
        if arm == TUNER or not all(sd in by_seed for sd in seeds):
            continue
        diffs = [net[sd].rmse - by_seed[sd].rmse for sd in seeds]  # negative: the network is better
        wins = sum(d < 0 for d in diffs)
        med = statistics.median(diffs)
        text = f"{arm} ({med:+.1f} RMSE, {wins}/{len(seeds)} seed(s))"
        (parts_beat if med < 0 else parts_not).append(text)
    on = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    line = f"on test RMSE ({on}, network minus arm, median): the network beats "
    line += ", ".join(parts_beat) if parts_beat else "no sklearn arm"
    line += "; it does not beat " + (", ".join(parts_not) if parts_not else "—")
    if len(seeds) == 1:
        line += " (one split: compare with the sklearn arms' min–max over seeds above)"
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="splits for the sklearn arms")
    ap.add_argument("--tuner", type=Path, default=ROOT / "examples" / "diabetes.yaml", help="the study file")
    ap.add_argument("--tuner-seeds", type=int, nargs="+", default=[0], help="splits for the tuner arm")
    ap.add_argument("--tuner-timeout", type=float, default=None, help="seconds per tune run")
    ap.add_argument("--skip-tuner", action="store_true", help="run only the sklearn arms")
    ap.add_argument("--jobs", type=int, default=1, help="GridSearchCV n_jobs (1: comparable seconds)")
    ap.add_argument(
        "--threads", type=int, default=1, help="OpenMP/BLAS threads of the sklearn fits (HGB is OpenMP)"
    )
    ap.add_argument("--per-seed", action="store_true", help="also print every arm's figures per seed")
    args = ap.parse_args()

    from sklearn.datasets import load_diabetes
    from threadpoolctl import threadpool_limits

    X, y = load_diabetes(return_X_y=True)
    results: dict[str, dict[int, Score]] = {}
    # HGB's OpenMP threads spin against other processes on a shared machine (one fit took
    # 30 s instead of 3 s at load 4 on 2 cores): one thread by default keeps seconds stable
    with threadpool_limits(limits=args.threads):
        for seed in args.seeds:
            for arm, sc in run_sklearn(X, y, seed, args.jobs).items():
                results.setdefault(arm, {})[seed] = sc
    notes = []
    if not args.skip_tuner:
        results[TUNER] = {}
        for seed in args.tuner_seeds:
            sc, why = run_tuner(args.tuner, seed, args.tuner_timeout, y)
            if sc is None:
                notes.append(f"tuner arm FAILED on seed {seed}: {why}")
            else:
                results[TUNER][seed] = sc
                if why:
                    notes.append(f"tuner seed {seed}: {why}")

    from objectives.splits import make_splits

    n_test = len(make_splits(y, test_size=TEST_SIZE, folds=FOLDS, seed=args.seeds[0], task="regression").test)
    print(
        f"diabetes: {len(y)} rows, {X.shape[1]} features; test split {n_test} rows "
        f"({SPLIT}, {FOLDS} folds), seeds {' '.join(map(str, args.seeds))}; "
        f"sklearn fits on {args.threads} thread(s), n_jobs={args.jobs}"
    )
    print_table(results)
    if args.per_seed:
        for arm, by_seed in results.items():
            for sd, s in sorted(by_seed.items()):
                print(
                    f"  {arm:<17} seed {sd}: RMSE {s.rmse:.1f}  MAE {s.mae:.1f}  R² {s.r2:.3f}  {s.seconds:.2f} s"
                )
    for note in notes:
        print(note)
    print(verdict(results))


if __name__ == "__main__":
    main()
