"""Over-fitting that early stopping caught: a fold it ended with the validation loss
risen from its best while the training loss kept falling, read from the trial's
``fold_epochs`` (what ``objectives.early_stopping`` saw of each fold)."""

from __future__ import annotations

from typing import Any

__all__ = ["ES_RISE", "early_stopping_caught"]

ES_RISE = 0.02  # a fold early stopping ended with its validation loss this far above its best


def early_stopping_caught(folds: list[dict[str, Any]], ev: dict[str, Any]) -> str:
    """Record what early stopping saw in ``ev``; a sentence when it caught over-fitting:
    a fold it ended with the validation loss risen from its best while training loss fell."""
    stopped = [i for i, f in enumerate(folds) if f.get("stopped")]
    if not folds:
        return ""
    rising = []
    for i in stopped:
        f = folds[i]
        losses = [f.get(k) for k in ("val_loss_best", "val_loss_last", "train_loss_best", "train_loss_last")]
        if any(v is None for v in losses):
            continue
        vb, vl, tb, tl = (float(v) for v in losses)  # type: ignore[arg-type]
        if vl > vb * (1 + ES_RISE) and tl < tb:
            rising.append((i, f))
    ev["early_stopping"] = {
        "folds_stopped": stopped,
        "best_epochs": [f.get("best_epoch") for f in folds],
        "overfitting_caught": [i for i, _ in rising],
    }
    if not rising:
        return ""
    i, f = rising[0]
    rise = f["val_loss_last"] / f["val_loss_best"] - 1
    more = f" (and {len(rising) - 1} more)" if len(rising) > 1 else ""
    return (
        f"early stopping caught over-fitting in {len(rising)}/{len(folds)} fold(s): fold {i}'s "
        f"validation loss rose {f['val_loss_best']:.3g} → {f['val_loss_last']:.3g} (+{rise:.0%}) after "
        f"its best epoch {f['best_epoch'] + 1} while its training loss fell {f['train_loss_best']:.3g} → "
        f"{f['train_loss_last']:.3g}{more}"
    )
