"""``zoo benchmark`` and ``zoo ensemble`` (issue 16) on a small real input: the first 90 rows
of the 3,077-entry Matbench subset of ``../shared`` (both elastic tasks), two folds, a few
epochs. The fold of every entry is checked against the official ``test_fold`` column of the
leaderboard files, the results file is read the way the matbench package reads one, a kill
between folds and inside a fold loses nothing, and the ensemble's spread is the members'."""

from __future__ import annotations

import gzip
import json
import signal

import numpy as np
import pandas as pd
import pytest

from tests.conftest import SHARED
from tests.conftest import run_zoo as zoo
from zoo.protocol import OFFICIAL_ROWS, read_results, read_task_table, results_document

MATBENCH = SHARED / "data" / "matbench"
SUBSET = {task: MATBENCH / f"matbench_log_{task}_subset.json.gz" for task in ("gvrh", "kvrh")}
needs_matbench = pytest.mark.skipif(
    not all(path.exists() for path in SUBSET.values()),
    reason=f"Matbench subset files not found in {MATBENCH} (need ../shared)",
)
pytestmark = needs_matbench
ROWS = 90


@pytest.fixture
def tiny(isolated) -> list[str]:
    """The first ``ROWS`` entries of both subset files, in Matbench's format."""
    paths = []
    for task, source in SUBSET.items():
        with gzip.open(source, "rt") as handle:
            payload = json.load(handle)
        payload = {**payload, "index": payload["index"][:ROWS], "data": payload["data"][:ROWS]}
        path = isolated / f"matbench_log_{task}_tiny.json.gz"
        with gzip.open(path, "wt") as handle:
            json.dump(payload, handle)
        paths.append(str(path))
    return paths


def benchmark(tiny, cwd, *extra, failpoint=None):
    return zoo(
        "benchmark", "--model", "cgcnn-mt", "--data", *tiny, "--folds", "0,1",
        "--set", "epochs=3", "--set", "architecture.atom_fea_len=16", "--threads", "1",
        "--leaderboard", str(MATBENCH), "--name", "tiny", *extra,
        cwd=cwd, failpoint=failpoint,
    )  # fmt: skip


def test_every_entry_keeps_its_official_fold():
    table = read_task_table("both", [str(SUBSET["gvrh"]), str(SUBSET["kvrh"])])
    board = pd.read_csv(MATBENCH / "leaderboard_predictions_log_gvrh.csv")
    official = dict(zip(board["mbid"].str[-5:].astype(int) - 1, board["test_fold"], strict=True))
    assert len(board) == OFFICIAL_ROWS
    assert [official[row] for row in table.rows.tolist()] == table.folds().tolist()
    assert table.targets == ["shear", "bulk"] and len(table.rows) == 3077


def test_two_task_files_that_differ_are_refused(tiny, isolated):
    with gzip.open(tiny[1], "rt") as handle:
        bulk = json.load(handle)
    fewer = isolated / "fewer.json.gz"
    with gzip.open(fewer, "wt") as handle:
        json.dump({**bulk, "index": bulk["index"][:-1], "data": bulk["data"][:-1]}, handle)
    with pytest.raises(ValueError, match="hold different rows"):
        read_task_table("both", [tiny[0], str(fewer)])
    bulk["data"][3][0] = bulk["data"][4][0]
    other = isolated / "other.json.gz"
    with gzip.open(other, "wt") as handle:
        json.dump(bulk, handle)
    with pytest.raises(ValueError, match=f"row {bulk['index'][3]} has different structures"):
        read_task_table("both", [tiny[0], str(other)])
    with pytest.raises(ValueError, match="needs matbench_log_gvrh and matbench_log_kvrh"):
        read_task_table("both", [tiny[0], tiny[0]])


