"""``zoo tune --final``: refit the best configuration on train+val, test it once, register it.

The refit uses the best trial's configuration with ``fit_on = "train+val"`` (same epochs, no
validation, the last epoch's model) and evaluates the test split once. It is logged as a run
nested under the study, with the model bundle as a pyfunc model, and registered as
``<variant>-<targets>`` (``cgcnn-shear``, ``cgcnn-mt-shear-bulk``). The alias ``champion`` moves
to the new version only if the study's best validation MAE (the score of the configuration, as
the refit itself has no validation split) beats the current champion's.
"""

from __future__ import annotations

import optuna

from tuning.study import StudySpec


def registered_name(model: str, targets: list[str]) -> str:
    return f"{model}-{'-'.join(targets)}"


def refit_and_register(spec: StudySpec, study: optuna.Study, parent_run_id: str, log=print):
    """See the module docstring. Returns ``(TrainResult, version, became_champion)``."""
    import mlflow

    from zoo import tracking
    from zoo.serving import log_pyfunc, register
    from zoo.training import train

    try:
        best = study.best_trial
    except ValueError as error:
        raise ValueError(f"study {spec.study_name} has no complete trial to refit") from error
    values = spec.load_space().values_of(best.params)
    config = spec.trial_config(
        values,
        fit_on="train+val",
        evaluate_test=True,
        patience=None,
        run_name=f"final-trial-{best.number:04d}",
    )
    log(f"refitting trial {best.number} on train+val for {config.epochs} epochs")
    result = train(
        config,
        mlflow_parent_run_id=parent_run_id,
        tags={
            "optuna.study": spec.study_name,
            "zoo.kind": "final",
            "zoo.best_trial": str(best.number),
        },
    )
    tracking.setup(spec.experiment)
    with mlflow.start_run(run_id=result.run_id):
        info = log_pyfunc(result.bundle_path)
    tags = {
        "zoo.data": spec.data_label,
        "zoo.split": spec.split_label,
        "zoo.study": spec.study_name,
        "zoo.best_trial": str(best.number),
        "zoo.run_id": result.run_id,
    }
    for key, value in result.metrics.items():
        if key.startswith("test_"):
            tags[f"zoo.{key}"] = f"{value:.6g}"
    version, champion = register(
        info.model_uri,
        registered_name(spec.model, spec.targets),
        best.value,
        tags,
        log=log,
    )
    for key in sorted(k for k in result.metrics if k.startswith("test_") and "mae" in k):
        log(f"    {key} = {result.metrics[key]:.4f}")
    return result, version, champion
