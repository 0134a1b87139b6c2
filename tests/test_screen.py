"""``zoo screen`` (issue 17): derived properties against published values, applicability
flags, the streaming and resumable screen on small real inputs, the Dask engine against the
local one, and the data card."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

from tests.conftest import bcc_conventional, fcc_primitive, rocksalt, run_zoo
from zoo import derived
from zoo.domain import density_g_cm3, domain_flags, training_domain


def diamond() -> Structure:
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(3.567), ["C"], [[0, 0, 0]])


def test_derived_properties_of_diamond_match_published_values():
    """Diamond, G = 535 GPa and K = 443 GPa (VRH; the values Chen et al. 2011 list): its
    Debye temperature from the elastic moduli is about 2230 K (Kittel, Introduction to Solid
    State Physics, table 5.1 lists 2230 K), Chen's fit gives about 95 GPa (2 (k²G)^0.585 − 3
    with k = 1.208: 95.4 by hand), Poisson's ratio is about 0.07 and Young's modulus 1143 GPa
    (by hand from the isotropic formulas)."""
    cell = diamond()
    rho = density_g_cm3(np.array(cell.atomic_numbers), cell.volume)
    assert rho == pytest.approx(3.52, abs=0.01)  # diamond's density, g/cm³
    values = derived.derive(np.array([535.0]), np.array([443.0]), [rho], [8], [cell.volume])
    assert values["debye_temperature_k"][0] == pytest.approx(2230, rel=0.03)
    assert values["hardness_vickers_gpa"][0] == pytest.approx(95.4, abs=0.3)
    assert values["poisson_ratio"][0] == pytest.approx(0.0693, abs=0.001)
    assert values["youngs_gpa"][0] == pytest.approx(1143.4, abs=1.0)
    assert values["pugh_ratio"][0] == pytest.approx(443 / 535)
    assert values["velocity_transverse_m_s"][0] == pytest.approx(12330, rel=0.01)
    assert list(derived.ductility(values["pugh_ratio"])) == ["brittle"]


def test_hardness_outside_chens_fit_is_nan_with_its_reason():
    """A soft, ductile crystal (G 5 GPa, K 40 GPa: k²G = 0.08 GPa) would get a negative
    hardness from the fit: it is NaN, and the note says why."""
    values = derived.derive(np.array([5.0, 100.0]), np.array([40.0, 150.0]), [5.0] * 2, [2] * 2,
                            [40.0] * 2)  # fmt: skip
    assert np.isnan(values["hardness_vickers_gpa"][0]) and values["hardness_vickers_gpa"][1] > 0
    notes = derived.hardness_note(np.array([5.0, 100.0]), np.array([40.0, 150.0]))
    assert "outside Chen's fit" in notes[0] and notes[1] == ""
    assert list(derived.ductility(np.array([8.0, 1.5, np.nan]))) == ["ductile", "brittle", ""]


def test_training_domain_and_flags():
    """The domain of Cu and Fe cells: Cu and Fe seen, density and size ranges recorded; NaCl
    is flagged for its unseen elements, density and size."""
    cells = [fcc_primitive(), bcc_conventional()]
    domain = training_domain([np.array(c.atomic_numbers) for c in cells], [c.volume for c in cells])
    assert domain["entries"] == 2 and domain["element_counts"] == {"Cu": 1, "Fe": 1}
    assert domain["sites"] == [1, 2]
    assert domain["density_g_cm3"][0] == pytest.approx(7.87, abs=0.05)  # bcc Fe
    salt = rocksalt()
    flags = domain_flags(domain, np.array(salt.atomic_numbers), salt.volume)
    assert flags == {"unseen_elements": "Cl Na", "density_outside": True, "sites_outside": True,
                     "volume_per_atom_outside": True}  # fmt: skip
    copper = fcc_primitive()
    inside = domain_flags(domain, np.array(copper.atomic_numbers), copper.volume)
    assert not any(inside.values())
    assert domain_flags(None, np.array([29]), 11.8)["density_outside"] is None


@pytest.fixture(scope="module")
def models(tmp_path_factory, demo):
    """Two tiny cgcnn-mt models on the demo set (2 epochs; seeds 0 and 1), their ensemble."""
    from zoo.config import load_config
    from zoo.ensemble import build_ensemble
    from zoo.training import train

    folder = tmp_path_factory.mktemp("models")
    bundles = []
    for seed in (0, 1):
        config = load_config(None, {"epochs": 2, "targets": ["shear", "bulk"],
                                    "model": "cgcnn-mt", "seed": seed,
                                    "output_dir": str(folder)})  # fmt: skip
        bundles.append(train(config, dataset=demo, track=False, progress=False).bundle_path)
    ensemble = build_ensemble(bundles)
    ensemble.scale = {"shear": 2.0, "bulk": 1.0}
    return {"single": str(bundles[0]), "ensemble": str(ensemble.save(folder / "e.zoo.pt"))}


def structure_folder(path):
    """Eight readable structures (elemental cells the demo's models know, NaCl with an unseen
    elements, one cell with a lonely atom) and one unreadable file."""
    path.mkdir()
    cells = {
        "cu": fcc_primitive(), "fe": bcc_conventional(), "al": fcc_primitive(4.05, "Al"),
        "ni": fcc_primitive(3.52, "Ni"), "w": bcc_conventional(3.16, "W"),
        "mo": bcc_conventional(3.15, "Mo"), "nacl": rocksalt(),
        "lonely": Structure(Lattice.cubic(12.0), ["Cu"], [[0, 0, 0]]),
    }  # fmt: skip
    for name, cell in cells.items():
        cell.to(filename=str(path / f"{name}.cif"))
    (path / "broken.cif").write_text("data_broken\n_cell_length_a 3\n")
    return path


@pytest.mark.slow
def test_screen_writes_every_readable_structure_once_with_reasons_for_the_rest(models, isolated):
    folder = structure_folder(isolated / "in")
    done = run_zoo("screen", "--input", str(folder), "--model", models["ensemble"], "-o",
                   "out", "--chunk-size", "3", "--workers", "2", cwd=isolated)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "predicted 7 structures; skipped 2" in done.stdout
    table = pd.read_parquet(isolated / "out" / "screen.parquet")
    assert sorted(table["id"]) == sorted(["cu", "fe", "al", "ni", "w", "mo", "nacl"])
    errors = pd.read_csv(isolated / "out" / "errors.csv").set_index("id")
    assert errors.loc["broken", "stage"] == "reading"
    assert (
        errors.loc["lonely", "stage"] == "graph"
        and "isolated atom" in errors.loc["lonely", "reason"]
    )
    csv = pd.read_csv(isolated / "out" / "screen.csv")
    assert list(csv["id"]) == list(table["id"])
    # unseen elements: those no training crystal of either member held (the demo set's
    # training split; it has no chlorine at all)
    from zoo.ensemble import load_ensemble

    seen = set()
    for member in load_ensemble(models["ensemble"]).members:
        seen |= set(member.training_domain["element_counts"])
    symbols = {
        "cu": "Cu",
        "fe": "Fe",
        "al": "Al",
        "ni": "Ni",
        "w": "W",
        "mo": "Mo",
        "nacl": "Cl Na",
    }
    for entry, row in table.set_index("id").iterrows():
        expected = " ".join(sorted(set(symbols[entry].split()) - seen))
        assert row["flag_unseen_elements"] == expected, entry
        assert row["flagged"] >= bool(expected)
    assert "Cl" in table.set_index("id").loc["nacl", "flag_unseen_elements"]
    # the derived columns follow from the table's own moduli
    g, k = table["shear_gpa"].to_numpy(), table["bulk_gpa"].to_numpy()
    assert np.allclose(table["youngs_gpa"], 9 * k * g / (3 * k + g))
    assert (table["shear_std_log10"] > 0).all() and (table["youngs_gpa_std"] > 0).all()
    card = json.loads((isolated / "out" / "card.json").read_text())
    assert card["counts"]["predicted"] == 7 and card["counts"]["skipped"] == 2
    described = {c["name"]: c for c in card["columns"]}
    assert described["hardness_vickers_gpa"]["units"] == "GPa"
    assert "Chen" in described["hardness_vickers_gpa"]["source"]
    assert (isolated / "out" / "shear-vs-bulk.png").stat().st_size > 10_000
    assert "| `debye_temperature_k` | K |" in (isolated / "out" / "card.md").read_text()


def test_ensemble_spread_in_the_screen_is_the_ensembles_and_propagates(models, isolated):
    """The screen's mean and spread equal the ensemble predictor's (scale 2 on shear); a
    derived column's spread is that of the formula applied member by member."""
    from zoo.loaded_model import load_model
    from zoo.readers.registry import Entry
    from zoo.screen_chunk import ModelFile, ScreenOptions, screen_chunk
    from zoo.screen_output import file_digest

    cells = [fcc_primitive(), bcc_conventional(), fcc_primitive(3.52, "Ni")]
    entries = [Entry(str(i), lambda c=cell: c) for i, cell in enumerate(cells)]
    path = models["ensemble"]
    result = screen_chunk(0, entries, [ModelFile(path, file_digest(path), path)], ScreenOptions())
    expected = load_model(path).predict(cells)
    for column in ("shear_log10", "shear_std_log10", "bulk_log10", "bulk_std_log10"):
        assert np.allclose(result.table[column], expected[column], rtol=1e-5, atol=1e-7), column
    members = load_model(models["single"]).predict(cells)
    assert not np.allclose(members["shear_log10"], result.table["shear_log10"])
    assert result.errors.empty and set(result.seconds) == set(
        ("reading", "neighbours", "graphs", "inference", "derived")
    )


