"""No silent wrong number, a clear error for every bad input (issue 14).

The graph cache pairs every label with the graph of its own structure; broken structures
(overlapping atoms, species that are no element, NaN coordinates) are named errors; files with a
byte-order mark or Windows line ends read as they should; prediction never depends on targets;
a missing registry model is one line. Kills and resumes: ``tests/test_kills.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from tests.conftest import bcc_conventional, fcc_primitive, rocksalt
from zoo.cli import main
from zoo.config import load_config
from zoo.errors import BadInputError
from zoo.graphs import GraphSettings, neighbor_arrays
from zoo.readers import read_dataset
from zoo.training import prepare_data, train

CUBE_CIF = """data_{name}
_cell_length_a 4.0
_cell_length_b 4.0
_cell_length_c 4.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
_symmetry_equiv_pos_as_xyz 'x, y, z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{sites}
"""


def cube_cif(name: str, *sites: tuple[str, float, float, float]) -> str:
    rows = [f"{s}{i} {s} {x} {y} {z} 1" for i, (s, x, y, z) in enumerate(sites)]
    return CUBE_CIF.format(name=name, sites="\n".join(rows))


def cli(*args: str, cwd, **env: str) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a fresh process (as a user runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "zoo.cli", *args],
        cwd=cwd,
        env={**os.environ, "DGLBACKEND": "pytorch", **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def write_records(path, records, bom: bool = False):
    text = ("\ufeff" if bom else "") + json.dumps(records)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def six_crystals() -> list[Structure]:
    return [
        fcc_primitive(),
        rocksalt(),
        bcc_conventional(),
        fcc_primitive(4.08, "Au"),
        fcc_primitive(4.05, "Al"),
        bcc_conventional(3.3, "Nb"),
    ]


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory, demo):
    folder = tmp_path_factory.mktemp("bundle")
    config = load_config(None, {"epochs": 1, "output_dir": str(folder)})
    return train(config, dataset=demo, track=False, progress=False).bundle_path


# ---- the graph cache: labels meet their own structure's graph -------------------------------


def assert_paired(prepared, records: dict) -> None:
    """Every entry's graph holds the atoms of its own record's structure, with its own label."""
    store = prepared.store
    for row, entry in enumerate(store.ids):
        start, stop = store.node_offsets[row], store.node_offsets[row + 1]
        atoms = sorted(store.atomic_numbers[start:stop].tolist())
        structure = Structure.from_dict(records[entry]["structure"])
        assert atoms == sorted(structure.atomic_numbers), entry
        assert prepared.targets_gpa[row, 0] == records[entry]["shear_modulus_vrh"], entry


@pytest.mark.parametrize("change", ["permuted ids", "renamed ids", "duplicated structure"])
def test_cached_graphs_always_meet_their_own_labels(isolated, change):
    crystals = six_crystals()
    if change == "duplicated structure":
        crystals[1] = crystals[0]  # one structure under two ids, each with its own label
    records = [
        {
            "mp_id": f"mp-{i}",
            "alt_id": f"alt-{i}",
            "structure": s.as_dict(),
            "shear_modulus_vrh": 10.0 * (i + 1),
        }
        for i, s in enumerate(crystals)
    ]
    overrides = {"data.split_fractions": [0.5, 0.5, 0.0]}
    write_records(isolated / "first.json", records)
    config = load_config(None, {**overrides, "data.path": str(isolated / "first.json")})
    assert_paired(prepare_data(config, progress=False), {r["mp_id"]: r for r in records})

    second, id_key = [dict(r) for r in records], "mp_id"
    if change == "renamed ids":
        id_key = "alt_id"
    else:  # the same structures and labels, ids of records 0 and 1 swapped
        second[0]["mp_id"], second[1]["mp_id"] = second[1]["mp_id"], second[0]["mp_id"]
    write_records(isolated / "second.json", second)
    config = load_config(
        None, {**overrides, "data.path": str(isolated / "second.json"), "data.id_key": id_key}
    )
    prepared = prepare_data(config, progress=False)  # from the cache the first run wrote
    assert len(list((isolated / "graph-cache").glob("*.bin"))) == 1
    assert_paired(prepared, {r[id_key]: r for r in second})


# ---- broken structures are named errors -------------------------------------------------------


def test_overlapping_atoms_are_bad_input_naming_both_sites(isolated, bundle_path):
    close = cube_cif("close", ("Na", 0, 0, 0), ("Na", 0.0001, 0, 0))
    structure = Structure.from_str(close, fmt="cif")
    with pytest.raises(BadInputError, match=r"close: sites 0 \(Na\) and 1 \(Na\) are 0.0004 "):
        neighbor_arrays(structure, GraphSettings(), "close")
    folder = isolated / "cifs"
    folder.mkdir()
    (folder / "close.cif").write_text(close)
    rocksalt().to(filename=str(folder / "nacl.cif"))
    strict = cli("predict", "--model", str(bundle_path), "--input", str(folder), "-o", "s.csv",
                 "--strict", cwd=isolated)  # fmt: skip
    assert strict.returncode == 2 and "close: sites 0 (Na) and 1 (Na)" in strict.stderr
    assert (
        main(["predict", "--model", str(bundle_path), "--input", str(folder), "-o", "p.csv"]) == 0
    )
    table = pd.read_csv("p.csv", keep_default_na=False).set_index("id")
    assert table.loc["nacl", "error"] == "" and table.loc["close", "shear_gpa"] == ""
    assert "of their covalent radii (at least 0.5)" in table.loc["close", "error"]
    # training with --skip-bad leaves it out and reports it
    records = [
        {"mp_id": f"mp-{i}", "structure": s.as_dict(), "shear_modulus_vrh": 10.0 + i}
        for i, s in enumerate([*six_crystals(), structure])
    ]
    write_records(isolated / "r.json", records)
    config = load_config(
        None,
        {
            "data.path": str(isolated / "r.json"),
            "data.skip_bad": True,
            "data.split_fractions": [0.5, 0.5, 0.0],
        },
    )
    prepared = prepare_data(config, progress=False)
    assert "mp-6" not in prepared.store.ids
    assert [entry for entry, _ in prepared.skipped.items] == ["mp-6"]


@pytest.mark.parametrize("hash_seed", ["0", "1"])
def test_a_species_that_is_no_element_is_that_entrys_error_only(isolated, bundle_path, hash_seed):
    folder = isolated / "cifs"
    folder.mkdir()
    (folder / "dummy.cif").write_text(cube_cif("dummy", ("Xx", 0, 0, 0), ("Na", 0.5, 0.5, 0.5)))
    # pymatgen alone would read Nvg as nitrogen: a wrong structure, a silent number
    (folder / "misread.cif").write_text(cube_cif("m", ("Nvg", 0, 0, 0), ("Na", 0.5, 0.5, 0.5)))
    rocksalt().to(filename=str(folder / "nacl.cif"))
    fcc_primitive().to(filename=str(folder / "cu.cif"))
    done = cli("predict", "--model", str(bundle_path), "--input", str(folder), "-o", "p.csv",
               cwd=isolated, PYTHONHASHSEED=hash_seed)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    table = pd.read_csv(isolated / "p.csv", keep_default_na=False).set_index("id")
    for entry, symbol in (("dummy", "Xx"), ("misread", "Nvg")):
        reason = f"cannot read structure (species '{symbol}' is not a chemical element)"
        assert table.loc[entry, "error"] == reason
    assert table.loc[["nacl", "cu"], "error"].eq("").all()
    assert (table.loc[["nacl", "cu"], "shear_gpa"].astype(float) > 0).all()


def test_a_dummy_species_built_in_python_is_named():
    from pymatgen.core.periodic_table import DummySpecies

    from zoo.dataset import check_structure

    odd = Structure(Lattice.cubic(4.0), [DummySpecies("Xx"), "Na"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(BadInputError, match="odd: site 0: species Xx0\\+ is not a chemical"):
        check_structure("odd", odd)


def test_a_structure_given_directly_is_checked_too(bundle_path):
    from zoo.bundle import load_bundle
    from zoo.predictor import predict_structures

    nan_site = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nan_site.replace(1, "Cl", [float("nan"), 0.5, 0.5])
    table = predict_structures(load_bundle(bundle_path), ["nan", "ok"], [nan_site, rocksalt()])
    assert table.loc[0, "error"] == "lattice or atomic coordinates are not finite numbers"
    assert table.loc[1, "error"] == "" and table.loc[1, "shear_gpa"] > 0


# ---- files as users have them: byte-order marks, Windows line ends, invalid JSON -------------


def test_byte_order_mark_and_windows_line_ends_are_read(isolated):
    folder = isolated / "cgcnn"
    folder.mkdir()
    crystals = six_crystals()
    for i, structure in enumerate(crystals):
        structure.to(filename=str(folder / f"c{i}.cif"))
    rows = "".join(f"c{i},{20 + i}\r\n" for i in range(len(crystals)))
    (folder / "id_prop.csv").write_bytes(("\ufeff" + rows).encode("utf-8"))
    data = read_dataset(folder)
    assert data.ids == [f"c{i}" for i in range(6)]
    assert data.targets["shear"].tolist() == [20.0 + i for i in range(6)]

    records = [
        {"mp_id": f"mp-{i}", "structure": s.as_dict(), "shear_modulus_vrh": 30.0 + i}
        for i, s in enumerate(crystals)
    ]
    write_records(isolated / "bom.json", records, bom=True)
    write_records(isolated / "bom.json.gz", records, bom=True)
    for name in ("bom.json", "bom.json.gz"):
        assert read_dataset(isolated / name).ids == [f"mp-{i}" for i in range(6)]
    split = "\ufeffid,split\r\n" + "".join(
        f"mp-{i},{'train' if i < 4 else 'val'}\r\n" for i in range(6)
    )
    (isolated / "split.csv").write_bytes(split.encode("utf-8"))
    config = load_config(
        None, {"data.path": str(isolated / "bom.json"), "data.split_file": "split.csv"}
    )
    assert prepare_data(config, progress=False).split.sizes() == {"train": 4, "val": 2, "test": 0}


def test_invalid_json_names_the_file_and_line(isolated):
    (isolated / "bad.json").write_text('[\n  {"mp_id": "mp-1",\n   "structure": }\n]\n')
    with pytest.raises(ValueError, match=r"bad.json: invalid JSON at line 3, column 17"):
        read_dataset(isolated / "bad.json")
    assert main(["train", "--data", str(isolated / "bad.json"), "--no-track"]) == 2


# ---- --skip-bad, split files, --strict --------------------------------------------------------


def test_skip_bad_reports_records_without_structure_and_repeated_ids(isolated):
    records = [
        {"mp_id": f"mp-{i}", "structure": s.as_dict(), "shear_modulus_vrh": 40.0}
        for i, s in enumerate(six_crystals())
    ]
    records.append({"mp_id": "mp-empty", "shear_modulus_vrh": 40.0})
    records.append({**records[2], "shear_modulus_vrh": 99.0})  # mp-2 again
    write_records(isolated / "r.json", records)
    with pytest.raises(BadInputError, match="mp-empty: record has no 'structure' value"):
        read_dataset(isolated / "r.json")
    data = read_dataset(isolated / "r.json", skip_bad=True)
    assert data.ids == [f"mp-{i}" for i in range(6)]
    assert data.targets["shear"][2] == 40.0  # the first mp-2 is kept, the repeat reported
    assert data.skipped.items == [
        ("mp-empty", "record has no 'structure' value"),
        ("mp-2", "duplicate id (an earlier entry has the same id)"),
    ]


def test_split_file_ids_missing_from_the_data_are_reported_or_refused(isolated):
    records = [
        {"mp_id": f"mp-{i}", "structure": s.as_dict(), "shear_modulus_vrh": 40.0}
        for i, s in enumerate(six_crystals())
    ]
    write_records(isolated / "r.json", records)
    rows = [f"mp-{i},{'train' if i < 4 else 'val'}" for i in range(6)]
    rows += [f"mp-gone-{i},test" for i in range(7)]
    (isolated / "split.csv").write_text("id,split\n" + "\n".join(rows) + "\n")
    said: list[str] = []
    base = {"data.path": str(isolated / "r.json"), "data.split_file": "split.csv"}
    prepare_data(load_config(None, base), progress=False, log=said.append)
    assert said == [
        "split.csv: 7 of its ids are not in the data, e.g. mp-gone-0, mp-gone-1, "
        "mp-gone-2, mp-gone-3, mp-gone-4 (ignored)"
    ]
    with pytest.raises(ValueError, match="split.csv: 7 of its ids are not in the data"):
        prepare_data(load_config(None, {**base, "data.strict": True}), progress=False)


def test_prediction_does_not_read_the_targets_of_a_cgcnn_folder(isolated, bundle_path):
    folder = isolated / "cgcnn"
    folder.mkdir()
    for i, structure in enumerate(six_crystals()[:3]):
        structure.to(filename=str(folder / f"c{i}.cif"))
    (folder / "id_prop.csv").write_text("c0,-0.3\nc1,1.2\nc2,not-a-number\n")  # log10 values
    assert (
        main(["predict", "--model", str(bundle_path), "--input", str(folder), "-o", "p.csv"]) == 0
    )
    table = pd.read_csv("p.csv", keep_default_na=False)
    assert table["id"].tolist() == ["c0", "c1", "c2"] and table["error"].eq("").all()
    assert np.isfinite(table["shear_gpa"].astype(float)).all()


# ---- registry URIs that do not resolve --------------------------------------------------------


def test_a_missing_registry_model_is_one_line_and_creates_nothing(isolated, bundle_path):
    folder = isolated / "cifs"
    folder.mkdir()
    rocksalt().to(filename=str(folder / "nacl.cif"))
    args = ["predict", "--input", str(folder), "-o", "p.csv", "--model"]
    done = cli(*args, "models:/does-not-exist@champion", cwd=isolated)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "models:/does-not-exist@champion: there is no MLflow store here" in done.stderr
    assert not (isolated / "mlruns").exists()

    import mlflow

    from zoo import tracking
    from zoo.serving import log_pyfunc, register

    mlflow.set_tracking_uri(tracking.tracking_uri())
    with mlflow.start_run() as run:
        info = log_pyfunc(bundle_path)
    register(info.model_uri, "cgcnn-shear", 0.1, {"zoo.run_id": run.info.run_id}, log=print)
    for uri in ("models:/does-not-exist@champion", "models:/cgcnn-shear/7"):
        done = cli(*args, uri, cwd=isolated)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr == (
            f"error: {uri}: no such registered model, version or alias; registered models "
            "here: cgcnn-shear (@champion)\n"
        )
    done = cli(*args, "runs:/0123456789abcdef/model", cwd=isolated)
    assert done.returncode == 2 and "no such run" in done.stderr and done.stderr.count("\n") == 1
    assert cli(*args, "models:/cgcnn-shear@champion", cwd=isolated).returncode == 0


def test_a_split_given_in_memory_is_used_and_kept_for_a_resume(isolated, demo):
    ids = demo.ids
    split = {"train": ids[:40], "val": ids[40:47], "test": ids[47:]}
    config = load_config(None, {"epochs": 2, "run_name": "mem"})
    result = train(config, dataset=demo, split=split, track=False, progress=False)
    predictions = pd.read_csv(result.output_dir / "predictions.csv")
    for name, members in split.items():
        assert sorted(predictions.loc[predictions["split"] == name, "id"]) == sorted(members)
    kept = pd.read_csv(result.output_dir / "split.csv")
    assert dict(zip(kept["id"], kept["split"], strict=True)) == {
        entry: name for name, members in split.items() for entry in members
    }
    with pytest.raises(ValueError, match="Cu is in both train and test"):
        train(config, dataset=demo, split={"train": ["Cu"], "test": ["Cu"]}, track=False)