@pytest.mark.slow
def test_benchmark_resumes_and_writes_a_matbench_results_file(tiny, isolated):
    killed = benchmark(tiny, isolated, failpoint="fold-finished@1")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    folder = isolated / "runs" / "benchmark" / "tiny"
    first = folder / "fold0" / "shear-bulk-seed0"
    finished = (first / "model.zoo.pt").stat().st_mtime_ns
    inside = benchmark(tiny, isolated, failpoint="epoch-saved@2")  # dies inside fold 1
    assert inside.returncode == -signal.SIGKILL
    done = benchmark(tiny, isolated)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (first / "model.zoo.pt").stat().st_mtime_ns == finished  # fold 0 not retrained
    history = pd.read_csv(folder / "fold1" / "shear-bulk-seed0" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3]

    results = read_results(folder / "results.json.gz")
    predictions = pd.read_csv(folder / "predictions.csv")
    board = pd.read_csv(MATBENCH / "leaderboard_predictions_log_gvrh.csv").set_index("mbid")
    for task, target in (("matbench_log_gvrh", "shear"), ("matbench_log_kvrh", "bulk")):
        recorded = results["tasks"][task]["results"]
        assert sorted(recorded) == ["fold_0", "fold_1"]
        for fold in (0, 1):
            mine = predictions[(predictions.target == target) & (predictions.fold == fold)]
            data = recorded[f"fold_{fold}"]["data"]
            assert sorted(data) == sorted(mine["mbid"])
            error = np.abs(mine["pred_log10"] - mine["true_log10"]).mean()
            assert recorded[f"fold_{fold}"]["scores"]["mae"] == pytest.approx(error)
            if task == "matbench_log_gvrh":
                assert set(board.loc[list(data), "test_fold"]) == {fold}
    results["tasks"]["matbench_log_gvrh"]["results"]["fold_0"]["scores"]["mae"] += 0.1
    tampered = isolated / "tampered.json.gz"
    with gzip.open(tampered, "wt") as handle:
        json.dump(results, handle)
    with pytest.raises(ValueError, match="hash does not match"):
        read_results(tampered)

    comparison = pd.read_csv(folder / "comparison.csv")
    assert {"cgcnnv2019", "alignn", "coNGN"} <= set(comparison["model"])
    shear = predictions[predictions.target == "shear"].merge(
        board, left_on="mbid", right_index=True
    )
    coNGN = comparison[(comparison.model == "coNGN") & (comparison.target == "shear")].iloc[0]
    assert coNGN["entries"] == len(shear)
    assert coNGN["model_mae_log10"] == pytest.approx(
        (shear["coNGN"] - shear["true_log10"]).abs().mean()
    )
    assert "| shear | coNGN |" in done.stdout
    assert (folder / "parity-shear.png").exists() and (folder / "parity-bulk-fold1.png").exists()

    changed = benchmark(tiny, isolated, "--set", "epochs=4")
    assert changed.returncode == 2 and "other settings" in changed.stderr


@pytest.mark.slow
def test_an_ensemble_predicts_the_members_mean_and_spread(tiny, isolated):
    from zoo.bundle import load_bundle
    from zoo.ensemble import build_ensemble, load_model_file
    from zoo.loaded_model import load_model
    from zoo.predictor import Predictor
    from zoo.protocol import read_task_table

    assert benchmark(tiny, isolated, "--seeds", "2").returncode == 0
    folder = isolated / "runs" / "benchmark" / "tiny"
    made = zoo("ensemble", str(folder), "-o", "ens.zoo.pt", "--calibrate", str(folder),
               "--register", "tiny-ens", cwd=isolated)  # fmt: skip
    assert made.returncode == 0, made.stderr[-2000:]
    assert "ensemble of 4 models (shear, bulk)" in made.stdout
    ensemble = load_model_file(isolated / "ens.zoo.pt")
    record = ensemble.calibration["shear"]
    table = read_task_table("both", tiny)
    assert record["test_entries"] == int(np.isin(table.folds(), [0, 1]).sum())
    assert 0.0 <= record["test_coverage_1sigma_raw"] <= 1.0
    assert (isolated / "ens.calibration.png").exists()

    dataset = table.dataset()
    ids, structures = dataset.ids[:12], dataset.structures[:12]
    columns = ["shear_log10", "bulk_log10"]
    members = np.stack(
        [Predictor(load_bundle(p)).predict(ids, structures)[columns] for p in ensemble.sources]
    )
    for spec in ("ens.zoo.pt", "models:/tiny-ens@champion"):
        predicted = load_model(spec).predict_structures(ids, structures)
        assert np.allclose(predicted["shear_log10"], members[:, :, 0].mean(axis=0))
        spread = members[:, :, 1].std(axis=0, ddof=1) * ensemble.scale["bulk"]
        assert np.allclose(predicted["bulk_std_log10"], spread)
        assert np.allclose(predicted["bulk_gpa_high"], 10 ** (predicted["bulk_log10"] + spread))

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{isolated / 'mlruns' / 'mlflow.db'}")
    served = mlflow.pyfunc.load_model("models:/tiny-ens@champion")
    cif = pd.DataFrame({"structure": [structures[0].to(fmt="cif")]})
    answer = served.predict(cif)
    assert answer.loc[0, "shear_std_log10"] == pytest.approx(
        members[:, 0, 0].std(ddof=1) * ensemble.scale["shear"], rel=1e-4
    )

    shear_only = zoo("train", "--data", tiny[0], "--epochs", "1", "--no-track", cwd=isolated)
    assert shear_only.returncode == 0
    run = next((isolated / "runs").glob("cgcnn-shear-*"))
    with pytest.raises(ValueError, match="members must share their targets"):
        build_ensemble([folder / "fold0" / "shear-bulk-seed0", run])


