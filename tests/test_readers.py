"""Round trips for every input format, on the demo structures and the real shared files."""

import csv
import gzip
import json

import numpy as np
import pytest

from tests.conftest import DEV_SET, DEV_SPLIT, SHARED, needs_shared
from zoo.readers import read_dataset
from zoo.splits import (
    fold_split,
    kfold_assignment,
    random_split,
    read_split_file,
    write_split_file,
)


def same_structures(a, b, tol=1e-6):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.composition == y.composition
        # lengths and angles: a CIF does not keep the cell's orientation in space
        assert np.allclose(x.lattice.abc, y.lattice.abc, atol=tol)
        assert np.allclose(x.lattice.angles, y.lattice.angles, atol=tol)
        assert np.allclose(x.frac_coords % 1.0, y.frac_coords % 1.0, atol=tol)


def test_demo_set(demo):
    assert len(demo) == 53
    assert demo.targets["bulk"][demo.ids.index("Fe")] == 170.0  # pymatgen element data, GPa
    assert demo.targets["shear"][demo.ids.index("Fe")] == 82.0
    assert "demo" in demo.source


def test_matbench_round_trip(tmp_path, demo):
    payload = {
        "index": [3, 10],
        "columns": ["structure", "log10(G_VRH)"],
        "data": [
            [s.as_dict(), float(np.log10(g))]
            for s, g in zip(demo.structures[:2], demo.targets["shear"][:2], strict=True)
        ],
    }
    path = tmp_path / "matbench_log_gvrh.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(payload, handle)
    data = read_dataset(path)
    assert data.ids == ["mb-log-gvrh-00004", "mb-log-gvrh-00011"]
    assert np.allclose(data.targets["shear"], demo.targets["shear"][:2])
    same_structures(data.structures, demo.structures[:2])


@pytest.mark.skipif(not (SHARED / "data" / "matbench").exists(), reason="../shared absent")
def test_matbench_subset_file_from_shared():
    data = read_dataset(SHARED / "data" / "matbench" / "matbench_log_kvrh_subset.json.gz")
    assert len(data) == 3077
    assert data.ids[0] == "mb-log-kvrh-00004"
    with open(SHARED / "data" / "matbench" / "subset_log_kvrh_mp_ids.csv") as handle:
        assert next(csv.DictReader(handle))["mbid"] == data.ids[0]


def test_cgcnn_folder_round_trip(tmp_path, demo):
    folder = tmp_path / "cifs"
    folder.mkdir()
    with open(folder / "id_prop.csv", "w") as handle:
        for entry, structure, value in zip(
            demo.ids[:5], demo.structures[:5], demo.targets["bulk"][:5], strict=True
        ):
            structure.to(filename=str(folder / f"{entry}.cif"))
            handle.write(f"{entry},{np.log10(value)}\n")
    data = read_dataset(folder, cgcnn_target="bulk", cgcnn_log10=True)
    assert data.ids == demo.ids[:5]
    assert np.allclose(data.targets["bulk"], demo.targets["bulk"][:5])
    same_structures(data.structures, demo.structures[:5], tol=1e-5)


def test_json_records_round_trip_with_missing_values(tmp_path, demo):
    records = [
        {"name": e, "structure": s.as_dict(), "G": g, "K": None if i == 1 else k}
        for i, (e, s, g, k) in enumerate(
            zip(
                demo.ids[:4],
                demo.structures[:4],
                demo.targets["shear"][:4],
                demo.targets["bulk"][:4],
                strict=True,
            )
        )
    ]
    del records[2]["G"]
    path = tmp_path / "records.json.gz"
    with gzip.open(path, "wt") as handle:
        json.dump(records, handle)
    data = read_dataset(path, id_key="name", target_keys={"shear": "G", "bulk": "K"})
    assert data.ids == demo.ids[:4]
    assert np.isnan(data.targets["bulk"][1]) and np.isnan(data.targets["shear"][2])
    assert data.targets["shear"][0] == demo.targets["shear"][0]
    same_structures(data.structures, demo.structures[:4])