@pytest.mark.slow
def test_a_killed_screen_continues_and_a_changed_input_is_refused(models, isolated):
    folder = structure_folder(isolated / "in")
    command = ("screen", "--input", str(folder), "--model", models["single"], "-o", "out",
               "--chunk-size", "2", "--workers", "1", "--no-card")  # fmt: skip
    killed = run_zoo(*command, cwd=isolated, failpoint="chunk-committed@2")
    assert killed.returncode == -9
    chunks = isolated / "out" / "chunks"
    first = {p.name: p.stat().st_mtime_ns for p in chunks.glob("*.parquet")}
    assert len(first) == 2
    again = run_zoo(*command, cwd=isolated)
    assert again.returncode == 0, again.stderr
    assert "continuing: 2 chunks" in again.stdout
    assert "9/9 structures [" in again.stderr  # counted in a thread, from the chunks done
    assert {p.name: p.stat().st_mtime_ns for p in chunks.glob("*.parquet")} | first == {
        p.name: p.stat().st_mtime_ns for p in chunks.glob("*.parquet")
    }  # the committed chunks were not redone
    table = pd.read_parquet(isolated / "out" / "screen.parquet")
    assert sorted(table["id"]) == sorted(["cu", "fe", "al", "ni", "w", "mo", "nacl"])
    assert "std" not in " ".join(table.columns)  # one model: no spread columns
    fcc_primitive(3.7).to(filename=str(folder / "cu.cif"))  # the input changes
    refused = run_zoo(*command, cwd=isolated)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: ") and "(different input)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    restarted = run_zoo(*command, "--restart", cwd=isolated)
    assert restarted.returncode == 0, restarted.stderr


