"""Our CGCNN is the original CGCNN: imported weights reproduce the original code's predictions.

Golden values: ``../shared/reference/cgcnn/predictions/*.csv``, written by the ORIGINAL code
(txie-93/cgcnn ``predict.py``, torch 2.13, pymatgen 2026) with the pretrained checkpoints in
``../shared/reference/cgcnn/pretrained`` on the 10 sample CIFs and on the 3,953 development
structures.

On the development set 3,921 of 3,953 structures agree within 1e-4 log10(GPa) for each model.
The other 32 all have an atom whose 12th and 13th nearest neighbours are equidistant (within
1e-3 angstrom): the original keeps whichever one ``get_all_neighbors`` happened to list first,
ours the nearer by the last bits of the computed distance, then the lower site index, and where
the tied neighbours differ the predictions do. No structure without such a tie disagrees. The
count moves with the floating-point library: 3,924 with the numpy of earlier sessions, 3,921
with numpy 2.4.6 (November 2026); the tie rule, not the count, is what is asserted strictly.
"""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DEV_SET, REFERENCE, needs_shared
from zoo.cgcnn_import import import_cgcnn
from zoo.elements import read_element_table
from zoo.predictor import predict_structures
from zoo.readers import read_dataset

pytestmark = needs_shared
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def dev_set():
    return read_dataset(DEV_SET)


def imported(target):
    table = read_element_table(REFERENCE / "atom_init.json")
    return import_cgcnn(REFERENCE / "pretrained" / f"{target}-moduli.pth.tar", table)


def compare(bundle, dataset, reference_csv, target):
    ours = predict_structures(bundle, dataset.ids, dataset.structures)
    reference = pd.read_csv(reference_csv, dtype={"id": str})
    merged = reference.merge(ours, on="id", validate="one_to_one")
    assert len(merged) == len(reference) == len(dataset)
    return merged.assign(diff=(merged["prediction"] - merged[f"{target}_log10"]).abs())


def tied_at_cut(structure, radius=8.0, k=12, gap=1e-3):
    centers, _, _, distances = structure.get_neighbor_list(radius)
    for atom in range(len(structure)):
        mine = np.sort(distances[centers == atom])
        if len(mine) > k and mine[k] - mine[k - 1] < gap:
            return True
    return False


@pytest.mark.parametrize("target", ["shear", "bulk"])
def test_sample_cifs_match_the_original(target):
    dataset = read_dataset(REFERENCE / "sample-regression")
    merged = compare(
        imported(target), dataset, REFERENCE / "predictions" / f"{target}-moduli_sample.csv", target
    )
    assert (merged["diff"] < TOLERANCE).all(), merged


@pytest.mark.parametrize("target", ["shear", "bulk"])
def test_development_set_matches_the_original(target, dev_set):
    merged = compare(
        imported(target), dev_set, REFERENCE / "predictions" / f"{target}-moduli_dev.csv", target
    )
    matching = merged["diff"] < TOLERANCE
    assert matching.sum() >= 3921
    position = {entry: i for i, entry in enumerate(dev_set.ids)}
    for entry in merged.loc[~matching, "id"]:
        assert tied_at_cut(dev_set.structures[position[entry]]), entry


@pytest.mark.parametrize("target", ["shear", "bulk"])
def test_import_cli_writes_a_loadable_bundle(tmp_path, target):
    from zoo.bundle import load_bundle
    from zoo.cli import main

    out = tmp_path / f"{target}.zoo.pt"
    assert (
        main(
            [
                "import-cgcnn",
                str(REFERENCE / "pretrained" / f"{target}-moduli.pth.tar"),
                "--atom-init",
                str(REFERENCE / "atom_init.json"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    bundle = load_bundle(out)
    assert bundle.transform.targets == (target,)
    assert bundle.model_config["n_conv"] == 4 and bundle.model_config["h_fea_len"] == 32
