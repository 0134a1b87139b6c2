"""Each kind of bad input gets an error that names the entry, or a reported skip."""

import gzip
import json

import pytest
from pymatgen.core import Lattice, Structure

from tests.conftest import fcc_primitive
from zoo.config import load_config
from zoo.errors import BadInputError
from zoo.graphs import GraphSettings, build_graph, build_store
from zoo.readers import read_dataset
from zoo.training import prepare_data


def write_records(path, records):
    with gzip.open(path, "wt") as handle:
        json.dump(records, handle)


def record(entry, structure, shear=50.0, bulk=100.0):
    return {
        "mp_id": entry,
        "structure": structure.as_dict(),
        "shear_modulus_vrh": shear,
        "bulk_modulus_vrh": bulk,
    }


def test_disordered_site_is_rejected_with_its_id(tmp_path):
    disordered = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    write_records(
        tmp_path / "d.json.gz", [record("mp-good", fcc_primitive()), record("mp-alloy", disordered)]
    )
    with pytest.raises(BadInputError, match="mp-alloy.*disordered"):
        read_dataset(tmp_path / "d.json.gz")
    data = read_dataset(tmp_path / "d.json.gz", skip_bad=True)
    assert data.ids == ["mp-good"]
    assert data.skipped.items[0][0] == "mp-alloy"


@pytest.mark.parametrize(
    "value, words",
    [(0.0, "not positive"), (-3.0, "not positive"), (float("nan"), "nan"), ("abc", "not a number")],
)
def test_bad_modulus_is_rejected(tmp_path, value, words):
    write_records(tmp_path / "m.json.gz", [record("mp-1", fcc_primitive(), shear=value)])
    with pytest.raises(BadInputError, match=f"mp-1: shear modulus.*{words}"):
        read_dataset(tmp_path / "m.json.gz")


def test_empty_and_unparsable_cif_files_are_named(tmp_path):
    folder = tmp_path / "cifs"
    folder.mkdir()
    fcc_primitive().to(filename=str(folder / "good.cif"))
    (folder / "empty.cif").write_text("")
    (folder / "garbage.cif").write_text("data_x\nthis is not a crystal\n")
    (folder / "id_prop.csv").write_text("good,10\nempty,20\ngarbage,30\n")
    with pytest.raises(BadInputError, match="empty: cannot read structure.*empty"):
        read_dataset(folder)
    data = read_dataset(folder, skip_bad=True)
    assert data.ids == ["good"]
    assert [entry for entry, _ in data.skipped.items] == ["empty", "garbage"]


def test_isolated_atom_is_rejected():
    lonely = Structure(Lattice.cubic(20.0), ["Cu"], [[0, 0, 0]])
    with pytest.raises(BadInputError, match="gas-1: atom 0 \\(Cu\\) has no neighbour within 8.0"):
        build_graph(lonely, GraphSettings(), entry="gas-1")
    store, skipped = build_store(
        ["ok", "gas-1"],
        [fcc_primitive(), lonely],
        GraphSettings(),
        cache_dir=False,
        skip_bad=True,
        progress=False,
    )
    assert store.ids == ["ok"] and skipped.items[0][0] == "gas-1"


def test_element_without_features_is_named(tmp_path):
    table = tmp_path / "atom_init.json"
    table.write_text(json.dumps({"29": [1.0, 0.0], "11": [0.0, 1.0], "17": [1.0, 1.0]}))
    write_records(
        tmp_path / "e.json.gz",
        [record(f"cu-{i}", fcc_primitive()) for i in range(6)]
        + [record("mp-gold", fcc_primitive(4.08, "Au"))],
    )
    config = load_config(
        None, {"data.path": str(tmp_path / "e.json.gz"), "element_table": str(table)}
    )
    with pytest.raises(BadInputError, match="mp-gold: no element features for Au"):
        prepare_data(config, progress=False)
    config = load_config(
        None,
        {
            "data.path": str(tmp_path / "e.json.gz"),
            "element_table": str(table),
            "data.skip_bad": True,
            "data.split_fractions": [0.5, 0.5, 0.0],
        },
    )
    prepared = prepare_data(config, progress=False)
    assert "mp-gold" not in prepared.store.ids and prepared.skipped.items[0][0] == "mp-gold"


def test_duplicate_ids_are_rejected(tmp_path):
    write_records(tmp_path / "dup.json.gz", [record("mp-1", fcc_primitive())] * 2)
    with pytest.raises(BadInputError, match="mp-1: duplicate id"):
        read_dataset(tmp_path / "dup.json.gz")


def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="epochz"):
        load_config(None, {"epochz": 3})
    with pytest.raises(ValueError, match="n_convs"):
        load_config(None, {"architecture.n_convs": 3})
    with pytest.raises(ValueError, match="unknown targets"):
        load_config(None, {"targets": ["young"]})


def test_missing_file_and_non_matbench_json(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "nope.json")
    (tmp_path / "odd.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match="neither a Matbench file"):
        read_dataset(tmp_path / "odd.json")


def test_matbench_download_fails_fast_offline(tmp_path, monkeypatch):
    import requests

    from zoo.readers.matbench import download_matbench

    def offline(*args, **kwargs):
        raise requests.ConnectionError("no network")

    monkeypatch.setattr(requests, "get", offline)
    with pytest.raises(RuntimeError, match="put it at .*matbench_log_gvrh.json.gz"):
        download_matbench("matbench_log_gvrh", cache_dir=tmp_path)
    (tmp_path / "matbench_log_gvrh.json.gz").write_bytes(b"")
    assert download_matbench("matbench_log_gvrh", cache_dir=tmp_path).exists()


def test_shipped_configs_are_valid_and_the_zoo_config_is_the_default():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(configs / "cgcnn-zoo.yaml") == load_config(None)
    original = load_config(configs / "cgcnn-original.yaml")
    assert (original.optim.name, original.optim.lr, original.epochs) == ("sgd", 0.02, 300)
    assert original.schedule.milestones == [240] and original.ema_decay is None
    assert original.architecture["n_conv"] == 4 and original.architecture["h_fea_len"] == 32
    heads = {"per_target_heads": True, "loss_weighting": "learned"}
    angle_multitask = {"model": "cgcnn-angle", "targets": ["shear", "bulk"], "architecture": heads}
    assert load_config(configs / "cgcnn-angle-mt.yaml") == load_config(None, angle_multitask)
    both_multitask = {**angle_multitask, "model": "cgcnn-angle-global"}
    assert load_config(configs / "cgcnn-angle-global-mt.yaml") == load_config(None, both_multitask)
    assert {path.name for path in configs.glob("*.yaml")} == {
        "cgcnn-zoo.yaml",
        "cgcnn-original.yaml",
        "cgcnn-angle-mt.yaml",
        "cgcnn-angle-global-mt.yaml",
    }


def test_an_interrupted_write_leaves_the_old_file_and_no_leftovers(tmp_path):
    from zoo.files import atomic_write

    target = tmp_path / "model.zoo.pt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as partial:
        partial.write_text("half of the new")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == [target.name]
    with atomic_write(target) as partial:
        partial.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == [target.name]