@pytest.mark.slow
def test_models_are_checked_in_a_worker_before_the_output_exists(models, isolated):
    """Two models for one target fail with one line and no output folder; a screen's main
    process never imports torch (its memory is the reader's and the tables', not a model's)."""
    import subprocess
    import sys

    folder = structure_folder(isolated / "in")
    twice = run_zoo("screen", "--input", str(folder), "--model", models["single"], "--model",
                    models["ensemble"], "-o", "out", cwd=isolated)  # fmt: skip
    assert twice.returncode == 2 and not (isolated / "out").exists()
    assert twice.stderr.strip().splitlines() == [
        "error: two models predict shear: give each target one model"
    ]
    script = (
        "import sys\nfrom zoo.screening import ScreenSpec, run_screen\n"
        f"spec = ScreenSpec(input={str(folder)!r}, models=[{models['single']!r}], "
        "output_dir='out', workers=1, progress=False, card=False)\n"
        "print(run_screen(spec, log=lambda *_: None).predicted, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=isolated, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.stdout.split() == ["7", "False"], done.stderr


@pytest.mark.slow
def test_dask_engine_gives_the_local_engines_table(models, isolated):
    """The same chunks on a local Dask cluster of 2 worker processes: the same table."""
    from zoo.screening import ScreenSpec, run_screen

    folder = structure_folder(isolated / "in")
    tables = {}
    for engine in ("local", "dask"):
        spec = ScreenSpec(input=str(folder), models=[models["ensemble"]], output_dir=engine,
                          chunk_size=2, workers=2, engine=engine, progress=False,
                          card=False)  # fmt: skip
        result = run_screen(spec, log=lambda *_: None)
        assert result.predicted == 7 and result.errors == 2
        tables[engine] = pd.read_parquet(isolated / engine / "screen.parquet")
    pd.testing.assert_frame_equal(tables["local"], tables["dask"])


def test_chunks_cut_the_raw_input_and_refuse_an_id_seen_in_an_earlier_chunk(isolated):
    """Raw entries (unparsed) in chunks of N; a repeated id is bad input even across chunks;
    committed chunks are read past, not yielded; a folder's fingerprint follows its files."""
    from zoo.screen_output import input_fingerprint
    from zoo.screening import ScreenSpec, chunks

    lines = [json.dumps({"mp_id": f"m{i}", "structure": fcc_primitive().as_dict()})
             for i in (0, 1, 2, 1, 3)]  # fmt: skip
    (isolated / "in.jsonl").write_text("\n".join(lines) + "\n")
    spec = ScreenSpec(input=str(isolated / "in.jsonl"), models=["x"], output_dir="o", chunk_size=2)
    cut = list(chunks(spec, skip=set()))
    assert [n for n, _ in cut] == [0, 1, 2]
    assert [[e.id for e in entries] for _, entries in cut] == [["m0", "m1"], ["m2", "m1"], ["m3"]]
    assert cut[1][1][1].problem.startswith("duplicate id") and cut[1][1][0].problem is None
    assert [n for n, _ in chunks(spec, skip={0, 2})] == [1]
    folder = structure_folder(isolated / "tree")
    before = input_fingerprint(folder)
    assert input_fingerprint(folder) == before
    (folder / "extra.cif").write_text((folder / "cu.cif").read_text())
    assert input_fingerprint(folder) != before


def test_workers_keep_freed_memory_on_glibc():
    """The malloc settings of zoo.malloc apply where glibc is the C library, and only there."""
    import platform

    from zoo.malloc import keep_freed_memory

    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")


@pytest.mark.slow
def test_the_output_folder_is_held_and_damaged_chunks_are_screened_again(models, isolated):
    """One screen at a time holds its folder (a second stops at once naming the holder);
    a truncated chunk table or a garbage chunk errors file is named and screened again, to
    the same table; an empty manifest is refused with the way out; --restart leaves nothing
    of the earlier screen (its card and plots included)."""
    from zoo.screen_output import CHUNKS, MANIFEST, lock_output
    from zoo.screening import ScreenSpec, run_screen

    folder = structure_folder(isolated / "in")
    spec = ScreenSpec(input=str(folder), models=[models["single"]], output_dir="out",
                      chunk_size=3, workers=1, progress=False, card=False)  # fmt: skip
    run_screen(spec, log=lambda *_: None)
    first = pd.read_parquet(isolated / "out" / "screen.parquet")
    with lock_output(isolated / "out"), pytest.raises(ValueError, match="another zoo screen"):
        run_screen(spec, log=lambda *_: None)

    chunks = isolated / "out" / CHUNKS
    table = chunks / "00000.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])
    (chunks / "00001.errors.csv").write_text("garbage,\x00\nmore\n")
    said: list[str] = []
    run_screen(spec, log=said.append)
    assert sum("cannot be read back" in line for line in said) == 2, said
    pd.testing.assert_frame_equal(pd.read_parquet(isolated / "out" / "screen.parquet"), first)

    (isolated / "out" / MANIFEST).write_text("")
    with pytest.raises(ValueError, match=r"manifest.json: unreadable manifest .* --restart"):
        run_screen(spec, log=lambda *_: None)
    (isolated / "out" / "card.md").write_text("a card of the earlier screen")
    run_screen(spec.model_copy(update={"restart": True}), log=lambda *_: None)
    assert not (isolated / "out" / "card.md").exists()
    pd.testing.assert_frame_equal(pd.read_parquet(isolated / "out" / "screen.parquet"), first)


@pytest.mark.slow
def test_predict_gives_the_flags_the_screen_gives(models, isolated):
    """``zoo.load_model(...).predict_path`` writes the screen's flags with the same values as
    ``zoo screen`` on the same structures; a row without a prediction has none."""
    import zoo
    from zoo.domain import FLAG_COLUMNS
    from zoo.screening import ScreenSpec, run_screen

    folder = structure_folder(isolated / "in")
    spec = ScreenSpec(input=str(folder), models=[models["ensemble"]], output_dir="out",
                      chunk_size=4, workers=1, progress=False, card=False)  # fmt: skip
    run_screen(spec, log=lambda *_: None)
    screened = pd.read_parquet(isolated / "out" / "screen.parquet").set_index("id")
    predicted = zoo.load_model(models["ensemble"]).predict_path(folder).set_index("id")
    shared = screened.index
    for name in [*FLAG_COLUMNS, "flagged"]:
        assert list(predicted.loc[shared, name]) == list(screened[name]), name
    assert (
        bool(predicted.loc["nacl", "flagged"])
        and "Cl" in predicted.loc["nacl", "flag_unseen_elements"]
    )
    assert predicted.loc["broken", "flagged"] is pd.NA or pd.isna(
        predicted.loc["broken", "flagged"]
    )


def test_plot_axes_leave_a_few_outliers_beyond_and_count_them():
    from zoo.screen_plots import _shown

    values = np.concatenate([np.linspace(1.0, 2.0, 10_000), [50.0, np.nan]])
    inside, beyond = _shown(values)
    assert beyond >= 1 and not inside[-2] and not inside[-1]  # the outlier, the NaN
    assert inside[:10_000].sum() >= 9_980
