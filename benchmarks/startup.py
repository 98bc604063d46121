"""Process start-up: `tune --help`, and `tune STUDY.yaml` up to its first trial.

Prints medians over repeats, as ratios against a bare ``python -c pass`` and
against importing the heavy libraries, all measured in this run:

- ``tune --help`` (must stay free of torch, MLflow, Optuna imports);
- import torch / mlflow / sklearn+optuna alone (the known costs);
- ``tune STUDY.yaml`` from launch to the first trial's start (read from the
  trial's own timestamp in the study storage), the quickstart-like tiny study.

Run: ``python benchmarks/startup.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=ENV, check=True, capture_output=True)
    return time.perf_counter() - start


def to_first_trial(tmp: Path, i: int) -> float:
    study = {
        "name": f"s{i}",
        "seed": 0,
        "data": {"source": "sklearn:digits", "folds": 2},
        "model": {"family": "mlp"},
        "training": {"max_epochs": 1, "threads": 1},
        "search_space": {"lr": {"float": [1e-3, 1e-2], "log": True}},
        "budget": {"n_trials": 1},
        "pruner": None,
    }
    path = tmp / f"s{i}.yaml"
    path.write_text(yaml.safe_dump(study))
    launched = dt.datetime.now()
    subprocess.run(
        [PY, "-m", "tuner.cli", path.name, "--no-refit"], cwd=tmp, env=ENV, check=True, capture_output=True
    )
    import optuna

    trial = optuna.load_study(study_name=f"s{i}", storage=f"sqlite:///{tmp / f's{i}.db'}").trials[0]
    return (trial.datetime_start - launched).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        rows = {
            "python -c pass": [PY, "-c", "pass"],
            "tune --help": [PY, "-m", "tuner.cli", "--help"],
            "import torch": [PY, "-c", "import torch"],
            "import mlflow": [PY, "-c", "import mlflow"],
            "import optuna, sklearn": [PY, "-c", "import optuna, sklearn.model_selection"],
        }
        med = {}
        for name, cmd in rows.items():
            timed(cmd, tmp)  # warm the file cache
            med[name] = statistics.median(timed(cmd, tmp) for _ in range(args.repeat))
        first = [to_first_trial(tmp, i) for i in range(args.repeat)]
        med["tune STUDY.yaml → first trial"] = statistics.median(first)
        base = med["python -c pass"]
        heavy = med["import torch"] + med["import mlflow"] + med["import optuna, sklearn"]
        print(f"median of {args.repeat} runs; ratios against `python -c pass` in the same run")
        for name, sec in med.items():
            print(f"  {name:<32} {sec:6.2f} s   {sec / base:6.1f}x")
        print(
            f"  the three imports together: {heavy:.2f} s; to the first trial is "
            f"{med['tune STUDY.yaml → first trial'] / heavy:.2f}x that (min-max "
            f"{min(first):.2f}-{max(first):.2f} s)"
        )


if __name__ == "__main__":
    main()
