"""Search quality per compute: TPE + pruning vs random search vs the hand-tuned recipe.

For each dataset and seed, with the same trial budget:

- tuner:  TPESampler + MedianPruner + fold pruning (tuner's defaults until the pruning benchmark
  of issue #14 chose SuccessiveHalving);
- random: RandomSampler, no pruning;
- recipe: no search, the configuration practitioners start from (dropout 0.5,
  batch norm after the activation, Adam, lr 1e-3, weight decay 0), trained once on
  all non-test data.

Every arm's result is the held-out test score of its refit model. Epochs count
every epoch trained: one reported value per epoch in the search, plus the refit.
Prints the median test score over seeds and the total epochs for each arm.
Run: ``python benchmarks/search_quality.py [--seeds 5] [--trials 20]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")

import optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)

RECIPE = {
    "dropout": 0.5,
    "batchnorm": "after_activation",
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
}


FOLD_PRUNING: dict = {}  # tuner arm's fold_pruning overrides (--margin, --min-gain, --peers)


def doc(name: str, source: str, seed: int, trials: int, epochs: int, arm: str) -> dict:
    d = {
        "name": name,
        "seed": seed,
        "data": {"source": source, "folds": 3},
        "model": {"family": "mlp"},
        "training": {"max_epochs": epochs, "batch_size": 64, "threads": 1},
        "search_space": "regularization",
        "budget": {"n_trials": trials},
        "mlflow": {"enabled": False},
    }
    if arm == "tuner":
        d["sampler"] = {"name": "TPESampler", "seed": seed, "n_startup_trials": 5}
        d["pruner"] = {"name": "MedianPruner", "n_startup_trials": 3, "n_warmup_steps": 2}
        if FOLD_PRUNING:
            d["fold_pruning"] = dict(FOLD_PRUNING)
    else:
        d["sampler"] = {"name": "RandomSampler", "seed": seed}
        d["pruner"] = None
        d["fold_pruning"] = {"enabled": False}
    return d


def run_arm(base: Path, source: str, seed: int, trials: int, epochs: int, arm: str) -> tuple[float, int]:
    from tuner.config import validate_config
    from tuner.run.runner import run_study

    cfg = validate_config(doc(f"{arm}-{seed}", source, seed, trials, epochs, arm), base, f"{arm}.yaml")
    summary = run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    searched = sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))
    return summary["test"]["score"], searched + epochs


def run_recipe(base: Path, source: str, seed: int, epochs: int) -> tuple[float, int]:
    import torch

    from objectives.cv import train_final
    from objectives.metrics import score
    from objectives.training import predict_proba
    from tuner.config import validate_config
    from tuner.run.runner import prepare

    cfg = validate_config(doc(f"recipe-{seed}", source, seed, 1, epochs, "random"), base, "r.yaml")
    prep = prepare(cfg)
    model = train_final(cfg, prep.dataset, prep.splits.trainval, RECIPE, torch.device("cpu"))
    X = torch.as_tensor(prep.dataset.X[prep.splits.test])
    proba = predict_proba(model, X)
    return score(cfg.objective.metric, prep.dataset.y[prep.splits.test], proba), epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--datasets", default="sklearn:digits,sklearn:wine")
    ap.add_argument("--margin", type=float, default=None, help="tuner arm: fold_pruning.margin")
    ap.add_argument("--min-gain", type=float, default=None, help="tuner arm: fold_pruning.min_gain")
    ap.add_argument(
        "--peers", choices=("complete", "finished"), default=None, help="tuner arm: fold_pruning.pruner_peers"
    )
    args = ap.parse_args()
    for key, value in (("margin", args.margin), ("min_gain", args.min_gain), ("pruner_peers", args.peers)):
        if value is not None:
            FOLD_PRUNING[key] = value
    import torch

    torch.set_num_threads(1)
    print(
        f"budget {args.trials} trials, 3 folds x {args.epochs} epochs, mlp, regularization preset, "
        f"{args.seeds} seeds; metric balanced_accuracy on the held-out 20%; tuner arm fold pruning "
        f"{FOLD_PRUNING or 'defaults'}"
    )
    for source in args.datasets.split(","):
        results: dict[str, list[tuple[float, int]]] = {"tuner": [], "random": [], "recipe": []}
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(args.seeds):
                for arm in ("tuner", "random"):
                    results[arm].append(run_arm(Path(tmp), source, seed, args.trials, args.epochs, arm))
                results["recipe"].append(run_recipe(Path(tmp), source, seed, args.epochs))
        print(f"\n{source}  ({time.perf_counter() - started:.0f} s)")
        print(f"  {'arm':<8} {'median test':>12} {'min-max':>15} {'total epochs':>13}")
        for arm, rows in results.items():
            scores = [s for s, _ in rows]
            epochs = sum(e for _, e in rows)
            print(
                f"  {arm:<8} {statistics.median(scores):12.4f} {min(scores):7.4f}-{max(scores):.4f} "
                f"{epochs:13d}"
            )
        med = {a: statistics.median(s for s, _ in r) for a, r in results.items()}
        ep = {a: sum(e for _, e in r) for a, r in results.items()}
        print(
            f"  tuner - random: {med['tuner'] - med['random']:+.4f}; tuner - recipe: "
            f"{med['tuner'] - med['recipe']:+.4f}; tuner/random epochs: {ep['tuner'] / ep['random']:.3f} "
            "(target: >= both, <= 0.333)"
        )


if __name__ == "__main__":
    main()
