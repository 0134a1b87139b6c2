"""Golden numbers of a tiny fixed-seed training run, pinning the whole pipeline (reader, graphs,
batches, model, loss, optimiser, schedule, weight average, best-epoch choice, metrics,
predictions) while it is restructured.

Where the numbers came from: ``train`` with ``{"epochs": 4, "threads": 1, "seed": 0}`` (plus the
multitask case's model and targets) on the built-in demo set, no MLflow, run on 2026-11-30 with
torch 2.13.0+cpu, dgl 1.1.3, numpy 2.4.6, pymatgen 2026.10.24 at commit 58916b6 (after the
issue-14 hardening; the commit before it, fd4446b, gives the same numbers); printed with six
significant digits and asserted to them. Numbers moved since, on purpose, only in the sixth
digit of cgcnn's test predictions, each time the eval forward pass computed the same function
in another order (float32 rounds it differently, about 1e-6 relative; the training curve and
metrics did not move): Zn 80.0837 -> 80.0838 when each convolution's batch norm was folded
into its linear map; Zn 80.0838 -> 80.0837 and Sm 96.0775 -> 96.0776 when the gate and core
halves began to be built apart, the bias added per node. Four epochs
of 53 crystals train nothing useful: these are pins, not results. A change that moves them
changes what training computes and must say why.

Across machines the numbers are not bit for bit the same: on the 2026-12-03 machine (another
Intel Xeon, AVX-512, the same packages) the same code at commit 15c46a9 gives test shear MAE
0.574806 against 0.574819 and the multitask test bulk MAE 0.327641 against 0.328409 (float32
kernels summing in another order over four epochs). The pins therefore hold to
:data:`MACHINE_TOLERANCE` (relative), ten times the largest cross-machine difference seen and
far below what a change of computation gives; the best epoch must be the same.
"""

from __future__ import annotations

import pandas as pd
import pytest

from zoo.config import load_config
from zoo.training import train

GOLDEN = {
    "cgcnn": {
        "overrides": {},
        "best_epoch": 1,
        "metrics": {
            "test_shear_mae_log10": 0.574819,
            "train_shear_mae_log10": 0.559497,
            "val_shear_mae_log10": 0.682517,
        },
        "val_curve": [0.682517, 0.952861, 0.868451, 0.750981],
        "test_predictions_gpa": {
            "Zn": [80.0837],
            "Pr": [108.197],
            "Sm": [96.0776],
            "Gd": [96.1969],
            "Hf": [79.5578],
        },
    },
    "cgcnn-mt": {
        "overrides": {"model": "cgcnn-mt", "targets": ["shear", "bulk"]},
        "best_epoch": 2,
        "metrics": {
            "test_bulk_mae_log10": 0.328409,
            "test_shear_mae_log10": 0.900039,
            "train_bulk_mae_log10": 0.534701,
            "train_shear_mae_log10": 0.982536,
            "val_bulk_mae_log10": 0.534001,
            "val_shear_mae_log10": 0.876461,
        },
        "val_curve": [1.01565, 0.705231, 0.8028, 0.724325],
        "test_predictions_gpa": {
            "Zn": [3.48725, 37.5405],
            "Pr": [3.10423, 20.6894],
            "Sm": [2.8255, 20.4662],
            "Gd": [2.81354, 20.6122],
            "Hf": [3.12719, 22.4388],
        },
    },
}


MACHINE_TOLERANCE = 2e-2
"""Relative: the largest difference between two machines seen was 2.3e-3 (module docstring)."""


def six_digits(value: float) -> float:
    return float(f"{value:.6g}")


def close(found, golden) -> bool:
    return found == pytest.approx(golden, rel=MACHINE_TOLERANCE)


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_a_tiny_fixed_seed_run_gives_the_golden_numbers(isolated, demo, case):
    golden = GOLDEN[case]
    config = load_config(None, {"epochs": 4, "threads": 1, "seed": 0, **golden["overrides"]})
    result = train(config, dataset=demo, track=False, progress=False)
    assert result.best_epoch == golden["best_epoch"]
    for key, value in golden["metrics"].items():
        assert close(six_digits(result.metrics[key]), value), key
    curve = [six_digits(row["val_mae_log10"]) for row in result.history]
    assert close(curve, golden["val_curve"]), curve
    predictions = pd.read_csv(result.output_dir / "predictions.csv")
    test = predictions[predictions["split"] == "test"]
    columns = [f"{target}_pred_gpa" for target in config.targets]
    found = {row["id"]: [six_digits(row[c]) for c in columns] for _, row in test.iterrows()}
    assert found.keys() == golden["test_predictions_gpa"].keys()
    for entry, values in golden["test_predictions_gpa"].items():
        assert close(found[entry], values), (entry, found[entry])
