"""Untrusted input is data, never code or a file (issue 28): structure dicts that carry
``@module``/``@class`` object references (which monty's decoder would import and build, with
the caller's arguments, such as a file name) are refused with a one-line reason wherever they
come in: the parser, ``zoo.load_model(...).predict``, ``zoo predict``, ``zoo screen`` (local
and Dask); the same through a real ``mlflow models serve`` is in ``test_served_model.py``.

Each reference names a marker module of this test's own, which would write a file when
imported: the module must stay out of ``sys.modules`` and the file must not appear. Checkpoints
that would run code on ``torch.load`` are in ``test_kills.py``'s neighbour,
``test_checkpoint_safety`` below.
"""

from __future__ import annotations

import copy
import gzip
import json
import pickle

import pandas as pd
import pytest
import torch

from tests.conftest import MARKER, rocksalt, run_zoo
from zoo.config import load_config
from zoo.readers.structures import parse_structure
from zoo.training import train


def hostile_dicts() -> dict[str, dict]:
    """Rock salt as a pymatgen dict with an object reference in each place one can hide."""
    reference = {"@module": MARKER, "@class": "Anything", "filename": "/etc/passwd"}
    lobster = {"@module": "pymatgen.io.lobster.outputs", "@class": "Bandoverlaps",
               "filename": "/etc/passwd"}  # fmt: skip
    cases = {}
    for name in ("site property", "structure property", "species", "element", "lattice",
                 "matrix", "top level", "server file"):  # fmt: skip
        value = rocksalt().as_dict()
        site = value["sites"][0]
        if name == "site property":
            site["properties"] = {"magmom": reference}
        elif name == "structure property":
            value["properties"] = {"nested": [{"deeper": reference}]}
        elif name == "species":
            site["species"] = [{**reference, "element": "Na", "occu": 1}]
        elif name == "element":
            site["species"][0]["element"] = reference
        elif name == "lattice":
            value["lattice"].update(reference)
        elif name == "matrix":
            value["lattice"]["matrix"] = reference
        elif name == "top level":
            value.update(reference)
        else:
            site["properties"] = {"x": lobster}
        cases[name] = value
    return cases


@pytest.mark.parametrize("case", list(hostile_dicts()))
def test_object_references_anywhere_in_a_dict_are_refused_in_one_line(case, marker):
    with pytest.raises(ValueError) as refused:
        parse_structure(hostile_dicts()[case])
    message = str(refused.value)
    assert "object reference" in message and "plain data" in message
    assert "\n" not in message and "root:" not in message


def test_a_plain_pymatgen_dict_reads_as_the_same_structure_with_its_species(marker):
    structure = rocksalt()
    structure.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    value = structure.as_dict()
    value["sites"][0]["properties"] = {"magmom": 0.5}  # plain properties are dropped
    read = parse_structure(value)
    assert read == structure and str(read[0].specie) == "Na+"
    cartesian = copy.deepcopy(value)
    for site in cartesian["sites"]:
        del site["abc"]
    assert parse_structure(cartesian) == structure
    with pytest.raises(ValueError, match="unknown field"):
        parse_structure({**value, "extra": 1})
    with pytest.raises(ValueError, match="not a chemical element"):
        parse_structure({**value, "sites": [{"species": [{"element": "Xx", "occu": 1}],
                                             "abc": [0, 0, 0]}]})  # fmt: skip


def test_text_and_paths_are_read_as_data_and_a_path_only_when_allowed(tmp_path):
    cif = tmp_path / "nacl.cif"
    rocksalt().to(filename=str(cif))
    assert parse_structure(rocksalt().to(fmt="poscar")) == parse_structure(cif.read_text())
    for value in (str(cif), cif, "/etc/passwd", str(tmp_path / "missing.cif")):
        with pytest.raises(ValueError, match="file paths are not read here"):
            parse_structure(value)
    assert len(parse_structure(cif, allow_paths=True)) == 8


