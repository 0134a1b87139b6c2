"""Pictures people look at: parity plots and learning curves (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from zoo import names
from zoo.files import atomic_write  # noqa: E402


def _save(fig, path: Path) -> None:
    """Write the figure as PNG in one step (a reader never sees half a picture), and close it."""
    with atomic_write(path) as partial:
        fig.savefig(partial, dpi=120, format="png")
    plt.close(fig)


SPLIT_COLOURS = {"train": "#bbbbbb", "val": "#4c72b0", "test": "#dd5555"}


def parity_plot(predictions: pd.DataFrame, target: str, path: Path, title: str = "") -> Path:
    """Predicted against reference modulus (GPa, log axes), one colour per split."""
    fig, ax = plt.subplots(figsize=(5, 5))
    true_col, pred_col = names.true_gpa(target), names.pred_gpa(target)
    frame = predictions.dropna(subset=[true_col])
    for split, colour in SPLIT_COLOURS.items():
        part = frame[frame[names.SPLIT] == split]
        if len(part):
            ax.scatter(
                part[true_col],
                part[pred_col],
                s=6,
                alpha=0.6,
                c=colour,
                label=f"{split} ({len(part)})",
            )
    if len(frame):
        values = np.concatenate([frame[true_col], frame[pred_col]])
        low, high = values[values > 0].min() / 1.5, values.max() * 1.5
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"reference {target} modulus (GPa)")
    ax.set_ylabel(f"predicted {target} modulus (GPa)")
    ax.set_title(title or f"{target} modulus")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


def learning_curve(
    history: list[dict], targets: list[str], path: Path, kept_epoch: int | None = None
) -> Path:
    """Training loss and validation MAE (log10 GPa) per epoch (no validation curve for a
    train+val refit); integer epochs; the kept epoch marked on both panels."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, mae_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for ax in (loss_ax, mae_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if kept_epoch:
            ax.axvline(kept_epoch, color="k", ls=":", lw=1, label=f"kept epoch {kept_epoch}")
    loss_ax.plot(epochs, [row["train_loss"] for row in history], label="train loss")
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss (normalised targets)")
    loss_ax.legend(fontsize=8)
    for target in targets:
        mae_ax.plot(
            epochs,
            [row[names.epoch_mae("train", target)] for row in history],
            label=f"train {target} (running: during the epoch, dropout on, no weight average)",
        )
        if all(names.epoch_mae("val", target) in row for row in history):
            mae_ax.plot(
                epochs,
                [row[names.epoch_mae("val", target)] for row in history],
                label=f"val {target} (evaluated after the epoch, the model that is kept)",
            )
    mae_ax.set_xlabel("epoch")
    mae_ax.set_ylabel("MAE (log10 GPa)")
    mae_ax.set_yscale("log")
    mae_ax.legend(fontsize=7)
    mae_ax.set_title(
        "MAE per epoch; the final table's train MAE is the kept model's, evaluated", fontsize=8
    )
    fig.tight_layout()
    _save(fig, path)
    return path


def fold_parity_plot(frame: pd.DataFrame, target: str, path: Path) -> Path:
    """Benchmark test predictions against the reference (GPa, log axes), one colour per
    official fold; the title gives the entries and the MAE in log10 GPa.

    ``frame`` columns: ``fold``, ``true_log10``, ``pred_log10`` (log10 GPa)."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for fold, part in frame.groupby("fold"):
        ax.scatter(10.0 ** part["true_log10"], 10.0 ** part["pred_log10"], s=5, alpha=0.5,
                   label=f"fold {fold} ({len(part)})")  # fmt: skip
    values = 10.0 ** np.concatenate([frame["true_log10"], frame["pred_log10"]])
    low, high = values.min() / 1.5, values.max() * 1.5
    ax.plot([low, high], [low, high], "k--", lw=1)
    ax.set(xlim=(low, high), ylim=(low, high), xscale="log", yscale="log")
    ax.set_xlabel(f"Matbench {target} modulus (GPa)")
    ax.set_ylabel(f"predicted {target} modulus (GPa)")
    mae = float(np.abs(frame["pred_log10"] - frame["true_log10"]).mean())
    folds = sorted(frame["fold"].unique())
    which = f"fold {folds[0]}" if len(folds) == 1 else "all test folds"
    ax.set_title(f"{target}, {which}: {len(frame)} entries, MAE {mae:.4f} log10 GPa")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path
