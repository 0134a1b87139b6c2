"""The summary plots of a screen (PNG, each readable on its own): distributions of G and K,
G against K with Pugh's line, the ensemble spread against the predicted value, flagged
fractions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from zoo.derived import PUGH_DUCTILE_ABOVE
from zoo.plots import _save, plt
from zoo.screen_chunk import flag_set


def summary_plots(table: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Every plot the table allows; returns kind -> file."""
    made = {}
    if "shear_gpa" in table or "bulk_gpa" in table:
        made["distributions"] = distributions(table, out / "moduli-distributions.png")
    if {"shear_gpa", "bulk_gpa"} <= set(table):
        made["shear_vs_bulk"] = shear_vs_bulk(table, out / "shear-vs-bulk.png")
    if any(f"{t}_std_log10" in table for t in ("shear", "bulk")):
        made["uncertainty"] = uncertainty(table, out / "uncertainty.png")
    made["flags"] = flags(table, out / "flagged.png")
    return made


def _per_target(table: pd.DataFrame, column: str, draw, path: Path) -> Path:
    """One panel per modulus whose ``column`` (``{t}`` for the target) the table has, each
    drawn by ``draw(fig, ax, target)``, saved to ``path``."""
    targets = [t for t in ("shear", "bulk") if column.format(t=t) in table]
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        draw(fig, ax, target)
    return _written(fig, path)


SHOWN_QUANTILES = (0.001, 0.999)
"""Axes span these quantiles of the values, so a few outliers do not squeeze the rest; how
many points lie beyond is said in the panel."""


def _shown(values: np.ndarray) -> tuple[np.ndarray, int]:
    """bool mask of the finite ``values`` inside :data:`SHOWN_QUANTILES`, and how many finite
    values lie outside it."""
    finite = np.isfinite(values)
    if not finite.any():
        return finite, 0
    low = np.quantile(values[finite], SHOWN_QUANTILES[0], method="lower")  # a value itself:
    high = np.quantile(values[finite], SHOWN_QUANTILES[1], method="higher")  # few points stay
    inside = finite & (values >= low) & (values <= high)
    return inside, int(finite.sum() - inside.sum())


def _beyond_note(ax, count: int) -> None:
    if count:
        ax.text(0.99, 0.01, f"{count:,} beyond the axes", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=8, color="0.3")  # fmt: skip


def _count_bar(fig, cells, ax) -> None:
    """A colour bar of structures per hexagonal bin, with plain numbers (1, 10, 100)."""
    from matplotlib.ticker import FuncFormatter

    bar = fig.colorbar(cells, ax=ax, label="structures per bin")
    bar.formatter = FuncFormatter(lambda value, _: f"{value:,.0f}")
    bar.update_ticks()


def _written(fig, path: Path) -> Path:
    fig.tight_layout()
    _save(fig, path)
    return path


def distributions(table: pd.DataFrame, path: Path) -> Path:
    def draw(fig, ax, target):
        everything = table[f"{target}_gpa"].to_numpy(dtype=float)
        shown, beyond = _shown(np.log10(np.where(everything > 0, everything, np.nan)))
        values = pd.Series(everything[np.isfinite(everything)])
        low, high = everything[shown].min(), everything[shown].max()
        bins = np.logspace(np.log10(max(low, 0.1)), np.log10(high), 50)
        ax.hist(everything[shown], bins=bins, color="#4c72b0")
        _beyond_note(ax, beyond)
        ax.set_xscale("log")
        symbol = "G" if target == "shear" else "K"
        ax.set_xlabel(f"predicted {target} modulus {symbol}_VRH (GPa)")
        ax.set_ylabel("structures")
        ax.set_title(f"{target}: {len(values):,} structures, median {values.median():.1f} GPa")

    return _per_target(table, "{t}_gpa", draw, path)


def shear_vs_bulk(table: pd.DataFrame, path: Path) -> Path:
    g, k = table["shear_gpa"].to_numpy(dtype=float), table["bulk_gpa"].to_numpy(dtype=float)
    positive = np.isfinite(g) & np.isfinite(k) & (g > 0) & (k > 0)
    in_g, _ = _shown(np.log10(np.where(positive, g, np.nan)))
    in_k, _ = _shown(np.log10(np.where(positive, k, np.nan)))
    keep = in_g & in_k
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cells = ax.hexbin(
        k[keep], g[keep], xscale="log", yscale="log", gridsize=60, bins="log", cmap="viridis"
    )
    _count_bar(fig, cells, ax)
    _beyond_note(ax, int(positive.sum() - keep.sum()))
    line = np.logspace(np.log10(k[keep].min()), np.log10(k[keep].max()), 10)
    ax.plot(line, line / PUGH_DUCTILE_ABOVE, "r--", label=f"K/G = {PUGH_DUCTILE_ABOVE} (Pugh)")
    ductile = float(np.mean(k[positive] / g[positive] > PUGH_DUCTILE_ABOVE))
    ax.set_xlabel("predicted bulk modulus K_VRH (GPa)")
    ax.set_ylabel("predicted shear modulus G_VRH (GPa)")
    ax.set_title(f"{positive.sum():,} structures; {100 * ductile:.0f}% below the line (ductile)")
    ax.legend(loc="upper left")
    return _written(fig, path)


def uncertainty(table: pd.DataFrame, path: Path) -> Path:
    def draw(fig, ax, target):
        x = table[f"{target}_log10"].to_numpy(dtype=float)
        y = table[f"{target}_std_log10"].to_numpy(dtype=float)
        both = np.isfinite(x) & np.isfinite(y)
        keep = _shown(np.where(both, x, np.nan))[0] & _shown(np.where(both, y, np.nan))[0]
        cells = ax.hexbin(x[keep], y[keep], gridsize=50, bins="log", cmap="viridis")
        _count_bar(fig, cells, ax)
        _beyond_note(ax, int(both.sum() - keep.sum()))
        ax.set_xlabel(f"predicted log10 {target} modulus (log10 GPa)")
        ax.set_ylabel("ensemble spread σ (log10 GPa)")
        ax.set_title(f"{target}: median σ {np.median(y[both]):.3f} log10 GPa")

    return _per_target(table, "{t}_std_log10", draw, path)


def flags(table: pd.DataFrame, path: Path) -> Path:
    names = [c for c in table if c.startswith("flag_")]
    counts = [int(flag_set(table, name).sum()) for name in names]
    fractions = [c / len(table) if len(table) else 0.0 for c in counts]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(names) + 1.5))
    labels = [n.removeprefix("flag_").replace("_", " ") for n in names]
    bars = ax.barh(labels, fractions, color="#dd8452")
    ax.bar_label(bars, [f"{c:,} ({100 * f:.1f}%)" for c, f in zip(counts, fractions, strict=True)],
                 padding=3, fontsize=8)  # fmt: skip
    ax.set_xlabel(f"fraction of the {len(table):,} predicted structures")
    anyflag = int(flag_set(table, "flagged").sum()) if "flagged" in table else 0
    share = 100 * anyflag / len(table) if len(table) else 0.0
    ax.set_title(f"applicability flags: {anyflag:,} structures ({share:.1f}%) have one or more")
    ax.set_xlim(0, max(max(fractions, default=0) * 1.35, 0.05))
    return _written(fig, path)
