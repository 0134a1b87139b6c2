"""What a new user meets first (issue 18): ``zoo.load_model`` in Python, ``zoo predict`` on
standard output, ``zoo train --register``, warnings that say which file they are about."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk as ase_bulk
from pymatgen.io.ase import AseAtomsAdaptor

import zoo
from tests.conftest import rocksalt, run_zoo
from zoo.config import load_config
from zoo.training import train

SLIGHTLY_OFF_CIF = """data_x
_cell_length_a 3.61
_cell_length_b 3.61
_cell_length_c 3.61
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0.0 0.0 0.0
Cu2 Cu 0.5 0.5 0.0
Cu3 Cu 0.5 0.0 0.5
Cu4 Cu 0.0 0.5 0.49999999
"""
"""fcc copper written as P 1; pymatgen warns about the missing symmetry operations."""


@pytest.fixture
def bundle(isolated, demo):
    config = load_config(None, {"epochs": 2, "targets": ["shear", "bulk"], "model": "cgcnn-mt"})
    return train(config, dataset=demo, track=False, progress=False).bundle_path


def test_load_model_predicts_a_structure_atoms_paths_and_lists(bundle, isolated):
    model = zoo.load_model(bundle)
    assert model.targets == ["shear", "bulk"] and model.version is None
    copper = ase_bulk("Cu", "fcc", a=3.61)
    one = model.predict(copper)
    assert isinstance(one, dict) and one["error"] == ""
    same = model.predict(AseAtomsAdaptor.get_structure(copper))
    assert one["shear_gpa"] == pytest.approx(same["shear_gpa"]) and one["bulk_gpa"] > 0
    assert one["shear_log10"] == pytest.approx(np.log10(one["shear_gpa"]))

    (isolated / "cu.cif").write_text(SLIGHTLY_OFF_CIF)
    molecule = ase_bulk("Cu", "fcc", a=3.61)
    molecule.pbc = False
    table = model.predict([rocksalt(), "cu.cif", "missing.cif", molecule], allow_paths=True)
    assert list(table["id"]) == ["0", "cu.cif", "missing.cif", "3"]
    assert table.loc[1, "shear_gpa"] == pytest.approx(one["shear_gpa"], rel=1e-4)
    assert "not a structure" in table.loc[2, "error"] and np.isnan(table.loc[2, "shear_gpa"])
    assert "not periodic" in table.loc[3, "error"]
    refused = model.predict(["cu.cif"])  # a path is read only when the caller allows it
    assert "file paths are not read" in refused.loc[0, "error"]
    folder = model.predict_path(isolated)  # a folder: every structure file in it
    assert list(folder["id"]) == ["cu"]

    info = model.info()
    assert info["models"] == ["cgcnn-mt"] and info["targets"] == ["shear", "bulk"]
    assert info["graph_settings"]["radius"] == model.graph_settings.radius
    assert re.match(r"\d+\.\d+", zoo.__version__)


@pytest.mark.slow
def test_zoo_predict_writes_a_table_on_stdout_with_six_digits(bundle, isolated):
    (isolated / "cu.cif").write_text(SLIGHTLY_OFF_CIF)
    done = run_zoo("predict", "--model", str(bundle), "--input", "cu.cif", cwd=isolated)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(io.StringIO(done.stdout))
    assert list(table.columns) == ["id", "shear_gpa", "shear_log10", "bulk_gpa", "bulk_log10",
                                   "error", "flag_unseen_elements", "flag_density_outside",
                                   "flag_sites_outside", "flag_volume_per_atom_outside",
                                   "flag_many_atoms", "flag_few_neighbors",
                                   "flagged"]  # fmt: skip
    for value in done.stdout.splitlines()[1].split(",")[1:5]:
        assert len(value.replace(".", "").replace("-", "").lstrip("0")) <= 6
    assert f"model: {bundle}" in done.stderr
    assert "warning: cu.cif: " in done.stderr or f"warning: {isolated / 'cu.cif'}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_zoo_train_register_applies_the_champion_rule(isolated):
    import mlflow

    first = run_zoo("train", "--epochs", "3", "--register", "demo-shear", cwd=isolated)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "demo-shear version 1, champion" in first.stdout
    assert "Successfully registered" not in first.stdout + first.stderr
    worse = run_zoo("train", "--epochs", "1", "--register", "demo-shear", cwd=isolated)
    assert "demo-shear version 2, not champion" in worse.stdout
    mlflow.set_tracking_uri(f"sqlite:///{isolated / 'mlruns' / 'mlflow.db'}")
    model = zoo.load_model("models:/demo-shear@champion")
    assert model.version == "1"
    served = mlflow.pyfunc.load_model("models:/demo-shear@champion")
    answer = served.predict(pd.DataFrame({"structure": [rocksalt().to(fmt="cif")]}))
    assert answer.loc[0, "shear_gpa"] == pytest.approx(
        model.predict(rocksalt())["shear_gpa"], rel=1e-6
    )


@pytest.mark.slow
def test_zoo_dashboard_serves_a_zoo_study(isolated):
    import subprocess
    import time
    import urllib.request

    from tests.conftest import zoo_command
    from tests.servers import free_port

    assert run_zoo("tune", "--trials", "2", "--epochs", "2", cwd=isolated).returncode == 0
    missing = run_zoo("dashboard", "--study", "nope", cwd=isolated)
    assert missing.returncode == 2 and "no study 'nope' here" in missing.stderr
    port = free_port()
    server = subprocess.Popen(
        zoo_command("dashboard", "--study", "cgcnn-shear", "--port", str(port)), cwd=isolated,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies") as answer:
                    studies = answer.read().decode()
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None
                time.sleep(0.5)
        assert '"study_name": "cgcnn-shear"' in studies
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_optuna_plots_keep_their_style_to_themselves(isolated):
    """Optuna's matplotlib plots switch to the ggplot style sheet; before the fix every later
    figure of the process (the refit's parity plots) came out grey."""
    import matplotlib
    import optuna

    from zoo.tuning.report import write_plots

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2 + 0.05, n_trials=6)
    before = dict(matplotlib.rcParams)
    written = write_plots(study, isolated)
    assert {p.name for p in written} >= {"optimization_history.png", "optimization_history.html"}
    assert matplotlib.rcParams["axes.facecolor"] == before["axes.facecolor"] == "white"
    assert "validation MAE (log10 GPa)" in (isolated / "optimization_history.html").read_text()


