"""``zoo benchmark --tune-trials N``: per fold and group, an Optuna study chooses the
hyperparameters on that fold's inner split only (its training entries and its inner validation
entries; the test fold is never seen), then the fold model is trained with the best trial's
values. Each study lives in ``fold<k>/tune-<group>/`` (SQLite storage, trial run folders), so a
rerun continues it and a finished study is only read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml


def study_spec(spec, run, split_file: Path):
    """The study of one fold and group (``spec`` a :class:`zoo.benchmark.BenchmarkSpec`,
    ``run`` a :class:`zoo.benchmark.FoldRun`): the benchmark's config file and ``--set`` keys are
    fixed (the space samples the rest), the inner split is the split."""
    from zoo.config import flatten
    from zoo.tuning.spec import StudySpec

    fixed = flatten(yaml.safe_load(Path(spec.config).read_text()) or {}) if spec.config else {}
    for key in ("model", "targets", "evaluate_test"):
        fixed.pop(key, None)
    folder = split_file.parent
    return StudySpec(
        model=spec.model,
        targets=list(run.targets),
        trials=spec.tune_trials,
        data=f"zoo benchmark {spec.folder()}, fold {run.fold}",
        split=str(split_file),
        study=f"{spec.folder().name}-fold{run.fold}-{run.group}",
        storage=f"sqlite:///{(folder / 'optuna.db').resolve()}",
        threads=spec.threads,
        seed=0,
        overrides={**fixed, **spec.overrides, "data.path": None},  # the data is in memory
        output_dir=str(folder / "trials"),
    )


def tuned_runs(spec, runs: list, table, dataset, log=print) -> list:
    """``runs`` with each config replaced by its fold's and group's best trial."""
    from zoo.splits import write_assignment
    from zoo.tuning.study import run_study

    best: dict = {}
    tuned = []
    for run in runs:
        key = (run.fold, run.targets)
        if key not in best:
            folder = spec.folder() / f"fold{run.fold}" / f"tune-{run.group}"
            folder.mkdir(parents=True, exist_ok=True)
            ids = table.split_ids(run.fold, spec.val_fraction)
            split_file = folder / "split.csv"
            # test entries are listed as such, but trials never evaluate them (evaluate_test False)
            write_assignment(split_file, {i: s for s in ("train", "val", "test") for i in ids[s]})
            study_of = study_spec(spec, run, split_file)
            log(f"fold {run.fold}, {run.group}: Optuna study of {spec.tune_trials} trials")
            study = run_study(study_of, log=log, dataset=dataset)
            values = study_of.load_space().values_of(study.best_trial.params)
            best[key] = (study_of, values)
        study_of, values = best[key]
        config = study_of.trial_config(
            values,
            evaluate_test=True,
            seed=run.seed,
            **{"data.split_file": None},  # the fold's split (with its test fold) is given
            output_dir=str(run.folder.parent),
            run_name=run.folder.name,
            experiment=run.config.experiment,
        )
        tuned.append(dataclasses.replace(run, config=config))
    return tuned