@needs_shared
def test_development_set():
    data = read_dataset(DEV_SET)
    assert len(data) == 3953
    assert (data.targets["shear"] > 0).all() and (data.targets["bulk"] > 0).all()
    split = read_split_file(DEV_SPLIT, data.ids)
    assert split.sizes() == {"train": 2845, "val": 317, "test": 791}


def test_extxyz_round_trip(tmp_path, demo):
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for entry, structure, g in zip(
        demo.ids[:3], demo.structures[:3], demo.targets["shear"][:3], strict=True
    ):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update({"id": entry, "G_VRH": g})
        frames.append(atoms)
    ase.io.write(tmp_path / "set.extxyz", frames, format="extxyz")
    data = read_dataset(tmp_path / "set.extxyz", target_keys={"shear": "G_VRH"})
    assert data.ids == demo.ids[:3]
    assert np.allclose(data.targets["shear"], demo.targets["shear"][:3])
    same_structures(data.structures, demo.structures[:3])


def test_ase_db_round_trip(tmp_path, demo):
    import ase.db
    from pymatgen.io.ase import AseAtomsAdaptor

    with ase.db.connect(tmp_path / "set.db") as database:
        for entry, structure, k in zip(
            demo.ids[:3], demo.structures[:3], demo.targets["bulk"][:3], strict=True
        ):
            database.write(AseAtomsAdaptor.get_atoms(structure), id_name=entry, bulk=float(k))
    data = read_dataset(tmp_path / "set.db", target_keys={"bulk": "bulk"})
    assert np.allclose(data.targets["bulk"], demo.targets["bulk"][:3])
    same_structures(data.structures, demo.structures[:3])


def test_poscar_folder(tmp_path, demo):
    folder = tmp_path / "poscars"
    folder.mkdir()
    for entry, structure in zip(demo.ids[:3], demo.structures[:3], strict=True):
        structure.to(filename=str(folder / f"{entry}.vasp"), fmt="poscar")
    data = read_dataset(folder)
    assert sorted(data.ids) == sorted(demo.ids[:3])
    order = [data.ids.index(e) for e in demo.ids[:3]]
    same_structures([data.structures[i] for i in order], demo.structures[:3])
    assert data.targets == {}


def test_split_file_round_trip_and_random_split(tmp_path):
    ids = [f"x{i}" for i in range(50)]
    split = random_split(50, (0.8, 0.1, 0.1), seed=3)
    assert split.sizes() == {"train": 40, "val": 5, "test": 5}
    assert len(set(np.concatenate([split.train, split.val, split.test]))) == 50
    assert np.array_equal(random_split(50, (0.8, 0.1, 0.1), seed=3).val, split.val)
    write_split_file(tmp_path / "split.csv", ids, split)
    again = read_split_file(tmp_path / "split.csv", ids)
    assert all(
        np.array_equal(getattr(again, s), getattr(split, s)) for s in ("train", "val", "test")
    )
    with pytest.raises(ValueError, match="no split"):
        read_split_file(tmp_path / "split.csv", [*ids, "extra"])