def test_dir_zoo_lists_the_public_api():
    names = dir(zoo)
    assert "load_model" in names and "train" in names and "__version__" in names
    assert "importlib" not in names and "version" not in names


def test_zoo_experiments_open_in_mlflows_model_training_view(isolated):
    """MLflow 3 opens an experiment in its GenAI view unless it is tagged as model training;
    an experiment made before the tag gets it on next use."""
    import mlflow

    from zoo import tracking

    experiment = mlflow.get_experiment(tracking.setup("zoo-kind"))
    assert experiment.tags[tracking.EXPERIMENT_KIND_TAG] == tracking.MODEL_TRAINING_KIND
    older = mlflow.create_experiment("made-elsewhere")
    tracking.setup("made-elsewhere")
    tags = mlflow.get_experiment(older).tags
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_zoo_ui_names_the_runs_table_of_the_latest_experiment(isolated):
    import mlflow

    from zoo import tracking
    from zoo.commands.ui import latest_experiment

    assert latest_experiment(tracking.tracking_uri()) is None  # no run yet
    for name in ("first", "second"):
        with mlflow.start_run(experiment_id=tracking.setup(name)):
            pass
    experiment_id, name = latest_experiment(tracking.tracking_uri())
    assert (
        name == "second" and experiment_id == mlflow.get_experiment_by_name("second").experiment_id
    )


def test_every_option_says_what_it_does_and_its_default_and_every_command_has_examples():
    import argparse

    from zoo.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        text = command.format_help()
        assert "\nexamples:\n  zoo " in text, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = "/".join(action.option_strings) or action.dest
            assert action.help, f"zoo {name} {flag} has no help"
            helped = command._get_formatter()._expand_help(action)
            if action.default not in (None, False, "", argparse.SUPPRESS):
                assert "default" in helped.lower(), f"zoo {name} {flag}: {helped}"


def test_every_command_writing_output_takes_dash_o_and_output():
    import argparse

    from zoo.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    writing = ["train", "predict", "screen", "tune", "benchmark", "ensemble", "import-cgcnn"]
    for name in writing:
        flags = {f for a in commands.choices[name]._actions for f in a.option_strings}
        assert {"-o", "--output"} <= flags, name


def test_progress_bars_count_with_separators_and_plural_units():
    import io

    from zoo.progress import CountBar

    out = io.StringIO()
    with CountBar(total=2000, unit="structures", desc="screening", file=out) as bar:
        bar.update(1000)
    assert "1,000/2,000 structures" in out.getvalue() and " structures/s]" in out.getvalue()
    out = io.StringIO()
    with CountBar(unit="structures", desc="screening", file=out) as bar:
        bar.update(1500)
    assert "screening: 1,500 structures [" in out.getvalue()