def test_a_cif_whose_symmetry_expands_past_the_bound_is_refused_before_it_is_built():
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    from zoo.readers.structures import count_sites

    general = [[0.10, 0.20, 0.30], [0.05, 0.15, 0.35], [0.12, 0.27, 0.41]]  # 192 images each
    big = Structure.from_spacegroup("Fm-3m", Lattice.cubic(22.0), ["Na", "Cl", "K"], general)
    text = str(CifWriter(big, symprec=0.01))  # three atom-site lines and 192 operations
    assert len(big) > 300 and len(text) < 7000
    assert count_sites(text) == len(big) == len(parse_structure(text))
    with pytest.raises(ValueError, match=f"{len(big)} sites; at most 100"):
        parse_structure(text, max_sites=100)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory, demo):
    folder = tmp_path_factory.mktemp("security-bundle")
    config = load_config(None, {"epochs": 1, "output_dir": str(folder / "runs")})
    return str(train(config, dataset=demo, track=False, progress=False).bundle_path)


def test_load_model_predict_gives_each_hostile_dict_its_row_error(tiny_bundle, marker):
    import zoo

    model = zoo.load_model(tiny_bundle)
    hostile = list(hostile_dicts().values())
    table = model.predict([rocksalt().as_dict(), *hostile])
    assert table.loc[0, "error"] == "" and table.loc[0, "shear_gpa"] > 0
    assert table.loc[1:, "error"].str.contains("object reference").all()
    assert not table["error"].str.contains("root:").any()
    one = model.predict(hostile[0])
    assert "object reference" in one["error"]


def write_jsonl(path, dicts: list[dict]) -> None:
    lines = [json.dumps({"mp_id": f"case-{n}", "structure": d}) for n, d in enumerate(dicts)]
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")


@pytest.mark.slow
def test_zoo_predict_and_zoo_screen_refuse_hostile_records(tiny_bundle, marker, isolated):
    hostile = list(hostile_dicts().values())
    write_jsonl(isolated / "in.jsonl.gz", [rocksalt().as_dict(), *hostile])
    done = run_zoo("predict", "--model", tiny_bundle, "--input", "in.jsonl.gz", cwd=isolated)
    assert done.returncode == 0, done.stderr
    errors = pd.read_csv(pd.io.common.StringIO(done.stdout)).set_index("id")["error"]
    assert errors.iloc[1:].str.contains("object reference").all(), errors
    done = run_zoo("screen", "--model", tiny_bundle, "--input", "in.jsonl.gz", "-o", "out",
                   "--workers", "1", "--no-card", cwd=isolated)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reasons = pd.read_csv(isolated / "out" / "errors.csv")
    assert len(reasons) == len(hostile)
    assert reasons["reason"].str.contains("object reference").all()


@pytest.mark.slow
def test_the_dask_engine_refuses_hostile_records(tiny_bundle, marker, isolated):
    from zoo.screening import ScreenSpec, run_screen

    hostile = list(hostile_dicts().values())
    write_jsonl(isolated / "in.jsonl.gz", [rocksalt().as_dict(), *hostile])
    spec = ScreenSpec(input="in.jsonl.gz", models=[tiny_bundle], output_dir="dask",
                      chunk_size=4, workers=1, engine="dask", progress=False,
                      card=False)  # fmt: skip
    result = run_screen(spec, log=lambda *_: None)
    assert result.predicted == 1 and result.errors == len(hostile)
    reasons = pd.read_csv(isolated / "dask" / "errors.csv")
    assert reasons["reason"].str.contains("object reference").all()


