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


def _written(fig, path: Path) -> Path:
    fig.tight_layout()
    _save(fig, path)
    return path


def distributions(table: pd.DataFrame, path: Path) -> Path:
    def draw(fig, ax, target):
        values = table[f"{target}_gpa"].dropna()
        bins = np.logspace(np.log10(max(values.min(), 0.1)), np.log10(values.max()), 50)
        ax.hist(values, bins=bins, color="#4c72b0")
        ax.set_xscale("log")
        symbol = "G" if target == "shear" else "K"
        ax.set_xlabel(f"predicted {target} modulus {symbol}_VRH (GPa)")
        ax.set_ylabel("structures")
        ax.set_title(f"{target}: {len(values)} structures, median {values.median():.1f} GPa")

    return _per_target(table, "{t}_gpa", draw, path)


def shear_vs_bulk(table: pd.DataFrame, path: Path) -> Path:
    g, k = table["shear_gpa"].to_numpy(), table["bulk_gpa"].to_numpy()
    keep = np.isfinite(g) & np.isfinite(k) & (g > 0) & (k > 0)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    cells = ax.hexbin(
        k[keep], g[keep], xscale="log", yscale="log", gridsize=60, bins="log", cmap="viridis"
    )
    fig.colorbar(cells, ax=ax, label="structures per cell")
    line = np.logspace(np.log10(k[keep].min()), np.log10(k[keep].max()), 10)
    ax.plot(line, line / PUGH_DUCTILE_ABOVE, "r--", label=f"K/G = {PUGH_DUCTILE_ABOVE} (Pugh)")
    ductile = float(np.mean(k[keep] / g[keep] > PUGH_DUCTILE_ABOVE))
    ax.set_xlabel("predicted bulk modulus K_VRH (GPa)")
    ax.set_ylabel("predicted shear modulus G_VRH (GPa)")
    ax.set_title(f"{keep.sum()} structures; {100 * ductile:.0f}% below the line (ductile)")
    ax.legend(loc="upper left")
    return _written(fig, path)


def uncertainty(table: pd.DataFrame, path: Path) -> Path:
    def draw(fig, ax, target):
        x, y = table[f"{target}_log10"].to_numpy(), table[f"{target}_std_log10"].to_numpy()
        keep = np.isfinite(x) & np.isfinite(y)
        cells = ax.hexbin(x[keep], y[keep], gridsize=50, bins="log", cmap="viridis")
        fig.colorbar(cells, ax=ax, label="structures per cell")
        ax.set_xlabel(f"predicted log10 {target} modulus (log10 GPa)")
        ax.set_ylabel("ensemble spread σ (log10 GPa)")
        ax.set_title(f"{target}: median σ {np.median(y[keep]):.3f} log10 GPa")

    return _per_target(table, "{t}_std_log10", draw, path)


def flags(table: pd.DataFrame, path: Path) -> Path:
    names = [c for c in table if c.startswith("flag_")]
    fractions = [float(flag_set(table, name).mean()) if len(table) else 0.0 for name in names]
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
    ax.barh([n.removeprefix("flag_").replace("_", " ") for n in names], fractions, color="#dd8452")
    ax.set_xlabel("fraction of predicted structures")
    anyflag = float(table["flagged"].mean()) if "flagged" in table and len(table) else 0.0
    ax.set_title(f"applicability flags ({100 * anyflag:.1f}% have at least one)")
    ax.set_xlim(0, max(max(fractions, default=0) * 1.2, 0.05))
    return _written(fig, path)