def test_results_document_hash_follows_matbench():
    """The hash is sha256 of ``json.dumps`` of the document with every dict's keys sorted and
    no hash key (matbench.util.hash_dictionary), so it is independent of key order."""
    from zoo.protocol import FoldRecord, document_hash

    record = FoldRecord(["mb-log-gvrh-00001"], np.array([1.0]), np.array([1.1]))
    document = results_document({"matbench_log_gvrh": {0: record}}, {"b": 1, "a": 2})
    reordered = dict(reversed(list(document.items())))
    assert document_hash(reordered) == document["hash"]
    assert document["tasks"]["matbench_log_gvrh"]["results"]["fold_0"]["scores"]["mae"] == (
        pytest.approx(0.1)
    )


@pytest.mark.slow
def test_tuning_per_fold_sees_only_the_folds_training_entries(tiny, isolated):
    import optuna
    import yaml

    from zoo.config import flatten

    done = benchmark(tiny, isolated, "--folds", "0", "--tune-trials", "2", "--name", "tuned")
    assert done.returncode == 0, done.stderr[-2000:]
    # one fold has no spread over folds: null in strict JSON, "-" in the table, never NaN
    summary_text = (isolated / "runs" / "benchmark" / "tuned" / "summary.json").read_text()
    summary = json.loads(summary_text, parse_constant=lambda name: pytest.fail(name))
    assert summary["shear"]["over_folds"]["mae_log10"]["std"] is None
    assert "| shear | mean ± std | |" in done.stdout and "nan" not in done.stdout
    folder = isolated / "runs" / "benchmark" / "tuned" / "fold0"
    study = optuna.load_study(
        study_name="tuned-fold0-shear-bulk",
        storage=f"sqlite:///{folder / 'tune-shear-bulk' / 'optuna.db'}",
    )
    assert len(study.trials) == 2
    kept = yaml.safe_load((folder / "shear-bulk-seed0" / "config.yaml").read_text())
    flat = flatten(kept)
    best = study.best_trial.params
    for name in ("optim.lr", "batch_size", "architecture.n_conv", "graph.radius"):
        assert flat[name] == pytest.approx(best[name])
    test_ids = set(
        pd.read_csv(folder / "shear-bulk-seed0" / "predictions.csv").query("split == 'test'").id
    )
    assert test_ids
    for trial in (folder / "tune-shear-bulk" / "trials").rglob("predictions.csv"):
        seen = pd.read_csv(trial)
        assert "test" not in set(seen["split"]) and not test_ids & set(seen["id"])


def test_the_task_is_read_from_one_matbench_file(tiny):
    from zoo.cli import build_parser
    from zoo.commands.benchmark import spec_of

    def spec(*data):
        return spec_of(build_parser().parse_args(["benchmark", "--data", *data]))

    assert spec(tiny[0]).task == "matbench_log_gvrh" and spec(tiny[1]).task == "matbench_log_kvrh"
    assert spec(*tiny).task == "both"
