"""End to end: ``zoo train`` on the built-in set, tracked in MLflow; predict; resume."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from zoo.bundle import load_bundle
from zoo.cli import main
from zoo.config import load_config
from zoo.predictor import predict_structures
from zoo.tracking import tracking_uri
from zoo.training import target_score, train

pytestmark = pytest.mark.slow


def test_zoo_train_logs_run_metrics_and_artifacts(isolated, demo, capsys):
    assert main(["train", "--model", "cgcnn", "--epochs", "3", "--run-name", "e2e"]) == 0
    printed = capsys.readouterr().out
    assert "model bundle : runs/e2e/model.zoo.pt" in printed
    mlflow.set_tracking_uri(tracking_uri())
    assert tracking_uri() == f"sqlite:///{isolated / 'mlruns' / 'mlflow.db'}?timeout=60"
    import sqlite3

    with sqlite3.connect(isolated / "mlruns" / "mlflow.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    runs = mlflow.search_runs(experiment_names=["zoo"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    for split in ("train", "val", "test"):
        for unit in ("log10", "gpa"):
            for metric in ("mae", "rmse", "r2", "max_error"):
                assert f"{split}_shear_{metric}_{unit}" in run.data.metrics
    assert run.data.params["model"] == "cgcnn"
    assert run.data.params["architecture.n_conv"] == "3"
    assert run.data.params["epochs"] == "3"
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch/val_shear_mae_log10")
    assert [m.step for m in history] == [1, 2, 3]
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {
        "parity_shear.png",
        "learning_curve.png",
        "predictions.csv",
        "config.yaml",
        "metrics.json",
        "model",
    } <= artifacts
    artifact_dir = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifact_dir.is_relative_to(isolated / "mlruns")
    assert (artifact_dir / "model" / "model.zoo.pt").is_file()
    predictions = pd.read_csv(isolated / "runs" / "e2e" / "predictions.csv")
    assert len(predictions) == 53 and set(predictions["split"]) == {"train", "val", "test"}

    # zoo compare reads the run folder as training wrote it (a run against itself: no change)
    run_folder = str(isolated / "runs" / "e2e")
    capsys.readouterr()
    assert main(["compare", "--base", run_folder, "--other", run_folder]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.split()[:2] == ["shear", str((predictions["split"] == "test").sum())]
    assert line.endswith("+0.0% (95% interval +0.0% to +0.0%)")

    # zoo predict on a folder of CIFs gives the numbers of the training process
    folder = isolated / "cifs"
    folder.mkdir()
    for entry, structure in zip(demo.ids[:5], demo.structures[:5], strict=True):
        structure.to(filename=str(folder / f"{entry}.cif"))
    (folder / "broken.cif").write_text("")
    bundle_path = isolated / "runs" / "e2e" / "model.zoo.pt"
    assert (
        main(["predict", "--model", str(bundle_path), "--input", str(folder), "-o", "out.csv"]) == 0
    )
    table = pd.read_csv("out.csv", keep_default_na=False)
    assert len(table) == 6
    assert "empty" in table.set_index("id").loc["broken", "error"]
    table = table[table["id"] != "broken"].set_index("id")
    expected = predictions.set_index("id").loc[table.index, "shear_pred_gpa"]
    assert np.allclose(table["shear_gpa"].astype(float), expected, rtol=1e-4)


def weights(bundle_path):
    return load_bundle(bundle_path).state_dict


def test_target_score_rules_by_hand():
    assert target_score([0.1, 0.025], "mean") == pytest.approx(0.0625)
    assert target_score([0.1, 0.025], "geometric_mean") == pytest.approx(0.05)  # sqrt(0.0025)
    assert target_score([0.08], "geometric_mean") == pytest.approx(0.08)
    with pytest.raises(ValueError, match="unknown target_score 'median'"):
        target_score([0.1, 0.025], "median")


def test_multitask_best_epoch_follows_the_chosen_target_score(isolated):
    overrides = {
        "model": "cgcnn-mt",
        "targets": ["shear", "bulk"],
        "epochs": 4,
        "target_score": "geometric_mean",
        "run_name": "geo",
    }
    result = train(load_config(None, overrides), track=False, progress=False)
    for row in result.history:
        geometric = np.sqrt(row["val_shear_mae_log10"] * row["val_bulk_mae_log10"])
        assert row["val_mae_log10"] == pytest.approx(geometric, rel=1e-12)
    best = min(result.history, key=lambda row: row["val_mae_log10"])
    assert result.metrics["best_epoch"] == best["epoch"]


def test_resume_after_interruption_gives_the_same_model(isolated):
    overrides = {
        "epochs": 4,
        "seed": 7,
        "architecture.dropout": 0.1,
        "ema_decay": 0.9,
        "run_name": "full",
    }
    straight = train(load_config(None, overrides), track=False, progress=False)

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            load_config(None, {**overrides, "run_name": "cut"}),
            on_epoch=stop_after_two,
            track=False,
            progress=False,
        )
    resumed = train(resume=isolated / "runs" / "cut", track=False, progress=False)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    a, b = weights(straight.bundle_path), weights(resumed.bundle_path)
    for name in a:  # bit-identical; NaN rows of the element table mark missing elements
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, equal_nan=True)
    assert resumed.metrics["test_shear_mae_log10"] == straight.metrics["test_shear_mae_log10"]


def test_killed_cli_run_resumes_in_the_same_mlflow_run(isolated):
    env = {**os.environ, "DGLBACKEND": "pytorch"}
    command = [sys.executable, "-m", "zoo.cli", "train", "--epochs", "150", "--run-name", "k"]
    process = subprocess.Popen(
        command, cwd=isolated, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    checkpoint = Path(isolated) / "runs" / "k" / "last.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "zoo train --resume runs/k" in output
    done = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= done < 150
    mlflow.set_tracking_uri(tracking_uri())
    (run,) = mlflow.search_runs(experiment_names=["zoo"], output_format="list")
    assert run.info.status == "KILLED"
    result = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "train", "--resume", "runs/k"],
        cwd=isolated,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming runs/k at epoch {done + 1}" in result.stdout
    (again,) = mlflow.search_runs(experiment_names=["zoo"], output_format="list")
    assert again.info.run_id == run.info.run_id and again.info.status == "FINISHED"
    steps = [
        m.step
        for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "epoch/train_loss")
    ]
    assert sorted(set(steps)) == list(range(1, 151))


def test_predict_names_unknown_structures_in_strict_mode(isolated, demo):
    result = train(load_config(None, {"epochs": 1}), track=False, progress=False)
    bundle = load_bundle(result.bundle_path)
    from pymatgen.core import Lattice, Structure

    lonely = Structure(Lattice.cubic(20.0), ["Fe"], [[0, 0, 0]])  # 8,000 A^3: graph stage
    vacuum = Structure(Lattice.cubic(30.0), ["Fe"], [[0, 0, 0]])  # 27,000 A^3: refused on reading
    table = predict_structures(
        bundle, ["Fe-bcc", "gas", "vacuum"],
        [demo.structures[demo.ids.index("Fe")], lonely, vacuum],
    )  # fmt: skip
    assert table.loc[0, "error"] == "" and table.loc[0, "shear_gpa"] > 0
    assert "no neighbour" in table.loc[1, "error"] and np.isnan(table.loc[1, "shear_gpa"])
    assert "per atom is no real crystal" in table.loc[2, "error"]
    from zoo.errors import BadInputError

    with pytest.raises(BadInputError, match="gas"):
        predict_structures(bundle, ["gas"], [lonely], skip_bad=False)


def test_ema_warmup_follows_the_weights_first_then_settles():
    from zoo.training import ema_with_warmup

    update = ema_with_warmup(0.999)
    averaged, current = [torch.zeros(1)], [torch.ones(1)]
    update(averaged, current, torch.tensor(0))  # decay min(0.999, 1/10) = 0.1
    assert averaged[0].item() == pytest.approx(0.9)
    averaged = [torch.zeros(1)]
    update(averaged, current, torch.tensor(100_000))  # decay settled at 0.999
    assert averaged[0].item() == pytest.approx(0.001)
