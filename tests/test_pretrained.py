"""The shipped pretrained model (issue 17): listed, loaded by name everywhere a model spec is
taken, reproducing the predictions recorded when it was built, registered on request, and
documented by its model card."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tests.conftest import fcc_primitive, rocksalt, run_zoo
from zoo import pretrained

NAME = "zoo-elastic-mp2024"


def reference_cells() -> dict:
    """The cells ``bench/build_pretrained.py`` recorded predictions for."""
    return {
        "Cu-fcc": fcc_primitive(3.61),
        "NaCl-rocksalt": rocksalt(5.64),
        "Si-diamond": Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]),
    }


def test_the_shipped_model_is_listed_with_its_record_and_card():
    assert NAME in pretrained.names()
    record = pretrained.record(NAME)
    assert record["kind"] == "ensemble" and record["targets"] == ["shear", "bulk"]
    assert set(record["test_mae_log10"]) == {"shear", "bulk"}
    card = pretrained.card_path(NAME).read_text()
    for needed in ("Intended use", "Test scores", "licences", "Known limits", "CC BY 4.0"):
        assert needed in card, needed
    with pytest.raises(ValueError, match=f"shipped: {NAME}"):
        pretrained.model_path("no-such-model")


def test_loading_by_name_reproduces_the_recorded_predictions():
    """Golden values: what the shipped file predicted when it was built
    (``bench/build_pretrained.py report``, stored in its record)."""
    import zoo

    model = zoo.load_model(NAME)
    assert model.targets == ["shear", "bulk"] and "shear_std_log10" in model.columns
    cells = reference_cells()
    table = model.predict(list(cells.values()))
    recorded = pretrained.record(NAME)["reference_predictions"]
    for row, name in enumerate(cells):
        for column, value in recorded[name].items():
            assert table[column][row] == pytest.approx(value, abs=1e-5), (name, column)
    # Materials Project (mp_elasticity_2024.json.gz): diamond Si (mp-149, a training crystal)
    # G 62.4, K 88.9 GPa; rock salt (mp-22862, a validation crystal) G 14.3, K 23.8 GPa
    for row, (shear, bulk) in ((2, (62.4, 88.9)), (1, (14.3, 23.8))):
        assert table["shear_gpa"][row] == pytest.approx(shear, rel=0.25)
        assert table["bulk_gpa"][row] == pytest.approx(bulk, rel=0.25)


def test_an_ensemble_predicts_under_one_progress_bar_in_worker_processes(capsys):
    """The shipped model has several members: they share each batch (one prediction loop,
    the one ``zoo screen`` runs), ``progress`` shows one bar for all of them, and two worker
    processes (300 structures: above ``PARALLEL_PREDICT``) give the numbers of one process."""
    import zoo
    from zoo.predictor import PARALLEL_PREDICT

    cells = list(reference_cells().values()) * 100
    assert len(cells) >= PARALLEL_PREDICT
    alone = zoo.load_model(NAME).predict(cells)
    model = zoo.load_model(NAME, workers=2)
    assert len(model.loaded.members) > 1
    capsys.readouterr()
    shared = model.predict(cells, progress=True)
    bars = [line for line in capsys.readouterr().err.split("\r") if "predicting" in line]
    assert bars and all("/300 structures" in bar for bar in bars), bars
    assert sum("| 0/300 structures" in bar for bar in bars) == 1, bars  # one bar started
    for column in ("shear_log10", "bulk_log10", "shear_std_log10"):
        assert np.allclose(shared[column], alone[column], rtol=0, atol=1e-6), column


@pytest.mark.slow
def test_zoo_predict_screen_and_the_registry_take_the_pretrained_name(isolated):
    cells = reference_cells()
    folder = isolated / "cells"
    folder.mkdir()
    for name, cell in cells.items():
        cell.to(filename=str(folder / f"{name}.cif"))
    listed = run_zoo("pretrained", cwd=isolated)
    assert listed.returncode == 0 and NAME in listed.stdout
    predicted = run_zoo("predict", "--model", NAME, "--input", str(folder), "-o", "p.csv",
                        cwd=isolated)  # fmt: skip
    assert predicted.returncode == 0, predicted.stderr
    import pandas as pd

    direct = pd.read_csv(isolated / "p.csv").set_index("id").sort_index()
    registered = run_zoo("pretrained", "--register", cwd=isolated)
    assert registered.returncode == 0, registered.stderr
    assert f"models:/{NAME}@champion" in registered.stdout
    served = run_zoo("predict", "--model", f"models:/{NAME}@champion", "--input", str(folder),
                     "-o", "r.csv", cwd=isolated)  # fmt: skip
    assert served.returncode == 0, served.stderr
    again = pd.read_csv(isolated / "r.csv").set_index("id").sort_index()
    assert np.allclose(direct["shear_gpa"], again["shear_gpa"], rtol=1e-5)
    screened = run_zoo("screen", "--input", str(folder), "--model", NAME, "-o", "s",
                       "--workers", "1", cwd=isolated)  # fmt: skip
    assert screened.returncode == 0, screened.stderr
    card = json.loads((isolated / "s" / "card.json").read_text())
    assert card["models"][0]["pretrained_record"]["name"] == NAME
    table = pd.read_parquet(isolated / "s" / "screen.parquet").set_index("id").sort_index()
    assert np.allclose(table["bulk_gpa"], direct["bulk_gpa"], rtol=1e-5)
    unknown = run_zoo("predict", "--model", "no-such-model", "--input", str(folder),
                      cwd=isolated)  # fmt: skip
    assert unknown.returncode == 2 and f"shipped: {NAME}" in unknown.stderr


def test_zoo_ensemble_takes_pretrained_names_and_refuses_a_member_twice(isolated):
    from zoo.commands.ensemble import member_sources
    from zoo.ensemble import build_ensemble

    ensemble = build_ensemble(member_sources(["zoo-elastic-mp2024"]))
    assert len(ensemble.members) == 3 and ensemble.sources[0].endswith("zoo.pt#0")
    with pytest.raises(ValueError, match="given twice"):
        member_sources(["zoo-elastic-mp2024", "zoo-elastic-mp2024"])


def test_the_shipped_models_info_gives_its_test_metrics_and_training_data():
    import zoo

    info = zoo.load_model("zoo-elastic-mp2024").info()
    record = pretrained.record("zoo-elastic-mp2024")
    assert info["metrics"] == {
        f"test_{t}_mae_log10": v for t, v in record["test_mae_log10"].items()
    }
    assert info["metrics_of"].startswith("the shipped ensemble")
    assert info["train_data"]["name"] == "mp_elasticity_2024.json.gz"
    assert info["train_data"]["description"] == record["training_data"]


def test_one_structure_gives_the_moduli_and_their_intervals_first():
    import zoo

    model = zoo.load_model("zoo-elastic-mp2024")
    one = model.predict(rocksalt())
    assert list(one)[:8] == ["shear_gpa", "shear_gpa_low", "shear_gpa_high", "bulk_gpa",
                             "bulk_gpa_low", "bulk_gpa_high", "error", "flagged"]  # fmt: skip
    assert set(one) == set(model.columns) and one["shear_gpa_low"] < one["shear_gpa"]