def test_kfold_assignment_and_fold_split():
    assignment = kfold_assignment(23, folds=5, seed=7)
    assert sorted(np.bincount(assignment).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(kfold_assignment(23, folds=5, seed=7), assignment)
    split = fold_split(assignment, 2, val_fraction=0.1, seed=1)
    assert np.array_equal(split.test, np.flatnonzero(assignment == 2))
    assert len(split.val) == 2 and len(split.train) == 23 - len(split.test) - 2
    together = np.concatenate([split.train, split.val, split.test])
    assert sorted(together.tolist()) == list(range(23))
    with pytest.raises(ValueError, match="fold 5 has no entries"):
        fold_split(assignment, 5, val_fraction=0.1)
    with pytest.raises(ValueError, match="cannot make 5 folds"):
        kfold_assignment(3)


@pytest.mark.skipif(
    not (SHARED / "data" / "matbench").is_dir(), reason=f"Matbench tables not found in {SHARED}"
)
@pytest.mark.parametrize("task", ["gvrh", "kvrh"])
def test_kfold_assignment_is_matbench_rule(task):
    # the official test fold of every one of the 10,987 rows, from Matbench's own result files
    # (../shared/data/matbench/leaderboard_predictions_log_*.csv, column test_fold)
    path = SHARED / "data" / "matbench" / f"leaderboard_predictions_log_{task}.csv"
    with open(path, newline="") as handle:
        official = np.array([int(row["test_fold"]) for row in csv.DictReader(handle)])
    assert len(official) == 10987
    assert np.array_equal(kfold_assignment(len(official)), official)


def write_every_format(folder, demo, count: int = 7) -> dict[str, object]:
    """The first ``count`` demo crystals in every format that holds several; name -> path."""
    import ase.db
    import ase.io
    from pymatgen.io.ase import AseAtomsAdaptor

    ids, structures = demo.ids[:count], demo.structures[:count]
    shear = [float(v) for v in demo.targets["shear"][:count]]
    records = [
        {"mp_id": e, "structure": s.as_dict(), "shear_modulus_vrh": g}
        for e, s, g in zip(ids, structures, shear, strict=True)
    ]
    (folder / "r.json").write_text(json.dumps(records))
    (folder / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with gzip.open(folder / "r.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in records))
    frames = []
    for entry, structure, g in zip(ids, structures, shear, strict=True):
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update({"id": entry, "shear": g})
        frames.append(atoms)
    ase.io.write(folder / "set.extxyz", frames, format="extxyz")
    with ase.db.connect(folder / "set.db") as database:
        for atoms in frames:
            database.write(atoms, id_name=atoms.info["id"], shear=atoms.info["shear"])
    cifs = folder / "cifs"
    cifs.mkdir()
    for entry, structure in zip(ids, structures, strict=True):
        structure.to(filename=str(cifs / f"{entry}.cif"))
    cgcnn = folder / "cgcnn"
    cgcnn.mkdir()
    for entry, structure in zip(ids, structures, strict=True):
        structure.to(filename=str(cgcnn / f"{entry}.cif"))
    (cgcnn / "id_prop.csv").write_text(
        "".join(f"{e},{g}\n" for e, g in zip(ids, shear, strict=True))
    )
    return {
        "records-json": folder / "r.json",
        "records-jsonl": folder / "r.jsonl",
        "records-jsonl.gz": folder / "r.jsonl.gz",
        "extxyz": folder / "set.extxyz",
        "ase-db": folder / "set.db",
        "structure-folder": cifs,
        "cgcnn-folder": cgcnn,
    }


@pytest.mark.parametrize(
    "name",
    ["records-json", "records-jsonl", "records-jsonl.gz", "extxyz", "ase-db", "structure-folder",
     "cgcnn-folder"],
)  # fmt: skip
def test_every_format_reads_in_chunks_as_it_reads_whole(tmp_path, demo, name, monkeypatch):
    from zoo.readers import format_for, iter_datasets

    path = write_every_format(tmp_path, demo)[name]
    assert format_for(path).name == name.removesuffix(".gz")
    whole = read_dataset(path)
    parsed = []
    import zoo.dataset

    real_check = zoo.dataset.check_structure
    monkeypatch.setattr(
        zoo.dataset, "check_structure", lambda e, s: parsed.append(e) or real_check(e, s)
    )
    chunks = iter_datasets(path, 3)
    first = next(chunks)
    assert first.ids == whole.ids[:3]
    if format_for(path).streams:  # nothing beyond the first chunk was parsed yet
        assert parsed == whole.ids[:3]
    rest = list(chunks)
    assert [len(c) for c in [first, *rest]] == [3, 3, 1]
    ids = [e for c in [first, *rest] for e in c.ids]
    assert ids == whole.ids
    for chunk in [first, *rest]:
        for target, values in chunk.targets.items():
            expected = [whole.targets[target][whole.ids.index(e)] for e in chunk.ids]
            assert np.array_equal(values, expected, equal_nan=True)


def test_chunks_report_bad_entries_and_repeated_ids_across_chunks(tmp_path, demo):
    from zoo.readers import iter_datasets

    lines = [
        {"mp_id": e, "structure": s.as_dict(), "shear_modulus_vrh": 10.0}
        for e, s in zip(demo.ids[:4], demo.structures[:4], strict=True)
    ]
    text = "".join(json.dumps(r) + "\n" for r in lines)
    text += "{not json\n" + json.dumps(lines[0]) + "\n"  # a broken line, then mp-0 again
    (tmp_path / "r.jsonl").write_text(text)
    chunks = list(iter_datasets(tmp_path / "r.jsonl", 2))
    assert [c.ids for c in chunks] == [demo.ids[:2], demo.ids[2:4], []]
    assert chunks[2].skipped.items == [
        ("line-5", "invalid JSON (Expecting property name enclosed in double quotes)"),
        (demo.ids[0], "duplicate id (an earlier entry has the same id)"),
    ]


def test_structure_from_dict_builds_from_dicts_structure_bit_for_bit(demo):
    """The strict dict reader (never ``from_dict``) gives from_dict's lattice, elements and
    coordinates bit for bit, keeps oxidation states, partial occupancies and plain site
    properties."""
    from pymatgen.core import Structure

    from tests.conftest import rocksalt
    from zoo.readers.structures import structure_from_dict

    for structure in demo.structures[:20]:
        value = structure.as_dict()
        fast, slow = structure_from_dict(value), Structure.from_dict(value)
        assert type(fast) is Structure and fast == slow
        assert np.array_equal(fast.lattice.matrix, slow.lattice.matrix)
        assert np.array_equal(fast.frac_coords, slow.frac_coords)
        assert fast.atomic_numbers == slow.atomic_numbers
    charged = rocksalt()
    charged.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    disordered = rocksalt()
    disordered.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    magnetic = rocksalt()
    magnetic.add_site_property("magmom", [1.0] * len(magnetic))
    for structure in (charged, disordered, magnetic):
        again = structure_from_dict(structure.as_dict())
        assert again == structure and again.site_properties == structure.site_properties
    assert str(structure_from_dict(charged.as_dict())[0].specie) == "Na+"


def test_jsonl_count_without_parsing_equals_the_entries_read(tmp_path):
    """A JSON-lines file counted by its lines (BOM, blank lines, a broken line, a record
    without a structure) has as many entries as reading it yields."""
    from tests.conftest import rocksalt
    from zoo.readers.registry import FORMATS, count_entries, iter_entry_chunks

    good = json.dumps({"mp_id": "a", "structure": rocksalt().as_dict()})
    text = "\ufeff" + good + "\n\n  \n{broken\n" + json.dumps({"mp_id": "b"}) + "\n" + good
    for name in ("in.jsonl", "in.jsonl.gz"):
        path = tmp_path / name
        if name.endswith(".gz"):
            with gzip.open(path, "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            path.write_text(text, encoding="utf-8")
        read = [e for chunk in iter_entry_chunks(path, 10, with_targets=False) for e in chunk]
        assert len(read) == 4 and count_entries(path) == 4
    assert FORMATS["records-jsonl"].count is not None


def test_parsing_in_worker_processes_gives_the_same_entries_reasons_and_order(tmp_path, demo):
    """250 records (CIF text and dicts, a broken CIF, a record without a structure, a repeated
    id), read with 2 worker processes (above ``PARALLEL_PARSE``) and in this process: the same
    ids, structures and skip report, in the same order."""
    from zoo.dataset import PARALLEL_PARSE
    from zoo.readers import read_dataset

    records = []
    for number in range(250):
        structure = demo.structures[number % len(demo)]
        text = structure.to(fmt="cif") if number % 2 else structure.as_dict()
        records.append({"mp_id": f"x-{number}", "structure": text})
    records[7]["structure"] = "data_broken\n_cell_length_a 3\n"
    del records[11]["structure"]
    records[40]["mp_id"] = "x-3"
    assert len(records) >= PARALLEL_PARSE
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records))
    serial = read_dataset(path, skip_bad=True, with_targets=False)
    forked = read_dataset(path, skip_bad=True, with_targets=False, workers=2)
    assert forked.ids == serial.ids and len(serial) == 247
    assert forked.skipped.items == serial.skipped.items
    assert [entry for entry, _ in serial.skipped.items] == ["x-7", "x-11", "x-3"]
    same_structures(forked.structures, serial.structures)