def test_importing_zoo_makes_openmp_threads_sleep_soon_unless_the_user_chose(isolated):
    import os
    import subprocess
    import sys

    probe = "import zoo, os; print(os.environ.get('GOMP_SPINCOUNT'))"
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cases = ((base, "3000"), ({**base, "OMP_WAIT_POLICY": "ACTIVE"}, "None"),
             ({**base, "GOMP_SPINCOUNT": "99"}, "99"))  # fmt: skip
    for env, expected in cases:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                              text=True, check=True)  # fmt: skip
        assert done.stdout.strip() == expected


def test_zoo_runs_fits_120_columns_and_names_files_and_folds(isolated, demo, capsys):
    from zoo.cli import main
    from zoo.config import load_config
    from zoo.runs_table import _file_name, _split_label
    from zoo.training import train

    for seed in (0, 1):
        train(load_config(None, {"epochs": 1, "seed": seed}), dataset=demo, progress=False)
    capsys.readouterr()
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and max(len(line) for line in lines) <= 120, lines
    assert _file_name("/a/b/matbench_log_gvrh_subset.json.gz") == "matbench_log_gvrh_subset.json.gz"
    assert _split_label({"zoo.kind": "benchmark-fold", "zoo.fold": "2"}, None) == "official fold 2"


def test_a_long_benchmark_fold_run_still_fits_120_columns():
    from types import SimpleNamespace as Record

    import pandas as pd

    from zoo.runs_table import _row

    name = "fold0-shear-bulk-seed4 #12"
    tags = {"zoo.targets": "shear,bulk", "zoo.model": "cgcnn-angle-global",
            "zoo.data": "/x/matbench_log_gvrh_subset_large.json.gz", "zoo.kind": "benchmark-fold",
            "zoo.fold": "4"}  # fmt: skip
    metrics = {"best_epoch": 112, "epochs_run": 150, "val_shear_mae_log10": 0.0712,
               "val_bulk_mae_log10": 0.0512, "test_shear_mae_log10": 0.0733,
               "test_bulk_mae_log10": 0.0525, "train_seconds": 900.0}  # fmt: skip
    run = Record(info=Record(run_name=name, run_id="a" * 32, status="FINISHED"),
                 data=Record(tags=tags, params={"seed": "4"}, metrics=metrics))  # fmt: skip
    row = _row(run)
    assert row["split"] == "official fold 4" and row["epochs"] == "112/150"
    text = pd.DataFrame([row]).to_string(index=False, float_format=lambda v: f"{v:.4f}")
    assert max(len(line) for line in text.splitlines()) <= 120, text
    assert row["run"] == "fold0-shear-bulk-… #12"  # two runs of one name stay apart


def test_a_training_run_names_its_data_as_an_mlflow_dataset_input(isolated, demo):
    import mlflow

    from zoo import tracking
    from zoo.config import load_config
    from zoo.training import train

    result = train(load_config(None, {"epochs": 1}), dataset=demo, progress=False)
    mlflow.set_tracking_uri(tracking.tracking_uri())
    inputs = mlflow.get_run(result.run_id).inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "built-in demo set"
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    # the Models column: the run's model, logged once as a pyfunc model that loads
    (output,) = mlflow.get_run(result.run_id).outputs.model_outputs
    loaded = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
    table = loaded.predict(pd.DataFrame({"structure": [demo.structures[0].to(fmt="cif")]}))
    assert np.isfinite(table.loc[0, "shear_gpa"])
    # a second run of the same configuration gets a name of its own
    again = train(load_config(None, {"epochs": 1}), dataset=demo, progress=False)
    named = [mlflow.get_run(r.run_id).info.run_name for r in (result, again)]
    assert named == ["cgcnn shear · seed 0", "cgcnn shear · seed 0 #2"]


def test_a_small_test_split_is_said_to_say_little(isolated):
    from zoo.commands.train import small_split_notes

    rows = ["id,split"] + [f"a{i},train" for i in range(40)] + [f"b{i},test" for i in range(5)]
    (isolated / "predictions.csv").write_text("\n".join(rows) + "\n")
    notes = small_split_notes(isolated)
    assert len(notes) == 1 and "the test split holds 5 crystals" in notes[0]
