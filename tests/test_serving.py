"""The registry model's input table: every accepted structure kind, both moduli of a multitask
model, and bad rows that get a reason instead of stopping the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from zoo.config import load_config
from zoo.resolve import resolve_model
from zoo.serving import RequestBounds, RequestRefused, predict_table
from zoo.training import train


@pytest.fixture(scope="module")
def multitask_bundle(tmp_path_factory, demo):
    folder = tmp_path_factory.mktemp("mt")
    config = load_config(
        None,
        {"model": "cgcnn-mt", "targets": ["shear", "bulk"], "epochs": 2, "output_dir": str(folder)},
    )
    return resolve_model(train(config, dataset=demo, track=False, progress=False).bundle_path)


def test_every_structure_kind_gives_the_same_prediction(multitask_bundle, demo, tmp_path):
    structure = demo.structures[7]
    path = tmp_path / "x.cif"
    structure.to(filename=str(path))
    table = pd.DataFrame(
        {
            "id": ["object", "dict", "cif text", "poscar text", "path"],
            "structure": [
                structure,
                structure.as_dict(),
                structure.to(fmt="cif"),
                structure.to(fmt="poscar"),
                str(path),
            ],
        }
    )
    out = predict_table(multitask_bundle, table, allow_paths=True)
    assert list(out.columns) == [
        "id",
        "shear_gpa",
        "shear_log10",
        "bulk_gpa",
        "bulk_log10",
        "error",
        "flag_unseen_elements",
        "flag_density_outside",
        "flag_sites_outside",
        "flag_volume_per_atom_outside",
        "flag_many_atoms",
        "flag_few_neighbors",
        "flagged",
    ]
    assert (out["error"] == "").all()
    for column in ("shear_gpa", "bulk_gpa"):
        np.testing.assert_allclose(out[column], out[column].iloc[0], rtol=1e-5)
    np.testing.assert_allclose(out["shear_gpa"], 10.0 ** out["shear_log10"], rtol=1e-6)


def test_bad_rows_get_a_reason_and_the_rest_is_predicted(multitask_bundle, demo):
    disordered = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    table = pd.DataFrame(
        {
            "structure": [
                demo.structures[0].as_dict(),
                "data_broken\n_cell_length_a nonsense\n",
                disordered.as_dict(),
                "no/such/file.cif",
                demo.structures[1],
            ]
        }
    )
    out = predict_table(multitask_bundle, table)
    assert list(out["id"]) == ["0", "1", "2", "3", "4"]  # row numbers when there is no id
    assert out.loc[[0, 4], "error"].eq("").all()
    assert out.loc[[0, 4], "bulk_gpa"].notna().all()
    assert "cannot read structure" in out.loc[1, "error"]
    assert "disordered" in out.loc[2, "error"]
    assert "file paths are not read" in out.loc[3, "error"]
    assert out.loc[[1, 2, 3], "shear_gpa"].isna().all()


def test_paths_are_read_only_when_allowed_and_never_tell_existing_from_missing(
    multitask_bundle, demo, tmp_path
):
    real = tmp_path / "real.cif"
    demo.structures[0].to(filename=str(real))
    table = pd.DataFrame({"structure": [str(real), str(tmp_path / "missing.cif")]})
    refused = predict_table(multitask_bundle, table)
    assert refused["error"].iloc[0] == refused["error"].iloc[1]  # the same words for both
    assert "file paths are not read" in refused["error"].iloc[0]
    allowed = predict_table(multitask_bundle, table, allow_paths=True)
    assert allowed["error"].iloc[0] == "" and "not a structure file" in allowed["error"].iloc[1]


def test_served_bounds_refuse_a_large_request_and_name_a_large_structure(multitask_bundle, demo):
    big = demo.structures[0] * (2, 2, 2)
    table = pd.DataFrame({"structure": [demo.structures[0].as_dict(), big.as_dict()]})
    bounds = RequestBounds(structures=2, sites=len(big) - 1)
    out = predict_table(multitask_bundle, table, bounds=bounds)
    assert out["error"].iloc[0] == ""
    assert f"{len(big)} sites; at most {len(big) - 1} are taken here" in out["error"].iloc[1]
    with pytest.raises(RequestRefused, match="3 structures in one request; at most 2"):
        predict_table(multitask_bundle, pd.concat([table, table.iloc[:1]]), bounds=bounds)
    few = RequestBounds(total_sites=len(big))  # the first two rows fit, the third does not
    with pytest.raises(RequestRefused, match=f"{len(big) + 2 * len(demo.structures[0])} sites in"):
        predict_table(multitask_bundle, pd.concat([table, table.iloc[:1]]), bounds=few)


def test_input_without_structure_column_or_with_repeated_ids_is_an_error(multitask_bundle):
    with pytest.raises(ValueError, match="'structure' column"):
        predict_table(multitask_bundle, pd.DataFrame({"cif": ["x"]}))
    with pytest.raises(ValueError, match="repeated"):
        predict_table(multitask_bundle, pd.DataFrame({"id": ["a", "a"], "structure": ["x", "y"]}))
