"""The study's summary in its MLflow parent run: best value and parameters, the trials table,
and Optuna's plots (optimisation history, parameter importances, parallel coordinates) as
interactive HTML and as PNG."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from zoo import names

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")
OBJECTIVE_LABEL = "validation MAE (log10 GPa)"
"""What a trial's value is, as the plots' axes name it."""


def trials_table(study: optuna.Study):
    """One row per trial: number, state, value (best validation MAE, log10 GPa), parameters,
    duration, MLflow run id."""
    frame = study.trials_dataframe(
        attrs=("number", "state", "value", "params", "duration", "user_attrs")
    )
    keep = [c for c in frame.columns if not c.startswith("user_attrs_") or c.endswith("run_id")]
    return frame[keep].rename(columns={"user_attrs_zoo.mlflow_run_id": "mlflow_run_id"})


def write_plots(study: optuna.Study, folder: Path) -> list[Path]:
    """Optuna's plots of ``study`` into ``folder``: HTML that works offline (plotly.js is inside
    the file) and PNG; the objective is named with its unit. Optuna's matplotlib style sheet
    stays inside these figures (``rc_context``). A plot that needs more finished trials than
    the study has (importances need two complete trials with varied parameters) is left out."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        (folder / "plots.txt").write_text("no plots: the study has no complete trial yet\n")
        return written
    for name in PLOTS:
        try:
            with warnings.catch_warnings(), matplotlib.rc_context():
                warnings.simplefilter("ignore")
                written += _draw(study, name, folder)
        except (ValueError, RuntimeError, ZeroDivisionError) as error:
            (folder / f"{name}.txt").write_text(f"not drawn: {error}\n")
    return written


def _draw(study: optuna.Study, name: str, folder: Path) -> list[Path]:
    import matplotlib.pyplot as plt
    import optuna.visualization as interactive
    import optuna.visualization.matplotlib as static

    figure = getattr(interactive, f"plot_{name}")(study, target_name=OBJECTIVE_LABEL)
    figure.write_html(folder / f"{name}.html", include_plotlyjs=True)
    axes = getattr(static, f"plot_{name}")(study, target_name=OBJECTIVE_LABEL)
    fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    fig.set_size_inches(9, 5)
    fig.tight_layout()
    fig.savefig(folder / f"{name}.png", dpi=110)
    plt.close(fig)
    return [folder / f"{name}.html", folder / f"{name}.png"]


def summarise(spec, study: optuna.Study, parent_run_id: str, log=print) -> None:
    """Log the summary into the parent run and print it."""
    import mlflow
    from mlflow import MlflowClient

    from zoo import tracking

    tracking.setup(spec.experiment)
    client = MlflowClient()
    trials = study.get_trials(deepcopy=False)
    counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    finished = counts["complete"] + counts["pruned"]
    summary = {
        names.STUDY_COUNTS[0]: len(trials),
        names.STUDY_COUNTS[1]: counts["complete"],
        names.STUDY_COUNTS[2]: counts["pruned"],
        names.STUDY_COUNTS[3]: counts["fail"],
        names.STUDY_COUNTS[4]: counts["pruned"] / finished if finished else 0.0,
    }
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.log_metrics(summary)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trial
            mlflow.log_metric(names.BEST_OBJECTIVE, best.value)
            mlflow.set_tags(
                {
                    "best_trial": str(best.number),
                    **{f"best.{k}": str(v) for k, v in best.params.items()},
                }
            )
        with tempfile.TemporaryDirectory() as folder:
            folder = Path(folder)
            table = trials_table(study)
            table.to_csv(folder / "trials.csv", index=False)
            paths = [folder / "trials.csv", *write_plots(study, folder)]
            paths += list(folder.glob("*.txt"))
            for path in paths:
                mlflow.log_artifact(str(path), artifact_path="study")
    # an unfinished study (interrupted, timed out) shows as killed until it is resumed
    client.set_terminated(parent_run_id, status="FINISHED" if finished >= spec.trials else "KILLED")
    log(
        f"study {spec.study_name}: {len(trials)} trials ({counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['fail']} failed)"
    )
    if complete:
        best = study.best_trial
        log(f"best: trial {best.number}, validation MAE {best.value:.4f} log10 GPa")
        for key, value in best.params.items():
            log(f"    {key} = {value}")
