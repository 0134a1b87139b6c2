"""The runs of the MLflow store as one table of the numbers people compare (``zoo runs``)."""

from __future__ import annotations

import pandas as pd

from zoo import names


def runs_table(
    experiments: list[str] | None = None,
    filter_string: str = "",
    sort: str | None = None,
    limit: int = 50,
    wide: bool = False,
) -> pd.DataFrame:
    """One row per training run (parent runs of studies and benchmarks left out), as
    :func:`_row` makes it (a benchmark fold run's split is its official fold).
    ``sort``: a metric name (ascending, e.g. ``test_shear_mae_log10``) or ``start`` (newest
    first, the default)."""
    import mlflow

    from zoo import tracking

    tracking.quiet_logging()
    mlflow.set_tracking_uri(tracking.tracking_uri(create=False))
    names_ = experiments or [e.name for e in mlflow.search_experiments()]
    order = [f"metrics.{sort} ASC"] if sort and sort != "start" else ["attributes.start_time DESC"]
    found = mlflow.search_runs(
        experiment_names=names_,
        filter_string=filter_string,
        order_by=order,
        max_results=limit,
        output_format="list",
    )
    rows = [_row(run, wide) for run in found if run.data.params.get("epochs") is not None]
    return pd.DataFrame(rows)


def _short(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters at its end, with an ellipsis."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _short_name(name: str, width: int) -> str:
    """A run name cut to ``width`` characters, keeping the `` #2`` that tells two runs of the
    same name apart (``fold0-shear-bulk-se… #2``)."""
    stem, sep, number = name.rpartition(" #")
    if not (sep and number.isdigit()) or len(name) <= width:
        return _short(name, width)
    return _short(stem, width - len(sep + number)) + sep + number


def _file_name(path: str) -> str:
    """A data source as its file's name (``matbench_log_gvrh_subset.json.gz``)."""
    return path.split(":")[0].rstrip("/").split("/")[-1]


def _split_label(tags: dict, split_file: str | None) -> str:
    if tags.get("zoo.kind") == "benchmark-fold":
        return f"official fold {tags.get('zoo.fold', '?')}"
    if split_file in (None, "", "None"):
        return "seeded fractions"
    return _short(_file_name(split_file), 24)


SYMBOLS = {"shear": "G", "bulk": "K"}
"""Column headers name the moduli by their symbols (``test G``: test MAE of G_VRH)."""


def _row(run, wide: bool = False) -> dict:
    """One run's row: its MLflow name (unique in its experiment; it says the seed), model,
    data file, split, kept/run epochs, validation and test MAE per modulus (log10 GPa),
    minutes; ``wide`` adds targets, seed, MAE in GPa, status and the run id."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    targets = tags.get("zoo.targets", "").split(",")
    best, ran = metrics.get(names.BEST_EPOCH), metrics.get(names.EPOCHS_RUN)
    row = {
        "run": _short_name(run.info.run_name or "", 22),
        "model": tags.get("zoo.model", ""),
        "data": _short(_file_name(tags.get("zoo.data", "")), 19),
        "split": _split_label(tags, params.get("data.split_file")),
        "epochs": f"{best:.0f}/{ran:.0f}" if best is not None and ran is not None else None,
    }
    if wide:
        row["targets"] = "+".join(targets)
        row["seed"] = params.get("seed", "")
    units = ("log10", "gpa") if wide else ("log10",)
    for split in ("val", "test"):
        for target in targets:
            for unit in units:
                key = names.split_metric(split, target, "mae", unit)
                suffix = (" GPa" if unit == "gpa" else " log10") if wide else ""
                row[f"{split} {SYMBOLS.get(target, target)}{suffix}"] = metrics.get(key)
    seconds = metrics.get(names.TRAIN_SECONDS)
    row["min"] = None if seconds is None else f"{seconds / 60:.1f}"
    if wide:
        row["status"] = run.info.status
        row["run id"] = run.info.run_id
    return row
