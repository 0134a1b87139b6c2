"""Optuna studies over :func:`zoo.training.train`, every trial a nested MLflow run.

``run_study`` is what ``zoo tune`` does:

1. open (or resume) the study in its storage and its MLflow parent run (experiment
   ``tune-<study>``; the parent run id is kept in the study, so every worker and every resume
   logs under the same parent);
2. take back trials of killed or interrupted workers (:mod:`tuning.storage`);
3. run trials, in this process or in ``jobs`` worker processes sharing the storage, until the
   study holds ``trials`` finished (complete or pruned) trials. Each trial samples the search
   space, calls the same ``train`` as ``zoo train`` with the test split left out, reports the
   validation MAE after every epoch to the pruner and returns the best validation MAE (log10
   GPa; for a multitask model the score of ``target_score``, the mean or geometric mean over
   targets). A trial that raises is marked failed and the study goes on;
4. summarise into the parent run: best value and parameters, the trials table, Optuna's plots;
5. with ``final``: :func:`tuning.final.refit_and_register`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import TrialState

from zoo import names
from zoo.processes import owner_token
from zoo.tuning.final import refit_and_register
from zoo.tuning.report import summarise
from zoo.tuning.space import SearchSpace
from zoo.tuning.spec import StudySpec
from zoo.tuning.storage import (
    INTERRUPTED_ATTR,
    OUTPUT_ATTR,
    OWNER_ATTR,
    open_storage,
    take_back_interrupted,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PARENT_ATTR = "zoo.mlflow_parent_run_id"
RUN_ID_ATTR = "zoo.mlflow_run_id"
MAX_FAILURES = 5
"""A worker gives up after this many failed trials in a row (a broken setting, not bad luck)."""
POLL_SECONDS = 2.0
"""How often a worker with no trial left to start looks whether the others' trials ended."""


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """``median``: stop a trial whose validation MAE is worse than the median of earlier trials
    at the same epoch, after a quarter of the epochs (one-cycle warm-up makes earlier epochs
    uninformative) and 4 finished trials; ``hyperband``: successive halving from a tenth of the
    epochs, factor 3; ``none``."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(1, epochs // 4))
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=max(1, epochs // 10), max_resource=epochs, reduction_factor=3
        )
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; use median, hyperband or none")


def open_study(spec: StudySpec) -> tuple[SearchSpace, optuna.Study]:
    """The validated search space, and the study created or loaded. The pruner is sized by the
    trials' epochs; the TPE sampler (5 random start-up trials) is seeded from the seed, the worker
    number and the trials already in the study, so parallel workers and resumed studies do not
    draw the same parameters again."""
    space = spec.load_space()
    epochs = spec.trial_config(space.corners()[0]).epochs
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=spec.study_name,
        storage=open_storage(spec.storage, spec.study_name, spec.heartbeat),
        direction="minimize",
        pruner=make_pruner(spec.pruner, epochs),
        load_if_exists=True,
    )
    seed = spec.seed * 1_000_003 + spec.worker * 7919 + len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    return space, study


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def committed_trials(study: optuna.Study) -> int:
    """Finished trials plus those running now (in any worker)."""
    return len(study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING)))


class Objective:
    """One trial: sample, train (the same ``train`` as ``zoo train``), report, return."""

    def __init__(self, spec: StudySpec, space: SearchSpace, dataset, parent_run_id: str | None):
        self.spec, self.space, self.dataset = spec, space, dataset
        self.parent_run_id = parent_run_id
        self.status = lambda text: None  # shows the live trial's epoch (the progress bar)

    def __call__(self, trial: optuna.Trial) -> float:
        from zoo.training import StopTraining, train

        trial.set_user_attr(OWNER_ATTR, owner_token())
        values = self.space.sample(trial)
        config = self.spec.trial_config(values, run_name=f"trial-{trial.number:04d}", patience=None)
        folder = self._folder(trial, config)
        seen: dict = {"run_id": None, "best": math.inf}

        def opened(output_dir: Path, run_id: str | None) -> None:
            seen["run_id"] = run_id
            if run_id:
                trial.set_user_attr(RUN_ID_ATTR, run_id)

        def report(epoch: int, row: dict) -> None:
            score = row[names.score("val")]
            seen["best"] = min(seen["best"], score)
            self.status(f"trial {trial.number}: epoch {epoch}/{config.epochs}, val {score:.4f}")
            trial.report(score, epoch)
            if trial.should_prune():
                raise StopTraining(f"pruned by Optuna at epoch {epoch}")

        tags = {
            "optuna.study": self.spec.study_name,
            "optuna.trial_number": str(trial.number),
        }
        state = "FAIL"
        try:
            self._replay(trial, folder)
            result = train(
                resume=folder,
                dataset=self.dataset,
                on_epoch=report,
                on_start=opened,
                progress=False,
                mlflow_parent_run_id=self.parent_run_id,
                tags=tags,
                log_model=False,  # a trial keeps its bundle; the refit is the model to use
            )
            seen["run_id"] = result.run_id
            value = min(row[names.score("val")] for row in result.history)
            seen["best"] = value  # also over epochs a continued trial ran before its kill
            state = "COMPLETE"
            return value
        except StopTraining as stop:
            state = "PRUNED"
            raise optuna.TrialPruned(str(stop)) from stop
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED_ATTR, True)
            state = "INTERRUPTED"
            raise
        finally:
            self._tag_run(seen, trial, state, tags)

    @staticmethod
    def _folder(trial: optuna.Trial, config) -> Path:
        """The trial's run folder, named in the trial *before* it is created, so that a trial
        continued after a kill at any instant finds it (and its MLflow run) again: a continued
        trial inherits the folder of the trial it continues (:func:`tuning.storage.requeue`)."""
        from zoo.faults import failpoint
        from zoo.run_folder import start_run_folder
        from zoo.training import run_folder_for

        folder = trial.user_attrs.get(OUTPUT_ATTR)
        if folder is None:
            folder = str(run_folder_for(config).resolve())
            trial.set_user_attr(OUTPUT_ATTR, folder)
            failpoint("trial-planned")
        return start_run_folder(Path(folder), config.to_yaml())

    def _replay(self, trial: optuna.Trial, folder: Path) -> None:
        """Report the epochs a continued trial already ran, so the pruner sees them."""
        from zoo.training import read_checkpoint

        checkpoint = read_checkpoint(folder)
        if checkpoint is None:
            return
        for row in checkpoint["history"]:
            trial.report(row[names.score("val")], row["epoch"])

    def _tag_run(self, seen: dict, trial: optuna.Trial, state: str, tags: dict) -> None:
        run_id = seen["run_id"] or trial.user_attrs.get(RUN_ID_ATTR)
        if run_id is None:
            return
        from mlflow import MlflowClient

        client = MlflowClient()
        for key, value in {**tags, "optuna.state": state}.items():
            client.set_tag(run_id, key, value)
        if math.isfinite(seen["best"]):
            client.log_metric(run_id, names.OBJECTIVE, seen["best"])
        if state in ("COMPLETE", "PRUNED"):  # the runs table shows the name at first look
            base = client.get_run(run_id).info.run_name.split(" · ")[0]
            shown = f"{seen['best']:.4f}" if state == "COMPLETE" else "pruned"
            client.update_run(run_id, name=f"{base} · {shown}")


def work(
    spec: StudySpec,
    deadline: float | None = None,
    log=print,
    opened: tuple[SearchSpace, optuna.Study] | None = None,
    dataset=None,
) -> None:
    """Run trials in this process until the study holds ``spec.trials`` finished trials, the
    deadline passes or ``MAX_FAILURES`` trials in a row fail. ``opened``: the space and study
    when the caller has them already (otherwise :func:`open_study`); ``dataset``: the data in
    memory (otherwise the spec's data file is read)."""
    from zoo import tracking
    from zoo.training import read_config_dataset

    space, study = opened or open_study(spec)
    tracking.setup(spec.experiment)
    parent = study.user_attrs.get(PARENT_ATTR)
    if dataset is None:
        dataset = read_config_dataset(spec.trial_config({}))  # once per worker, shared by trials
    objective = Objective(spec, space, dataset, parent)
    failures = 0
    bar = trials_bar(spec, study)
    objective.status = bar.set_postfix_str
    while failures < MAX_FAILURES:
        if deadline is not None and time.time() >= deadline:
            log("timeout reached")
            break
        if committed_trials(study) >= spec.trials and not _others_left_work(study, spec):
            break
        ran: list = []
        study.optimize(
            objective,
            n_trials=1,
            catch=(Exception,),
            callbacks=[lambda _study, trial, ran=ran: ran.append(trial)],
            gc_after_trial=True,
        )
        failures = failures + 1 if ran[-1].state == TrialState.FAIL else 0
        bar.update(min(finished_trials(study), spec.trials) - bar.n)
        line = _trial_line(study, ran[-1], spec.trials)
        if bar.disable:
            log(line)
        else:
            bar.write(line)
    bar.close()
    if failures >= MAX_FAILURES:
        raise RuntimeError(
            f"{MAX_FAILURES} trials in a row failed; see the failed runs in MLflow "
            f"(experiment {spec.experiment}) for the error"
        )


def _others_left_work(study: optuna.Study, spec: StudySpec) -> bool:
    """The study holds its trials, but some are still running in other workers: look again every
    ``POLL_SECONDS`` (so the worker, and ``zoo tune --jobs``, ends within seconds of the last
    trial) and, once per heartbeat, take back stale trials. True as soon as a trial is free to
    run (a killed worker's trial, taken back through its stopped heartbeat or, on this host, its
    gone owner, and queued to continue); False when every trial has finished. A worker that
    finished its own trials so stays to take over one that another machine's worker can no
    longer finish."""
    last_stale_check = time.monotonic()
    while committed_trials(study) >= spec.trials:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if finished_trials(study) >= spec.trials or not running:
            return False
        time.sleep(min(POLL_SECONDS, max(1.0, spec.heartbeat)))
        if time.monotonic() - last_stale_check >= spec.heartbeat:
            last_stale_check = time.monotonic()
            with warnings.catch_warnings():  # flagged experimental since Optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)  # requeues through its callback
            take_back_interrupted(study)
    return True


def trials_bar(spec: StudySpec, study: optuna.Study, disable: bool | None = None):
    """A progress bar over the study's finished trials (the live trial's epoch after it);
    worker processes of ``--jobs`` leave it to their parent (:func:`_run_workers`)."""
    from zoo.progress import CountBar

    return CountBar(
        total=spec.trials,
        initial=min(finished_trials(study), spec.trials),
        desc=f"study {spec.study_name}",
        unit="trials",
        disable=not spec.progress if disable is None else disable,
        dynamic_ncols=True,
    )


def _trial_line(study: optuna.Study, trial, target: int) -> str:
    done = finished_trials(study)
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    try:
        best = f"{study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "-"
    return (
        f"[{done}/{target}] trial {trial.number}: {trial.state.name.lower()}, val MAE {value}; "
        f"best {best}"
    )


def _worker(spec: StudySpec, deadline: float | None) -> None:
    import zoo._backend  # noqa: F401

    work(spec, deadline)


def _ensure_parent_run(spec: StudySpec, study: optuna.Study, space_path: Path) -> str:
    """The study's MLflow parent run (its id kept in the study, so every worker and every
    resume logs under the same one)."""
    from zoo import tracking

    known = study.user_attrs.get(PARENT_ATTR)
    run_id = tracking.open_parent_run(
        spec.experiment,
        known,
        name=f"study-{spec.study_name}",
        tags={
            "optuna.study": spec.study_name,
            "zoo.model": spec.model,
            "zoo.targets": ",".join(spec.targets),
            "zoo.data": spec.data_label,
            "zoo.split": spec.split_label,
            "zoo.kind": "study",
        },
        params={
            "study": spec.study_name,
            "pruner": spec.pruner,
            "storage": spec.storage or "default sqlite",
            "space": str(space_path),
        },
        texts={"search_space.yaml": space_path.read_text()},
    )
    if known is None:
        study.set_user_attr(PARENT_ATTR, run_id)
        study.set_user_attr("zoo.space", space_path.read_text())
    return run_id


def run_study(spec: StudySpec, log=print, dataset=None) -> optuna.Study:
    """``zoo tune``; see the module docstring. Returns the study. ``dataset``: the data in
    memory, for a study in this process (``jobs`` 1; ``zoo benchmark --tune-trials``)."""
    if dataset is not None and spec.jobs > 1:
        raise ValueError("a data set in memory is tuned in this process only (jobs 1)")
    space, study = open_study(spec)
    parent = _ensure_parent_run(spec, study, spec.space_path())
    taken = take_back_interrupted(study)
    if taken:
        log(f"continuing interrupted trials {taken} from their last epoch")
    log(
        f"study {spec.study_name}: {finished_trials(study)}/{spec.trials} trials finished; "
        f"storage {spec.storage or 'default'}; MLflow experiment {spec.experiment}, parent run "
        f"{parent}"
    )
    deadline = time.time() + spec.timeout if spec.timeout else None
    try:
        if spec.jobs > 1:
            _run_workers(spec, study, deadline)
        else:
            work(spec, deadline, log, opened=(space, study), dataset=dataset)
    finally:
        summarise(spec, study, parent, log)
    if spec.final:
        refit_and_register(spec, study, parent, log)
    return study


@contextmanager
def _terminate_as_interrupt():
    """SIGTERM to the launcher raises KeyboardInterrupt, so its workers are stopped too."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_workers(spec: StudySpec, study: optuna.Study, deadline: float | None) -> None:
    """``jobs`` processes, each running trials against the shared storage, ``threads`` torch
    threads each (default: the cores divided among them)."""
    threads = spec.threads or max(1, (os.cpu_count() or 1) // spec.jobs)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(
                StudySpec(
                    **{
                        **spec.__dict__,
                        "jobs": 1,
                        "threads": threads,
                        "final": False,
                        "worker": i,
                        "progress": False,
                    }  # fmt: skip
                ),
                deadline,
            ),
            name=f"zoo-tune-{i}",
        )
        for i in range(spec.jobs)
    ]
    for process in processes:
        process.start()
    bar = trials_bar(spec, study, disable=not spec.progress)
    try:
        with _terminate_as_interrupt():
            while any(p.is_alive() for p in processes):
                time.sleep(2)
                bar.update(min(finished_trials(study), spec.trials) - bar.n)
            for process in processes:
                process.join()
    except KeyboardInterrupt:
        for process in processes:  # workers stop at their next batch and keep their epochs
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join()
        raise
    finally:
        bar.close()
    bad = [p.name for p in processes if p.exitcode not in (0, None)]
    if bad:
        raise RuntimeError(f"tuning workers {bad} failed; see their output above")
