"""The data card of a screen: what the table is, how it was made, every column with its units
and formula, counts, and summary plots; written as ``card.json`` and ``card.md`` beside the
table, from the output folder alone (so it can be rebuilt at any time)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from zoo import derived
from zoo.faults import failpoint
from zoo.screen_chunk import FLAG_COLUMNS, flag_set
from zoo.screen_output import ERRORS, MANIFEST, TABLE, write_json

BASE_COLUMNS = {
    "id": ("", "the input's id (record id, file name or frame)"),
    "formula": ("", "reduced formula (pymatgen)"),
    "n_sites": ("1", "atoms per cell"),
    "density_g_cm3": ("g/cm³", "mass of the cell's atoms / cell volume"),
    "volume_per_atom_a3": ("Å³", "cell volume / atoms"),
}
TARGET_COLUMNS = {
    "{t}_gpa": ("GPa", "predicted {name} (VRH), 10^{t}_log10"),
    "{t}_log10": ("log10 GPa", "predicted {name}: the model output (an ensemble: members' mean)"),
    "{t}_std_log10": ("log10 GPa", "ensemble spread: members' standard deviation × its scale"),
    "{t}_gpa_low": ("GPa", "10^(mean − spread): lower end of the ±1σ interval"),
    "{t}_gpa_high": ("GPa", "10^(mean + spread): upper end of the ±1σ interval"),
}
FLAG_TEXT = {
    "flag_unseen_elements": "elements no training crystal held (space-separated; '' if none)",
    "flag_density_outside": "density outside the training crystals' range",
    "flag_sites_outside": "atoms per cell outside the training crystals' range",
    "flag_volume_per_atom_outside": "volume per atom outside the training crystals' range",
    "flag_many_atoms": "more atoms per cell than --max-atoms",
    "flag_few_neighbors": "an atom had fewer than max_neighbors neighbours within the radius",
}
MODULUS_NAMES = {"shear": "shear modulus G", "bulk": "bulk modulus K"}


def column_descriptions(columns: list[str]) -> list[dict]:
    """``name``, ``units``, ``formula`` (or meaning) and ``source`` of every column present."""
    known: dict[str, tuple[str, str, str]] = {k: (*v, "") for k, v in BASE_COLUMNS.items()}
    for target, name in MODULUS_NAMES.items():
        for pattern, (units, text) in TARGET_COLUMNS.items():
            column = pattern.format(t=target)
            known[column] = (units, text.format(t=target, name=name), "the model(s) below")
    for column in derived.DERIVED_COLUMNS:
        known[column.name] = (column.units, column.formula, column.source)
        known[f"{column.name}_std"] = (
            column.units,
            f"spread of {column.name}: the formula per ensemble member, then the std",
            "",
        )
    known["hardness_note"] = ("", "why hardness_vickers_gpa is NaN ('' if it has a value)", "")
    known.update({name: ("bool", text, "the models' training domain") for name, text in
                  FLAG_TEXT.items()})  # fmt: skip
    known["flagged"] = ("bool", "any flag set", "")
    known["warnings"] = ("", "what the structure parser warned about this entry", "")
    return [
        {"name": c, "units": known[c][0], "formula": known[c][1], "source": known[c][2]}
        for c in columns
        if c in known
    ]


def describe_models(records: list[dict]) -> list[dict]:
    """What the card says of each model: the manifest's record (spec, registry version,
    sha256) with its kind, members, variant, targets, training data and scores."""
    from zoo import pretrained
    from zoo.ensemble import Ensemble
    from zoo.resolve import model_file, resolve_model

    described = []
    for record in records:
        loaded = resolve_model(model_file(record["spec"]))
        members = loaded.members if isinstance(loaded, Ensemble) else [loaded]
        targets = list(members[0].transform.targets)
        info = {
            **record,
            "kind": "ensemble" if isinstance(loaded, Ensemble) else "model",
            "members": len(members),
            "variant": sorted({m.model_name for m in members}),
            "targets": targets,
            "training_data": members[0].train_data["name"],
            "training_crystals": (members[0].training_domain or {}).get("entries"),
            "test_mae_log10": _mean_test_mae(members, targets),
        }
        if pretrained.is_pretrained(record["spec"]):
            info["pretrained_record"] = pretrained.record(record["spec"])
            info["test_mae_log10"] = info["pretrained_record"]["test_mae_log10"]
            info["test_mae_of"] = "the ensemble, from its record"
        else:
            info["test_mae_of"] = (
                "mean of its members' bundles" if len(members) > 1 else "its bundle"
            )
        described.append(info)
    return described


def _mean_test_mae(members, targets) -> dict[str, float]:
    """Mean over members of each target's test MAE (log10 GPa), where the bundles hold one."""
    scores = {}
    for target in targets:
        found = [m.metrics.get(f"test_{target}_mae_log10") for m in members if m.metrics]
        found = [v for v in found if v is not None and np.isfinite(v)]
        if found:
            scores[target] = float(np.mean(found))
    return scores


