"""Pruned vs unpruned: the quickstart-style digits study run twice per seed, with the
same sampler seed and trial budget, with pruning (the study file's pruner plus fold
pruning) and without it (``pruner: null``, ``fold_pruning.enabled: false``).

Prints, for each: total epochs trained in the search (the ``epochs_trained`` trial
attribute, summed), wall time, best cross-validated score and the held-out test score
of the refit best model; and the ratios. Targets (issue #3): pruning trains at most 1/3
of the epochs, with a test score within 0.5 points (0.005) of the unpruned study.

    python benchmarks/pruning.py                     # MLP on digits, 30 trials, seeds 0 1 2
    python benchmarks/pruning.py --family cnn --seeds 0   # the quickstart CNN itself (slow)

Wall times on a shared machine are noisy: the epoch ratio is the robust figure.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_once(study_file: Path, workdir: Path, *, pruned: bool, seed: int, args: Any) -> dict[str, Any]:
    import optuna

    from tuner.config import load_config
    from tuner.run.runner import run_study

    name = f"bench-{'pruned' if pruned else 'full'}-{seed}"
    overrides: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "storage": f"sqlite:///{workdir / (name + '.db')}",
        "mlflow.enabled": False,
        "model.family": args.family,
        "budget.n_trials": args.trials,
        "budget.timeout": None,
        "training.threads": args.threads,
        "training.device": "cpu",
    }
    if args.epochs:
        overrides["training.max_epochs"] = args.epochs
    if args.pruner_warmup is not None:
        overrides["pruner.n_warmup_steps"] = args.pruner_warmup
    if args.pruner_startup is not None:
        overrides["pruner.n_startup_trials"] = args.pruner_startup
    if args.pruner:
        overrides["pruner"] = json.loads(args.pruner)
    if args.margin is not None:
        overrides["fold_pruning.margin"] = args.margin
    if args.min_gain is not None:
        overrides["fold_pruning.min_gain"] = args.min_gain
    if args.peers:
        overrides["fold_pruning.pruner_peers"] = args.peers
    if not pruned:
        overrides["pruner"] = None
        overrides["fold_pruning.enabled"] = False
    cfg = load_config(study_file, overrides)
    for suffix in ("", "-wal", "-shm"):  # a kept study of the same name would be resumed
        (workdir / f"{name}.db{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the per-trial progress lines
        summary = run_study(cfg, say=lambda s: None, live=False)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=cfg.storage_url)
    trials = study.get_trials(deepcopy=False)
    by = [t.user_attrs.get("pruned_by") for t in trials if t.state.name == "PRUNED"]
    return {
        "replay": None if pruned else replay(trials, cfg.objective.metric, cfg.data.folds),
        "epochs": sum(int(t.user_attrs.get("epochs_trained", 0)) for t in trials),
        "wall": wall,
        "cv": summary["best"]["cv_mean"],
        "test": summary["test"]["score"],
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned_by": {k: by.count(k) for k in sorted(set(by))},
        "max_epochs": cfg.training.max_epochs * cfg.data.folds * len(trials),
    }


def replay(trials: list[Any], metric: str, folds: int) -> dict[str, Any]:
    """Replay between-fold rules on an unpruned study, whose trials finished every fold.

    For each trial in order, against the best trial finished before it: after how many
    folds would the rule stop it, and would the stopped trial have become the new best
    (a wrong stop)? The paired fold rule (``objectives.cv.fold_verdict``) at several
    margins (standard errors), and a one-sided Wilcoxon signed-rank test at p < 0.1, what Optuna's
    WilcoxonPruner does (its smallest p-value with n folds is 1/2**n).
    """
    from scipy.stats import wilcoxon

    from objectives.cv import fold_verdict, paired_sd
    from objectives.metrics import better

    done = [
        t for t in trials if t.state.name == "COMPLETE" and len(t.user_attrs.get("fold_scores", [])) == folds
    ]
    rules: dict[str, Any] = {f"margin {m:g}": m for m in (1.0, 1.5, 2.0)}
    rules["wilcoxon p<0.1"] = "wilcoxon"
    out = {name: {"stopped": 0, "wrong": 0, "folds_saved": 0} for name in rules}
    best = None
    for i, t in enumerate(done):
        scores = t.user_attrs["fold_scores"]
        if best is not None:
            ref = best.user_attrs["fold_scores"]
            seen = done[:i]
            for name, rule in rules.items():
                for n in range(1, folds):
                    if rule == "wilcoxon":
                        diffs = [a - b for a, b in zip(scores[:n], ref[:n], strict=True)]
                        alt = "greater" if metric == "log_loss" else "less"
                        stop = any(diffs) and wilcoxon(diffs, alternative=alt).pvalue < 0.1
                    else:
                        sd = paired_sd([o.user_attrs["fold_scores"] for o in seen if o is not best], ref)
                        stop = fold_verdict(scores[:n], ref, metric, rule, sd) is not None
                    if stop:
                        out[name]["stopped"] += 1
                        out[name]["folds_saved"] += folds - n
                        out[name]["wrong"] += better(t.value, best.value, metric)
                        break
        if best is None or better(t.value, best.value, metric):
            best = t
    out["trials"] = len(done)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", type=Path, default=REPO / "examples" / "digits.yaml")
    ap.add_argument("--family", default="mlp", choices=("mlp", "cnn"))
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=None, help="default: the study file's max_epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pruner-warmup", type=int, default=None, help="override pruner.n_warmup_steps")
    ap.add_argument("--pruner-startup", type=int, default=None, help="override pruner.n_startup_trials")
    ap.add_argument("--pruner", default=None, help='JSON, e.g. {"name": "SuccessiveHalvingPruner"}')
    ap.add_argument("--margin", type=float, default=None, help="override fold_pruning.margin")
    ap.add_argument("--min-gain", type=float, default=None, help="override fold_pruning.min_gain")
    ap.add_argument(
        "--peers", choices=("complete", "finished"), default=None, help="override fold_pruning.pruner_peers"
    )
    ap.add_argument("--pruned-only", action="store_true", help="skip the unpruned arm (no ratios)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the studies' SQLite files in this folder")
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import warnings

    warnings.filterwarnings("ignore")
    print(
        f"study {args.study.name}: family {args.family}, {args.trials} trials per study, "
        f"pruner {args.pruner or 'from the study file'}, fold margin {args.margin or 'from the study file'}, "
        f"seeds {args.seeds}, {args.threads} torch thread(s); load average {os.getloadavg()[0]:.1f}"
    )
    head = f"{'seed':>4} {'study':>8} {'epochs':>7} {'wall s':>8} {'best CV':>8} {'test':>7}  complete / pruned by"
    print(head)
    # Imports and the dataset load would land in the first arm's wall time: pay them first.
    from objectives.data import load_dataset
    from tuner.run.runner import run_study  # noqa: F401

    load_dataset("sklearn:digits", base_dir=REPO, target=None)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        # ...and so would torch's first kernels and the first SQLite study: a 1-trial warm-up.
        run_once(
            args.study,
            Path(tmp),
            pruned=False,
            seed=99,
            args=argparse.Namespace(**{**vars(args), "trials": 1, "epochs": 1}),
        )
        for seed in args.seeds:
            pr = run_once(args.study, Path(tmp), pruned=True, seed=seed, args=args)
            if args.pruned_only:  # to try pruner settings against an unpruned run you already have
                print(
                    f"{seed:>4} {'pruned':>8} {pr['epochs']:>7} {pr['wall']:>8.1f} {pr['cv']:>8.4f} {pr['test']:>7.4f}  "
                    f"{pr['complete']} / {pr['pruned_by'] or '-'}",
                    flush=True,
                )
                continue
            full = run_once(args.study, Path(tmp), pruned=False, seed=seed, args=args)
            for label, r in (("unpruned", full), ("pruned", pr)):
                print(
                    f"{seed:>4} {label:>8} {r['epochs']:>7} {r['wall']:>8.1f} {r['cv']:>8.4f} "
                    f"{r['test']:>7.4f}  {r['complete']} / {r['pruned_by'] or '-'}",
                    flush=True,
                )
            rows.append((full, pr))
            rep = full["replay"]
            print(
                f"{seed:>4} {'replay':>8} between-fold rules on the {rep['trials']} unpruned trials: "
                + "; ".join(
                    f"{k}: stops {v['stopped']} (saves {v['folds_saved']} folds), wrongly {v['wrong']}"
                    for k, v in rep.items()
                    if k != "trials"
                ),
                flush=True,
            )
            print(
                f"{seed:>4} {'ratio':>8} {pr['epochs'] / full['epochs']:>7.3f} "
                f"{pr['wall'] / full['wall']:>8.3f}  test diff (pruned - unpruned) "
                f"{100 * (pr['test'] - full['test']):+.2f} points",
                flush=True,
            )
    if not rows:
        return
    epochs = statistics.fmean(p["epochs"] / f["epochs"] for f, p in rows)
    wall = statistics.fmean(p["wall"] / f["wall"] for f, p in rows)
    diffs = [100 * (p["test"] - f["test"]) for f, p in rows]
    cvd = [100 * (p["cv"] - f["cv"]) for f, p in rows]
    print(
        f"mean over {len(rows)} seed(s): epochs ratio {epochs:.3f} (target <= 0.333), wall ratio "
        f"{wall:.3f}, test diff {statistics.fmean(diffs):+.2f} points (per seed "
        f"{', '.join(f'{d:+.2f}' for d in diffs)}; target within 0.5), best-CV diff "
        f"{statistics.fmean(cvd):+.2f} points"
    )


if __name__ == "__main__":
    main()
