"""A stored run's artifacts beside its data files: plots rendered off-screen (matplotlib's Agg backend) to PNG bytes.

:func:`run_artifacts` is the store's hook: :func:`perturbkit.cv.store.save_run` writes what it returns
for every run, whichever command (cv, recipe, agreement, tune) saves it.
"""

from __future__ import annotations

import io

__all__ = ["loss_curve_png", "loss_curve_pngs", "run_artifacts"]


def loss_curve_png(history: dict, title: str = "") -> bytes:
    """Per-epoch training and validation loss (left) and validation MRRMSE (right) as a small PNG.

    ``history`` is a torch model's ``history_``: lists ``epoch``, ``train_loss``, ``valid_loss``,
    ``valid_mrrmse`` (None where there was no validation) and ``best_epoch``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    epochs = history["epoch"]
    figure = Figure(figsize=(8, 3.2), dpi=90)
    left, right = figure.subplots(1, 2)
    left.plot(epochs, history["train_loss"], label="train")
    valid_loss = [(e, v) for e, v in zip(epochs, history.get("valid_loss", [])) if v is not None]
    if valid_loss:
        left.plot(*zip(*valid_loss), label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel(f"loss ({history.get('loss', 'mse')})")
    left.legend()
    scores = [(e, v) for e, v in zip(epochs, history.get("valid_mrrmse", [])) if v is not None]
    if scores:
        right.plot(*zip(*scores), color="C1")
        best = history.get("best_epoch")
        if best:
            right.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch {best}")
            right.legend()
        right.set_ylabel("validation MRRMSE")
    else:
        right.text(0.5, 0.5, "no validation rows", ha="center", va="center", transform=right.transAxes)
    right.set_xlabel("epoch")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def loss_curve_pngs(meta: dict) -> dict[str, bytes]:
    """``loss_fold<k>.png`` for each fold of a run whose model kept a training history."""
    return {
        f"loss_fold{entry['fold']}.png": loss_curve_png(entry["history"], f"{meta['model']}, fold {entry['fold']}")
        for entry in meta["folds"]
        if isinstance(entry.get("history"), dict)
    }


def run_artifacts(meta: dict) -> dict[str, bytes]:
    """Every artifact a run gets from its meta: today the loss curves of models that kept a training history."""
    return loss_curve_pngs(meta)
