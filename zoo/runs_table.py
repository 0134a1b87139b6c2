"""The runs of the MLflow store as one table of the numbers people compare (``zoo runs``)."""

from __future__ import annotations

import pandas as pd

from zoo import names

COLUMNS = ("model", "targets", "data", "split", "seed", "epochs", "best epoch")


def runs_table(
    experiments: list[str] | None = None,
    filter_string: str = "",
    sort: str | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """One row per training run (parent runs of studies and benchmarks left out): model,
    targets, data, split, seed, epochs, best epoch, validation and test MAE per target in log10
    GPa and GPa, training minutes, run id. ``sort``: a metric name (ascending, e.g.
    ``test_shear_mae_log10``) or ``start`` (newest first, the default)."""
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
    rows = [_row(run) for run in found if run.data.params.get("epochs") is not None]
    return pd.DataFrame(rows)


def _split_label(split_file: str | None) -> str:
    if split_file in (None, "", "None"):
        return "seeded fractions"
    return split_file.split("/")[-1][-30:]


def _row(run) -> dict:
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    targets = tags.get("zoo.targets", "").split(",")
    row = {
        "run": (run.info.run_name or "").split(" · ")[0]
        if " · " in (run.info.run_name or "")
        else "",
        "model": tags.get("zoo.model", ""),
        "targets": "+".join(targets),
        "data": tags.get("zoo.data", "").split(":")[0][-40:],
        "split": _split_label(params.get("data.split_file")),
        "seed": params.get("seed", ""),
        "epochs": metrics.get(names.EPOCHS_RUN),
        "best epoch": metrics.get(names.BEST_EPOCH),
    }
    for split in ("val", "test"):
        for target in targets:
            for unit in ("log10", "gpa"):
                key = names.split_metric(split, target, "mae", unit)
                row[f"{split} {target} MAE ({'log10' if unit == 'log10' else 'GPa'})"] = (
                    metrics.get(key)
                )
    seconds = metrics.get(names.TRAIN_SECONDS)
    row["minutes"] = None if seconds is None else round(seconds / 60, 1)
    row["status"] = run.info.status
    row["run id"] = run.info.run_id
    return row
