"""zoo compare: two groups of run folders, compared on the crystals they were tested on."""

import numpy as np
import pandas as pd
import pytest

from zoo.cli import main
from zoo.compare import compare_runs, read_run_predictions


def write_run(folder, ids, splits, columns):
    """A run folder with a predictions.csv and the targets in config.yaml, in the layout zoo
    train writes."""
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"id": ids, "split": splits, **columns})
    frame.to_csv(folder / "predictions.csv", index=False)
    targets = [c.removesuffix("_pred_gpa") for c in columns if c.endswith("_pred_gpa")]
    (folder / "config.yaml").write_text(f"targets: {targets}\n")
    return folder


@pytest.fixture
def runs(tmp_path):
    # 20 test crystals and 4 training ones; true bulk moduli 10..200 GPa. The base run is off by
    # a factor 10**0.05 on every test crystal, the other by 10**0.055: exactly 10% more error
    ids = [f"mp-{i}" for i in range(24)]
    splits = ["train"] * 4 + ["test"] * 20
    true = np.linspace(10.0, 200.0, 24)
    base = write_run(
        tmp_path / "base",
        ids,
        splits,
        {"bulk_true_gpa": true, "bulk_pred_gpa": true * 10**0.05},
    )
    other = write_run(
        tmp_path / "other",
        ids[::-1],  # row order does not matter
        splits[::-1],
        {
            "shear_true_gpa": true[::-1] / 2,
            "shear_pred_gpa": true[::-1] / 2,
            "bulk_true_gpa": true[::-1],
            "bulk_pred_gpa": true[::-1] * 10**0.055,
        },
    )
    return base, other


def test_compare_runs_on_the_shared_target(runs):
    base, other = runs
    (comparison,) = compare_runs([base], [other])  # bulk is the only target both predict
    assert comparison.target == "bulk" and comparison.crystals == 20
    assert comparison.base_mae == pytest.approx(0.05)
    assert comparison.other_mae == pytest.approx(0.055)
    assert comparison.change.change == pytest.approx(0.1)
    assert comparison.change.low == pytest.approx(0.1) and comparison.change.high == pytest.approx(
        0.1
    )
    tested = read_run_predictions(other, "bulk")
    assert tested.ids == tuple(sorted(f"mp-{i}" for i in range(4, 24)))


def test_zoo_compare_prints_the_change(runs, capsys):
    base, other = runs
    assert main(["compare", "--base", str(base), "--other", str(other)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.split()[:4] == ["bulk", "20", "0.0500", "0.0550"]
    assert line.endswith("+10.0% (95% interval +10.0% to +10.0%)")


def test_runs_of_different_splits_or_targets_are_refused(runs, tmp_path, capsys):
    base, other = runs
    frame = pd.read_csv(base / "predictions.csv")
    frame.loc[frame["id"] == "mp-5", "split"] = "val"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    frame.to_csv(elsewhere / "predictions.csv", index=False)
    (elsewhere / "config.yaml").write_text((base / "config.yaml").read_text())
    with pytest.raises(ValueError, match="different test crystals"):
        compare_runs([base], [elsewhere])
    with pytest.raises(ValueError, match=r"no predictions of shear \(the run has \['bulk'\]\)"):
        compare_runs([base], [other], ["shear"])
    assert main(["compare", "--base", str(base), "--other", str(tmp_path / "nothing")]) == 2
    assert "no predictions.csv" in capsys.readouterr().err
