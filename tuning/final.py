"""``zoo tune --final``: refit the best configuration on train+val, test it once, register it.

The refit uses the best trial's configuration with ``fit_on = "train+val"`` (same epochs, no
validation, the last epoch's model) and evaluates the test split once. It is logged as a run
nested under the study, with the model bundle as a pyfunc model, and registered as
``<variant>-<targets>`` (``cgcnn-shear``, ``cgcnn-mt-shear-bulk``). The alias ``champion`` moves
to the new version only if the study's best validation MAE (the score of the configuration, as
the refit itself has no validation split) beats the current champion's.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from zoo.serving import pyfunc_of_run, register
from zoo.tuning.spec import StudySpec


def registered_name(model: str, targets: list[str]) -> str:
    return f"{model}-{'-'.join(targets)}"


def refit_and_register(spec: StudySpec, study: optuna.Study, parent_run_id: str, log=print):
    """See the module docstring. Returns ``(TrainResult, version, became_champion)``.

    Every step can be repeated after a kill: the refit has a fixed folder (``final-trial-N``
    beside the trials) that a repeat continues or, finished, just reads; the pyfunc model is
    logged once per run and the run is registered once per model name."""
    from zoo import tracking
    from zoo.run_folder import start_run_folder
    from zoo.training import train

    try:
        best = study.best_trial
    except ValueError as error:
        raise ValueError(f"study {spec.study_name} has no complete trial to refit") from error
    values = spec.load_space().values_of(best.params)
    name = f"final-trial-{best.number:04d}"
    config = spec.trial_config(
        values, fit_on="train+val", evaluate_test=True, patience=None, run_name=name
    )
    folder = start_run_folder(Path(config.output_dir) / name, config.to_yaml())
    log(f"refitting trial {best.number} on train+val for {config.epochs} epochs ({folder})")
    result = train(
        resume=folder,
        mlflow_parent_run_id=parent_run_id,
        tags={
            "optuna.study": spec.study_name,
            "zoo.kind": "final",
            "zoo.best_trial": str(best.number),
        },
    )
    tracking.setup(spec.experiment)
    model_uri = pyfunc_of_run(result.run_id, result.bundle_path)
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
        model_uri,
        registered_name(spec.model, spec.targets),
        best.value,
        tags,
        log=log,
    )
    for key in sorted(k for k in result.metrics if k.startswith("test_") and "mae" in k):
        log(f"    {key} = {result.metrics[key]:.4f}")
    return result, version, champion