def write_card(out_dir: str | Path, summary: dict) -> dict[str, str]:
    """``card.json``, ``card.md`` and the plots of the screen in ``out_dir``; returns the
    files written by kind."""
    import pyarrow.parquet as pq

    from zoo import screen_plots

    out = Path(out_dir)
    manifest = json.loads((out / MANIFEST).read_text())
    columns = pq.read_schema(out / TABLE).names
    wanted = [c for c in columns if c in _PLOTTED or c.startswith("flag")]
    table = pd.read_parquet(out / TABLE, columns=wanted)
    errors = pd.read_csv(out / ERRORS, dtype=str)
    plots = screen_plots.summary_plots(table, out)
    failpoint("card-part")
    card = {
        "title": f"zoo screen of {Path(manifest['input']['path'] or 'demo').name}",
        "created": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "code_version": manifest["code_version"],
        "input": manifest["input"],
        "models": describe_models(manifest["models"]),
        "counts": _counts(table, errors),
        "statistics": _statistics(table),
        "columns": column_descriptions(columns),
        "plots": {kind: path.name for kind, path in plots.items()},
        "run": summary,
    }
    write_json(out / "card.json", card)
    from zoo.files import atomic_write

    with atomic_write(out / "card.md") as partial:
        Path(partial).write_text(card_markdown(card))
    return {"data card": str(out / "card.md"), "table": str(out / TABLE)}


_PLOTTED = {"shear_gpa", "bulk_gpa", "shear_log10", "bulk_log10", "shear_std_log10",
            "bulk_std_log10", "flagged", "pugh_ratio", "ductility",
            "hardness_vickers_gpa"}  # fmt: skip


def _counts(table: pd.DataFrame, errors: pd.DataFrame) -> dict:
    counts = {
        "predicted": len(table),
        "skipped": len(errors),
        "skipped_by_stage": {str(k): int(v) for k, v in errors["stage"].value_counts().items()},
    }
    counts["flagged"] = {n: int(flag_set(table, n).sum()) for n in FLAG_COLUMNS if n in table}
    counts["flagged_any"] = int(table["flagged"].sum()) if "flagged" in table else 0
    return counts


def _statistics(table: pd.DataFrame) -> dict:
    """Median and 5th/95th percentiles of the moduli and the hardness; ductile fraction."""
    stats = {}
    for column in ("shear_gpa", "bulk_gpa", "hardness_vickers_gpa", "pugh_ratio"):
        if column in table and table[column].notna().any():
            values = table[column].dropna().to_numpy()
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            stats[column] = {
                "p5": round(float(p5), 3),
                "median": round(float(p50), 3),
                "p95": round(float(p95), 3),
            }
    if "ductility" in table:
        stats["ductile_fraction"] = round(float((table["ductility"] == "ductile").mean()), 4)
    return stats


def card_markdown(card: dict) -> str:
    """The card as Markdown (what a reader of the data set sees first)."""
    counts = card["counts"]
    lines = [
        f"# {card['title']}",
        "",
        f"Made by zoo {card['code_version']} on {card['created']} with `zoo screen`.",
        "",
        "## Input",
        "",
        f"- path: `{card['input']['path']}` (format `{card['input']['format']}`)",
        f"- fingerprint: `{card['input']['fingerprint']}`",
        "- licence and citation: those of the input structures",
        "",
        "## Models",
        "",
        "| spec | registry version | kind | variant | targets | trained on "
        "| test MAE (log10 GPa) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model in card["models"]:
        scores = ", ".join(f"{t} {v:.4f}" for t, v in model["test_mae_log10"].items()) or "—"
        if scores != "—":
            scores += f" ({model['test_mae_of']})"
        trained = model["training_data"] or "not recorded"
        if model["training_crystals"]:
            trained += f" ({model['training_crystals']} crystals)"
        lines.append(
            f"| `{model['spec']}` | {model['registry_version'] or '—'} | {model['kind']} "
            f"({model['members']}) | {', '.join(model['variant'])} | "
            f"{', '.join(model['targets'])} | {trained} | {scores} |"
        )
    lines += ["", "## Counts", ""]
    lines.append(f"- predicted: {counts['predicted']}; skipped: {counts['skipped']} "
                 f"({counts['skipped_by_stage'] or 'none'}; reasons in `errors.csv`)")  # fmt: skip
    flagged = counts["flagged_any"] / max(counts["predicted"], 1)
    lines.append(f"- flagged (outside the training domain in some way): {counts['flagged_any']} "
                 f"({100 * flagged:.1f}%): {counts['flagged']}")  # fmt: skip
    if any(m["training_crystals"] is None for m in card["models"]):
        lines.append("- a model here records no training domain (written before zoo 0.1's "
                     "bundle format 2): the domain flags are empty (NA) for it")  # fmt: skip
    for name, stats in card["statistics"].items():
        lines.append(f"- {name}: {stats}")
    lines += ["", "## Columns", "", "| column | units | formula or meaning | source |"]
    lines.append("| --- | --- | --- | --- |")
    for column in card["columns"]:
        lines.append(
            f"| `{column['name']}` | {column['units']} | {column['formula']} | {column['source']} |"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{kind}]({name})" for kind, name in card["plots"].items()]
    lines += ["", "## Limits", "",
              "Predictions of a graph network trained on DFT (PBE) VRH moduli of Materials "
              "Project crystals: read them as a screen, not as measurements; flagged rows are "
              "outside what the models saw in training. Derived properties use isotropic "
              "formulas and inherit the moduli's errors (their `*_std` columns carry the "
              "ensemble's spread only)."]  # fmt: skip
    return "\n".join(lines) + "\n"
