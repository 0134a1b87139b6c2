"""Issue 17's published data set: ``zoo screen`` with the shipped model on the 36,737 real
Materials Project structures of ``../shared/data/mp_structures_36k.json.gz``, its data card,
plots and a sample of rows copied to ``docs/dataset/``, with a comparison against the DFT
moduli where the project has them (``mp_elasticity_2024.json.gz``): crystals the shipped model
was trained on (its train+val split) apart from those it never saw (the test split).

    python bench/publish_dataset.py            # screens (resumes) and writes docs/dataset/
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
from _common import RESULTS, ROOT, SHARED

SOURCE = SHARED / "data" / "mp_structures_36k.json.gz"
LABELS = SHARED / "data" / "mp_elasticity_2024.json.gz"
SPLIT = SHARED / "data" / "mp_elasticity_2024_split.csv"
OUT = RESULTS / "published-36k"
DOCS = ROOT / "docs" / "dataset"
MODEL = "zoo-elastic-mp2024"
SAMPLE_ROWS = 300
FULL_TABLE_LIMIT_MB = 12


def screen() -> None:
    command = [sys.executable, "-m", "zoo.cli", "screen", "--input", str(SOURCE), "--model",
               MODEL, "-o", str(OUT), "--workers", "2"]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True)


def dft_comparison() -> tuple[pd.DataFrame, dict]:
    """Predicted against DFT for every screened crystal with DFT moduli, by split."""
    table = pd.read_parquet(
        OUT / "screen.parquet",
        columns=["id", "shear_gpa", "bulk_gpa", "shear_std_log10", "bulk_std_log10"],
    )
    with __import__("gzip").open(LABELS, "rt") as handle:
        labels = pd.DataFrame(json.load(handle))[["mp_id", "shear_modulus_vrh",
                                                  "bulk_modulus_vrh"]]  # fmt: skip
    split = pd.read_csv(SPLIT)
    joined = table.merge(labels, left_on="id", right_on="mp_id").merge(split, on="mp_id")
    joined["seen_in_training"] = joined["split"].isin(["train", "val"])
    summary = {"screened": len(table), "with_dft": len(joined),
               "training_crystals": int(joined["seen_in_training"].sum())}  # fmt: skip
    for seen, part in joined.groupby("seen_in_training"):
        key = "training (train+val)" if seen else "never seen (test split)"
        summary[key] = {"crystals": len(part)}
        for target, column in (("shear", "shear_modulus_vrh"), ("bulk", "bulk_modulus_vrh")):
            error = np.log10(part[f"{target}_gpa"]) - np.log10(part[column])
            inside = np.abs(error) <= part[f"{target}_std_log10"]
            summary[key][target] = {
                "mae_log10": round(float(np.abs(error).mean()), 4),
                "mae_gpa": round(float(np.abs(part[f"{target}_gpa"] - part[column]).mean()), 2),
                "within_1sigma": round(float(inside.mean()), 3),
            }
    return joined, summary


def parity(joined: pd.DataFrame) -> None:
    """Predicted against DFT, training crystals grey, never-seen crystals red (log axes)."""
    from zoo.plots import _save, plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, (target, column) in zip(axes, (("shear", "shear_modulus_vrh"),
                                           ("bulk", "bulk_modulus_vrh")), strict=True):  # fmt: skip
        for seen, colour, label in ((True, "#bbbbbb", "in training (train+val)"),
                                    (False, "#dd5555", "never seen (test split)")):  # fmt: skip
            part = joined[joined["seen_in_training"] == seen]
            ax.scatter(part[column], part[f"{target}_gpa"], s=4, alpha=0.5, c=colour,
                       label=f"{label}: {len(part)}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        low, high = 1, 600
        ax.plot([low, high], [low, high], "k--", lw=1)
        symbol = "G" if target == "shear" else "K"
        ax.set_xlabel(f"DFT {symbol}_VRH (GPa, Materials Project)")
        ax.set_ylabel(f"predicted {symbol}_VRH (GPa, {MODEL})")
        ax.set_title(f"{target} modulus")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    _save(fig, DOCS / "parity-vs-dft.png")


def publish() -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in ("card.md", "card.json", "summary.json", "errors.csv"):
        shutil.copy(OUT / name, DOCS / name)
    for picture in OUT.glob("*.png"):
        shutil.copy(picture, DOCS / picture.name)
    table = pd.read_parquet(OUT / "screen.parquet")
    table.sample(SAMPLE_ROWS, random_state=0).sort_values("id").to_csv(
        DOCS / "sample.csv", index=False, float_format="%.6g"
    )
    full = DOCS / "screen.parquet"
    table.to_parquet(full, index=False, compression="zstd")
    if full.stat().st_size > FULL_TABLE_LIMIT_MB * 1e6:
        full.unlink()
    joined, summary = dft_comparison()
    parity(joined)
    (DOCS / "dft-comparison.json").write_text(json.dumps(summary, indent=2) + "\n")
    (DOCS / "README.md").write_text(readme(summary, full.exists()))
    print(json.dumps(summary, indent=2))


def readme(summary: dict, full_table: bool) -> str:
    """docs/dataset/README.md: what is here and how the predictions compare with DFT."""
    run = json.loads((OUT / "summary.json").read_text())
    lines = [
        "# Predicted elastic moduli of 36,737 Materials Project structures",
        "",
        f"`zoo screen` with the shipped `{MODEL}` on every structure of "
        "`../shared/data/mp_structures_36k.json.gz` (CIF text of the Materials Project "
        "structures in kdmsit/crysxpp at b12e52b8; Materials Project data are CC BY 4.0: cite "
        "Jain et al., APL Mater. 1, 011002 (2013)). Made by `python bench/publish_dataset.py`.",
        "",
        "- the data card: [card.md](card.md) ([card.json](card.json)); plots beside it",
        f"- {'the full table: [screen.parquet](screen.parquet); ' if full_table else ''}"
        f"a sample of {SAMPLE_ROWS} rows: [sample.csv](sample.csv); unusable entries with "
        "their reasons: [errors.csv](errors.csv)",
        f"- predicted {run['predicted']}, skipped {run['skipped']} "
        f"({run['skipped_by_reason'] or 'none'})",
        "",
        "## Against DFT where it is known",
        "",
        f"{summary['with_dft']} of the screened crystals have DFT moduli in "
        f"`mp_elasticity_2024.json.gz`; {summary['training_crystals']} of them were in the "
        "shipped model's training data (train+val), the rest (its test split) it never saw. "
        "Parity plot: [parity-vs-dft.png](parity-vs-dft.png).",
        "",
        "| crystals | count | shear MAE (log10 GPa / GPa) | bulk MAE (log10 GPa / GPa) "
        "| within ±1σ (shear / bulk) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("training (train+val)", "never seen (test split)"):
        part = summary[key]
        s, b = part["shear"], part["bulk"]
        lines.append(
            f"| {key} | {part['crystals']} | {s['mae_log10']:.4f} / {s['mae_gpa']:.1f} | "
            f"{b['mae_log10']:.4f} / {b['mae_gpa']:.1f} | {100 * s['within_1sigma']:.0f}% / "
            f"{100 * b['within_1sigma']:.0f}% |"
        )
    lines += ["", "The other crystals have no DFT moduli in this project: their predictions "
              "are the data set's new content, with the card's flags and spreads."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    screen()
    publish()
