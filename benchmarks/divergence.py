"""The divergence guard against the truth: a learning-rate sweep up to 10 (SGD, no batch
norm, raw pixels) where each run is trained *without* stopping, its per-step loss and
gradient norm recorded, and the guard replayed on the record.

For each run it prints the onset of divergence (the first step whose loss is over 10x the
initial or whose gradient norm is over 100x the first step's, or non-finite), the step
the guard stops it at (defaults from ``DivergenceConfig``), how many epochs that is after
the onset, and the validation accuracy the run ends with when nobody stops it. Claims
checked (issue #3): every diverging run is stopped within one epoch of its onset, and
no run that trains healthily (ends well above chance) is stopped.

    python benchmarks/divergence.py [--family mlp|cnn] [--epochs 3] [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def record(X, y, Xv, yv, family: str, lr: float, seed: int, epochs: int, normalize: bool):
    """Train with the guard's thresholds off; return per-step (loss, norm), steps per
    epoch and the final validation accuracy (None when it went non-finite)."""
    import torch

    from objectives.data import load_dataset  # noqa: F401  (keeps import cost out of the loop)
    from objectives.guard import Diverged, DivergenceGuard
    from objectives.models import ModelSpec, build_model, input_stats
    from objectives.training import fit
    from search_spaces.params import HParams
    from tuner.config import DivergenceConfig

    hp = HParams.resolve(
        {"lr": lr, "optimizer": "sgd", "momentum": 0.9, "batchnorm": "none", "width": 32}, 64
    )
    spec = ModelSpec(family, tuple(X.shape[1:]), 10)
    mean, std = input_stats(X.numpy(), normalize)
    torch.manual_seed(seed)
    model = build_model(spec, hp, mean, std)
    trace: list[tuple[float, float]] = []

    class Recorder(DivergenceGuard):
        def observe(self, losses, norms, *, fold, epoch):  # type: ignore[override]
            trace.extend(zip(losses, norms, strict=True))
            super().observe(losses, norms, fold=fold, epoch=epoch)

    guard = Recorder(DivergenceConfig(enabled=False))  # only the non-finite check stays on
    scores: list[float] = []
    try:
        fit(
            model,
            hp,
            X,
            y,
            epochs=epochs,
            metric="accuracy",
            n_classes=10,
            guard=guard,
            fold=0,
            seed=seed,
            X_val=Xv,
            y_val=yv,
            on_epoch=lambda r: scores.append(r.val_score),
        )
    except Diverged:
        return trace, None
    return trace, scores[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", default="mlp", choices=("mlp", "cnn"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--normalize", action="store_true", help="standardize inputs (default: raw pixels)")
    args = ap.parse_args()
    import numpy as np
    import torch

    from objectives.data import load_dataset
    from objectives.guard import Diverged, DivergenceGuard
    from tuner.config import DivergenceConfig

    torch.set_num_threads(1)
    ds = load_dataset("sklearn:digits", base_dir=REPO, target=None)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(ds.y))
    tr, va = idx[:1200], idx[1200:]
    X, y = torch.as_tensor(ds.X[tr]), torch.as_tensor(ds.y[tr])
    Xv, yv = torch.as_tensor(ds.X[va]), torch.as_tensor(ds.y[va])
    per_epoch = math.ceil(len(tr) / 64)
    lrs = [float(v) for v in np.logspace(-3, 1, 9)]  # 1e-3 .. 10
    print(
        f"{args.family}, SGD momentum 0.9, no batch norm, {'standardized' if args.normalize else 'raw'} inputs, "
        f"{args.epochs} epochs of {per_epoch} steps; guard defaults: {DivergenceConfig().model_dump()}"
    )
    print(
        f"{'lr':>8} {'seed':>4} {'onset':>6} {'stopped':>7} {'epochs after onset':>18} {'val acc unstopped':>17}"
    )
    missed = late = false = 0
    for lr in lrs:
        for seed in args.seeds:
            trace, val = record(X, y, Xv, yv, args.family, lr, seed, args.epochs, args.normalize)
            l0, n0 = trace[0]
            onset = next(
                (
                    i
                    for i, (lo, n) in enumerate(trace)
                    if not (math.isfinite(lo) and math.isfinite(n)) or lo > 10 * l0 or n > 100 * n0
                ),
                None,
            )
            g = DivergenceGuard(DivergenceConfig())
            stop = None
            for i, (lo, n) in enumerate(trace):
                try:
                    g.observe([lo], [n], fold=0, epoch=i // per_epoch)
                except Diverged:
                    stop = i
                    break
            after = "" if stop is None or onset is None else f"{(stop - onset) / per_epoch:.2f}"
            shown = "non-finite" if val is None else f"{val:.3f}"
            print(f"{lr:>8.3g} {seed:>4} {str(onset):>6} {str(stop):>7} {after:>18} {shown:>17}", flush=True)
            healthy = val is not None and val > 0.5
            if onset is not None and stop is None:
                missed += 1
            if onset is not None and stop is not None and stop - onset > per_epoch:
                late += 1
            if healthy and stop is not None:
                false += 1
    print(
        f"diverging runs missed: {missed}; stopped more than one epoch after onset: {late}; "
        f"healthy runs (val acc > 0.5 unstopped) stopped: {false}"
    )


if __name__ == "__main__":
    main()
