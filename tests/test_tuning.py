"""zoo tune: search spaces, studies over the one training function, MLflow runs, pruning,
failures, killed studies, shared storages, the train+val refit and the registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from optuna.trial import TrialState

import zoo
from zoo import tracking
from zoo.cli import main
from zoo.models import list_models
from zoo.readers.demo import DEMO_SOURCE
from zoo.tuning.space import SPACES_DIR, default_space_path, load_space
from zoo.tuning.storage import OUTPUT_ATTR, OWNER_ATTR, RESUME_ATTR, open_storage
from zoo.tuning.study import StudySpec, run_study

pytestmark = pytest.mark.slow


def load(study: str, storage: str | None = None) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=open_storage(storage, study))


def client_for_cwd() -> MlflowClient:
    mlflow.set_tracking_uri(tracking.tracking_uri())
    return MlflowClient()


def runs_of(study: str) -> list:
    client = client_for_cwd()
    experiment = client.get_experiment_by_name(f"tune-{study}")
    return client.search_runs([experiment.experiment_id], max_results=1000)


# ---- search spaces ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SPACES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_bundled_spaces_are_valid_configs(path):
    model = max((m for m in list_models() if path.stem.startswith(m)), key=len)
    targets = ["shear", "bulk"] if model == "cgcnn-mt" else [path.stem.split("-")[-1]]
    if targets[0] not in ("shear", "bulk"):
        targets = ["shear"]
    space = load_space(path, {"model": model, "targets": targets})
    trial = optuna.create_study().ask()
    values = space.sample(trial)
    for key, value in space.fixed.items():
        assert values[key] == value
    if "graph.radius" in values:
        assert values["architecture.gaussian_dmax"] == values["graph.radius"]
    # a finished trial's stored parameters give back the same config values
    assert space.values_of(trial.params) == values


@pytest.mark.parametrize("model", list_models())
def test_every_variant_has_a_bundled_space(model):
    assert default_space_path(model, ["shear"]).stem.startswith(model)


def test_list_valued_choices_round_trip_through_optuna(demo):
    space = load_space(
        SPACES_DIR / "cgcnn-mt.yaml", {"model": "cgcnn-mt", "targets": ["shear", "bulk"]}
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        weights = space.sample(trial)["architecture.loss_weights"]
        assert weights in ([2.0, 1.0], [1.0, 1.0], [1.0, 2.0])
        seen.add(tuple(weights))
        study.tell(trial, 0.0)
    assert len(seen) > 1
    stored = study.trials[0].params
    assert isinstance(stored["architecture.loss_weights"], str)  # Optuna keeps JSON text
    assert isinstance(space.values_of(stored)["architecture.loss_weights"], list)


def test_space_typo_and_bad_reference_are_errors(tmp_path):
    base = {"model": "cgcnn", "targets": ["shear"]}
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        yaml.safe_dump(
            {
                "description": "x",
                "params": {"optim.lrr": {"type": "float", "low": 1e-4, "high": 1e-2}},
            }
        )
    )
    with pytest.raises(ValueError, match="lrr"):
        load_space(typo, base)
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(
        yaml.safe_dump(
            {
                "description": "x",
                "params": {
                    "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2},
                    "architecture.gaussian_dmax": {"type": "same_as", "key": "graph.radius"},
                },
            }
        )
    )
    with pytest.raises(ValueError, match="not a sampled parameter"):
        load_space(dangling, base)
    unknown_field = tmp_path / "field.yaml"
    unknown_field.write_text(
        yaml.safe_dump(
            {"description": "x", "params": {"optim.lr": {"type": "float", "low": 1e-4, "hi": 1}}}
        )
    )
    with pytest.raises(ValueError, match="high"):
        load_space(unknown_field, base)


# ---- a study end to end, the refit and the registry -------------------------------------------


def test_tune_final_register_and_load_in_fresh_process(demo):
    code = main(["tune", "--trials", "3", "--epochs", "6", "--final"])
    assert code == 0
    study = load("cgcnn-shear")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    # the objective is the best validation MAE of the trial's run (history.csv of its folder)
    for trial in trials:
        history = pd.read_csv(Path(trial.user_attrs[OUTPUT_ATTR]) / "history.csv")
        assert trial.value == pytest.approx(history["val_mae_log10"].min())
        assert len(history) == 6
        assert "test" not in set(
            pd.read_csv(Path(trial.user_attrs[OUTPUT_ATTR]) / "predictions.csv")["split"]
        )

    runs = runs_of("cgcnn-shear")
    parent = next(r for r in runs if r.data.tags.get("zoo.kind") == "study")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    trial_runs = [
        r
        for r in children
        if r.data.tags.get("optuna.trial_number") is not None
        and r.data.tags.get("zoo.kind") != "final"
    ]
    assert sorted(int(r.data.tags["optuna.trial_number"]) for r in trial_runs) == [0, 1, 2]
    client = MlflowClient()
    for run in trial_runs:
        assert run.data.tags["optuna.state"] == "COMPLETE"
        assert not any(k.startswith("test_") for k in run.data.metrics)
        curve = client.get_metric_history(run.info.run_id, "epoch/val_shear_mae_log10")
        assert [m.step for m in curve] == list(range(1, 7))
        trial = trials[int(run.data.tags["optuna.trial_number"])]
        assert run.data.metrics["objective_val_mae_log10"] == pytest.approx(trial.value)
        assert float(run.data.params["optim.lr"]) == pytest.approx(trial.params["optim.lr"])
    assert parent.data.metrics["best_val_mae_log10"] == pytest.approx(study.best_value)
    assert parent.data.tags["best_trial"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    for name in (
        "trials.csv",
        "optimization_history.html",
        "optimization_history.png",
        "param_importances.png",
        "parallel_coordinate.png",
    ):
        assert f"study/{name}" in artifacts

    # the refit: train+val for the same epochs, tested once, registered as champion
    final = next(r for r in children if r.data.tags.get("zoo.kind") == "final")
    assert final.data.tags["zoo.best_trial"] == str(study.best_trial.number)
    assert int(final.data.params["n_train"]) == sum(
        int(trial_runs[0].data.params[f"n_{s}"]) for s in ("train", "val")
    )
    assert "val_shear_mae_log10" not in final.data.metrics
    assert "test_shear_mae_log10" in final.data.metrics
    version = client.get_model_version_by_alias("cgcnn-shear", "champion")
    assert str(version.version) == "1"
    assert float(version.tags["zoo.val_mae_log10"]) == pytest.approx(study.best_value, abs=1e-6)
    assert version.tags["zoo.study"] == "cgcnn-shear"

    # same numbers: the bundle in this process, the registry model in a fresh process, the CLI
    from zoo.bundle import load_bundle
    from zoo.predictor import predict_structures

    bundle_path = next(Path(final.data.tags["zoo.output_dir"]).glob("*.zoo.pt"))
    structures = demo.structures[:5]
    here = predict_structures(load_bundle(bundle_path), demo.ids[:5], structures)
    table = pd.DataFrame(
        {
            "id": demo.ids[:5],
            "structure": [s.to(fmt="cif") for s in structures[:3]]
            + [s.as_dict() for s in structures[3:]],
        }
    )
    table.to_json("input.json")
    script = (
        "import mlflow, pandas as pd, zoo.tracking as t;"
        "mlflow.set_tracking_uri(t.tracking_uri());"
        "m = mlflow.pyfunc.load_model('models:/cgcnn-shear@champion');"
        "out = m.predict(pd.read_json('input.json'));"
        "out.to_csv('fresh.csv', index=False)"
    )
    subprocess.run(
        [sys.executable, "-c", script], check=True, env={**os.environ, "DGLBACKEND": "pytorch"}
    )
    fresh = pd.read_csv("fresh.csv")
    assert list(fresh["id"]) == demo.ids[:5]
    info = zoo.load_model("models:/cgcnn-shear@champion").info()  # what it was trained on
    assert info["train_data"]["name"] == DEMO_SOURCE and info["registry_version"] == "1"
    assert info["metrics"]["test_shear_mae_log10"] == pytest.approx(
        final.data.metrics["test_shear_mae_log10"]
    )
    np.testing.assert_allclose(fresh["shear_gpa"], here["shear_gpa"], rtol=1e-6)
    assert fresh["error"].isna().all()

    Path("cifs").mkdir()
    for entry, structure in zip(demo.ids[:5], structures, strict=True):
        structure.to(filename=f"cifs/{entry}.cif")
    for uri in (
        "models:/cgcnn-shear@champion",
        f"runs:/{final.info.run_id}/model",
        str(bundle_path),
    ):
        assert main(["predict", "--model", uri, "--input", "cifs", "-o", "cli.csv"]) == 0
        cli = pd.read_csv("cli.csv").set_index("id").loc[demo.ids[:5]]
        np.testing.assert_allclose(cli["shear_gpa"], here["shear_gpa"], rtol=1e-5)


def test_champion_moves_only_for_a_better_validation_score(demo):
    from zoo.config import load_config
    from zoo.serving import log_pyfunc, register
    from zoo.training import train

    result = train(load_config(None, {"epochs": 2}), progress=False)
    tracking.setup("zoo")
    with mlflow.start_run(run_id=result.run_id):
        uri = log_pyfunc(result.bundle_path).model_uri
    tags = {"zoo.data": "demo", "zoo.split": "fractions"}
    assert register(uri, "m", 0.20, tags) == ("1", True)
    assert register(uri, "m", 0.25, tags) == ("2", False)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("m", "champion").version) == "1"
    assert register(uri, "m", 0.15, tags) == ("3", True)
    assert str(client.get_model_version_by_alias("m", "champion").version) == "3"


def test_pruners_are_chosen_by_name():
    from zoo.tuning.study import make_pruner

    median = make_pruner("median", 100)
    assert isinstance(median, optuna.pruners.MedianPruner)
    assert median._n_warmup_steps == 25 and median._n_startup_trials == 4
    hyperband = make_pruner("hyperband", 100)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert hyperband._min_resource == 10 and hyperband._max_resource == 100
    assert isinstance(make_pruner("none", 100), optuna.pruners.NopPruner)
    with pytest.raises(ValueError, match="unknown pruner"):
        make_pruner("asha", 100)


# ---- pruning, failures ------------------------------------------------------------------------


def test_pruned_trials_are_marked_in_optuna_and_mlflow(demo, monkeypatch):
    import zoo.tuning.study

    # a pruner that stops every trial at its second epoch (epochs count from 1)
    monkeypatch.setattr(
        zoo.tuning.study,
        "make_pruner",
        lambda name, epochs: optuna.pruners.ThresholdPruner(upper=-1.0, n_warmup_steps=2),
    )
    run_study(StudySpec(trials=2, overrides={"epochs": 5}))
    study = load("cgcnn-shear")
    assert [t.state for t in study.get_trials()] == [TrialState.PRUNED] * 2
    assert all(sorted(t.intermediate_values) == [1, 2] for t in study.get_trials())
    trial_runs = [r for r in runs_of("cgcnn-shear") if "optuna.trial_number" in r.data.tags]
    assert len(trial_runs) == 2
    for run in trial_runs:
        assert run.data.tags["optuna.state"] == "PRUNED"
        assert run.info.status == "FINISHED"
        assert "pruned" in run.data.tags["zoo.stopped"]
        assert "objective_val_mae_log10" in run.data.metrics


def test_a_failing_trial_is_marked_failed_and_the_study_goes_on(demo, monkeypatch):
    import zoo.training

    real_train, calls = zoo.training.train, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash inside a trial")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(zoo.training, "train", flaky)
    run_study(StudySpec(trials=2, pruner="none", overrides={"epochs": 2}))
    states = [t.state for t in load("cgcnn-shear").get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_first_use_of_a_fresh_store_by_several_processes():
    # without the first-use lock, processes that create the MLflow tables at the same moment
    # fail with "duplicate column name" (seen when two studies started together)
    script = "import sys; from zoo import tracking; print(tracking.setup(sys.argv[1]))"
    processes = [
        subprocess.Popen([sys.executable, "-c", script, f"e{i}"], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    errors = [p.communicate()[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, errors


# ---- killed studies, shared storages ----------------------------------------------------------


def test_a_worker_waiting_on_another_workers_trial_stops_soon_after_it_ends(monkeypatch):
    # With every trial handed out, a worker waits for the others' running trials (to take one
    # back if its worker dies). It used to look once per heartbeat (60 s), so `zoo tune --jobs 2`
    # idled up to a minute after the study had finished. The clock is faked: the other trial
    # ends during the first wait, and the worker must leave at the next look.
    from zoo.tuning import study as study_module

    spec = StudySpec(trials=1, pruner="none")
    _, study = study_module.open_study(spec)
    other = study.ask()  # running in "another worker"
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        if len(slept) == 1:
            study.tell(other, 0.5)
        assert len(slept) < 5, f"still waiting after {slept}"

    monkeypatch.setattr(study_module.time, "sleep", sleep)
    assert study_module._others_left_work(study, spec) is False
    assert sum(slept) <= study_module.POLL_SECONDS < spec.heartbeat


def tune_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "zoo.cli", "tune", "--pruner", "none", *extra]


def test_killed_study_resumes_without_losing_or_repeating_a_trial(demo):
    env = {**os.environ, "DGLBACKEND": "pytorch"}
    command = tune_command("--trials", "3", "--epochs", "60", "--threads", "1")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    storage_file = Path("mlruns/optuna/cgcnn-shear.db")
    while time.time() < deadline:  # kill while trial 1 is past its tenth epoch
        if storage_file.exists():
            try:
                trials = load("cgcnn-shear").get_trials()
            except (KeyError, Exception):
                trials = []
            if (
                len(trials) >= 2
                and trials[1].state == TrialState.RUNNING
                and len(trials[1].intermediate_values) >= 10
            ):
                break
        assert process.poll() is None, "the study ended before it could be killed"
        time.sleep(0.2)
    else:
        pytest.fail("trial 1 never reached epoch 10")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = load("cgcnn-shear").get_trials()[1]
    assert killed.state == TrialState.RUNNING  # what a kill leaves behind
    done_epochs = len(killed.intermediate_values)

    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    trials = load("cgcnn-shear").get_trials()
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 3
    assert trials[1].state == TrialState.FAIL
    resumed = next(t for t in trials if t.user_attrs.get(RESUME_ATTR) == 1)
    assert resumed.params == killed.params
    assert resumed.user_attrs[OUTPUT_ATTR] == killed.user_attrs[OUTPUT_ATTR]
    history = pd.read_csv(Path(killed.user_attrs[OUTPUT_ATTR]) / "history.csv")
    assert list(history["epoch"]) == list(range(1, 61))  # continued, not restarted
    assert sorted(resumed.intermediate_values) == list(range(1, 61))
    assert done_epochs >= 10
    # trial 0 was not run again: its parameters appear once among the finished trials
    assert sum(t.params == trials[0].params for t in finished) == 1
    # the continued trial logged into the run the killed one had started
    assert resumed.user_attrs["zoo.mlflow_run_id"] == killed.user_attrs["zoo.mlflow_run_id"]


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_two_processes_share_one_study(demo, storage, tmp_path):
    url = None if storage == "sqlite" else f"journal:{tmp_path / 'study.log'}"
    extra = [] if url is None else ["--storage", url]
    command = tune_command("--trials", "4", "--epochs", "15", "--jobs", "2", *extra)
    subprocess.run(
        command, env={**os.environ, "DGLBACKEND": "pytorch"}, check=True, stdout=subprocess.DEVNULL
    )
    trials = load("cgcnn-shear", url).get_trials()
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 4
    owners = {t.user_attrs[OWNER_ATTR].split(":")[1] for t in trials}
    assert len(owners) == 2, f"trials ran in {owners}, not in two worker processes"
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)
    parents = {
        r.data.tags.get("mlflow.parentRunId")
        for r in runs_of("cgcnn-shear")
        if "optuna.trial_number" in r.data.tags
    }
    assert len(parents) == 1