class _RunsOnLoad:
    """A pickle that creates a file when unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_safety_a_crafted_last_pt_runs_no_code_on_resume(isolated, demo):
    """A run folder's ``last.pt`` whose pickle would create a file: ``zoo train --resume``
    refuses it in one line and the file is never created; so does a continued tuning trial."""
    from zoo.run_folder import CHECKPOINT

    config = load_config(None, {"epochs": 2})
    result = train(config, dataset=demo, track=False, progress=False)
    planted = isolated / "code-ran"
    with open(result.output_dir / CHECKPOINT, "wb") as handle:
        pickle.dump({"history": _RunsOnLoad(planted)}, handle)
    (result.output_dir / "run.json").write_text(
        (result.output_dir / "run.json").read_text().replace("FINISHED", "KILLED")
    )
    with pytest.raises(ValueError, match="checkpoint holds tensors, numbers and strings only"):
        train(resume=result.output_dir, dataset=demo, track=False, progress=False)
    assert not planted.exists()
    from zoo.training import read_checkpoint

    with pytest.raises(ValueError, match="checkpoint"):
        read_checkpoint(result.output_dir)
    assert not planted.exists()
    torch.save({"history": []}, result.output_dir / CHECKPOINT)
    assert read_checkpoint(result.output_dir) == {"history": []}


def test_a_copied_run_folder_continues_in_its_own_mlflow_run(isolated, demo):
    """A copy of an unfinished run folder must not log into the original's MLflow run: it is
    told so and continues in a new run; the original, resumed, keeps its own run."""
    import shutil

    import mlflow

    from zoo import tracking
    from zoo.run_folder import RECORD_FILE

    config = load_config(None, {"epochs": 2, "run_name": "original"})
    first = train(config, dataset=demo, progress=False)
    record = json.loads((first.output_dir / RECORD_FILE).read_text())
    record["status"] = "KILLED"  # as a kill after the first epochs would leave it
    (first.output_dir / RECORD_FILE).write_text(json.dumps(record))
    copy_dir = isolated / "runs" / "copy"
    shutil.copytree(first.output_dir, copy_dir)
    said = []
    copied = train(resume=copy_dir, dataset=demo, progress=False, log=said.append)
    assert any("is a copy of the run folder" in line for line in said), said
    assert copied.run_id != first.run_id
    mlflow.set_tracking_uri(tracking.tracking_uri())
    original = mlflow.get_run(first.run_id)
    assert original.data.tags[tracking.OUTPUT_TAG] == str(first.output_dir.resolve())
    assert mlflow.get_run(copied.run_id).data.tags[tracking.OUTPUT_TAG] == str(copy_dir.resolve())
    moved = isolated / "runs" / "moved"
    first.output_dir.rename(moved)  # a folder moved away is no copy: it keeps its run
    said.clear()
    again = train(resume=moved, dataset=demo, progress=False, log=said.append)
    assert again.run_id == first.run_id and not any("copy" in line for line in said)


def test_a_parser_warning_about_a_json_record_names_its_entry(isolated):
    """pymatgen warns about a CIF without saying which; for a record, the warning names it."""
    from pymatgen.core import Lattice, Structure

    from zoo.readers import read_dataset

    sites = [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]
    hcp = Structure(Lattice.hexagonal(3.21, 5.21), ["Mg", "Mg"], sites)
    records = [{"mp_id": "mg-hcp", "structure": hcp.to(fmt="cif")}]
    (isolated / "r.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    with pytest.warns(UserWarning, match=r"^mg-hcp: .*rounded"):
        read_dataset(isolated / "r.jsonl", with_targets=False)


def test_json_lines_ids_that_are_null_or_empty_are_refused_naming_their_line(isolated):
    from zoo.readers import read_dataset

    lines = [{"mp_id": "a", "structure": rocksalt().as_dict()},
             {"mp_id": None, "structure": rocksalt().as_dict()},
             {"mp_id": "", "structure": rocksalt().as_dict()}]  # fmt: skip
    (isolated / "r.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    data = read_dataset(isolated / "r.jsonl", with_targets=False, skip_bad=True)
    assert data.ids == ["a"]
    assert data.skipped.items == [("line-2", "record's 'mp_id' is null"),
                                  ("line-3", "record's 'mp_id' is \"\"")]  # fmt: skip


def test_a_continued_trial_runs_no_code_from_a_crafted_last_pt(isolated):
    """The tuning study's replay of a continued trial reads ``last.pt`` the safe way too."""
    from zoo.run_folder import CHECKPOINT
    from zoo.tuning.study import Objective

    folder = isolated / "trial-0000"
    folder.mkdir()
    planted = isolated / "code-ran"
    with open(folder / CHECKPOINT, "wb") as handle:
        pickle.dump({"history": _RunsOnLoad(planted)}, handle)
    reported = []

    class Trial:
        def report(self, value, step):
            reported.append((value, step))

    with pytest.raises(ValueError, match="checkpoint holds tensors, numbers and strings only"):
        Objective._replay(None, Trial(), folder)
    assert not planted.exists() and not reported
