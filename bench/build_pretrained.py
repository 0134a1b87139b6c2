"""Issue 17: train the zoo's shipped pretrained ensemble and measure what it buys.

The configuration is the best of the issue 16 benchmark (``configs/cgcnn-angle-global-mt.yaml``:
``cgcnn-angle-global`` on shear and bulk together). Training runs, each a plain ``zoo train``
as a user would type it (two at a time, one torch thread each):

- ``member-S``: seed S on the train split of ``mp_elasticity_2024.json.gz`` (8,740 MP crystals),
  its validation split choosing the kept epoch; these make the *measured* ensemble, scored once
  on the test split, and its validation predictions fit the spread scale;
- ``binaries-0``: seed 0 on the development binaries' train split only (3,953-entry file), to
  show what the other 4,787 crystals buy (scored on the same 2024 test split, per element count);
- ``refit-S``: seed S refit on train+val for the same 150 epochs (nothing chooses); these make
  the *shipped* ensemble, which carries the measured ensemble's spread scale.

Rerunning continues: a finished run is kept, an interrupted one resumes (``zoo train --resume``).

    python bench/build_pretrained.py train      # the training runs (about 1 h 45 min on 2 cores)
    python bench/build_pretrained.py report     # ensembles, scores table, shipped bundle
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import DEV_SET, DEV_SPLIT, RESULTS, ROOT, SHARED

DATA = SHARED / "data" / "mp_elasticity_2024.json.gz"
SPLIT = SHARED / "data" / "mp_elasticity_2024_split.csv"
CONFIG = ROOT / "configs" / "cgcnn-angle-global-mt.yaml"
OUT = RESULTS / "pretrained"
SEEDS = (0, 1, 2)
# the order gives a usable measured and shipped ensemble as early as possible
QUEUE = ["member-0", "member-1", "refit-0", "refit-1", "member-2", "refit-2",
         "binaries-0"]  # fmt: skip


def train_command(name: str) -> list[str]:
    """The ``zoo train`` command of one run (``member-S``, ``refit-S`` or ``binaries-0``)."""
    kind, seed = name.rsplit("-", 1)
    data, split = (DEV_SET, DEV_SPLIT) if kind == "binaries" else (DATA, SPLIT)
    command = [sys.executable, "-m", "zoo.cli", "train", "--config", str(CONFIG)]
    command += ["--data", str(data), "--split", str(split), "--seed", seed]
    command += ["--threads", "1", "--workers", "1", "--no-track"]
    command += ["--output-dir", str(OUT), "--run-name", name]
    if kind == "refit":
        command += ["--set", "fit_on=train+val"]
    if (OUT / name / "config.yaml").exists():
        command += ["--resume", str(OUT / name)]
    return command


def finished(name: str) -> bool:
    record = OUT / name / "run.json"
    return record.exists() and json.loads(record.read_text())["status"] == "FINISHED"


def train_all(slots: int = 2) -> None:
    """Run every unfinished job of :data:`QUEUE`, ``slots`` at a time; logs in ``OUT/logs``."""
    (OUT / "logs").mkdir(parents=True, exist_ok=True)
    waiting = [name for name in QUEUE if not finished(name)]
    running: dict[str, subprocess.Popen] = {}
    while waiting or running:
        while waiting and len(running) < slots:
            name = waiting.pop(0)
            log = open(OUT / "logs" / f"{name}.log", "a")  # noqa: SIM115 (closed with the run)
            print(f"{time.strftime('%H:%M')} start {name}", flush=True)
            running[name] = subprocess.Popen(train_command(name), stdout=log, stderr=log, cwd=ROOT)
        time.sleep(10)
        for name, process in list(running.items()):
            if process.poll() is not None:
                state = "finished" if finished(name) else f"FAILED ({process.returncode})"
                print(f"{time.strftime('%H:%M')} {name} {state}", flush=True)
                del running[name]


NAME = "zoo-elastic-mp2024"
PACKAGE = ROOT / "zoo" / "pretrained"
TARGETS = ("shear", "bulk")


def spread_frame(runs: list[Path], target: str, split: str):
    """Entries of ``split``: true and members' mean log10 GPa, their std (ddof 1)."""
    import numpy as np
    import pandas as pd

    from zoo.compare import read_run_predictions

    read = [read_run_predictions(run, target, split) for run in runs]
    stacked = np.stack([r.predicted for r in read])
    return pd.DataFrame({"id": read[0].ids, "true_log10": read[0].true,
                         "mean_log10": stacked.mean(axis=0),
                         "std_log10": stacked.std(axis=0, ddof=1),
                         "single_log10": stacked[0]})  # fmt: skip


def element_count(ids) -> dict[str, int]:
    """Number of elements of each entry of the 2024 file (binaries, ternaries...)."""
    from zoo.readers import read_dataset

    data = read_dataset(DATA, with_targets=False)
    wanted = set(ids)
    return {e: len(s.composition.elements) for e, s in zip(data.ids, data.structures,
                                                          strict=True) if e in wanted}  # fmt: skip


def binaries_test(test_ids) -> dict:
    """``binaries-0`` (trained on the development binaries only) on the 2024 test split."""
    import numpy as np

    import zoo
    from zoo.readers import read_dataset

    data = read_dataset(DATA)
    keep = [i for i, e in enumerate(data.ids) if e in set(test_ids)]
    model = zoo.load_model(str(OUT / "binaries-0" / "model.zoo.pt"))
    table = model.predict_structures(
        [data.ids[i] for i in keep], [data.structures[i] for i in keep]
    )
    out = {}
    for target in TARGETS:
        true = np.log10(data.targets[target][keep])
        out[target] = dict(zip(table["id"], np.abs(table[f"{target}_log10"] - true), strict=True))
    return out


def scores(kind: str, seeds) -> dict:
    """Per target: test frames of the runs ``kind-S`` (mean, spread, single)."""
    runs = [OUT / f"{kind}-{seed}" for seed in seeds if finished(f"{kind}-{seed}")]
    return runs, {t: spread_frame(runs, t, "test") for t in TARGETS}


def report() -> None:
    """Score the measured ensemble, the refit ensemble and the binaries-only model on the
    2024 test split (by element count); calibrate on validation; write the shipped model."""
    from zoo.calibration import calibrate_target

    members, measured = scores("member", SEEDS)
    refits, shipped = scores("refit", SEEDS)
    calibration = {
        t: calibrate_target(spread_frame(members, t, "val"), measured[t]) for t in TARGETS
    }
    counts = element_count(measured["shear"]["id"])
    binaries = binaries_test(measured["shear"]["id"]) if finished("binaries-0") else None
    rows = []
    for label, frames, column in (
        ("single model (member-0, train split)", measured, "single_log10"),
        (f"ensemble of {len(members)} (train split)", measured, "mean_log10"),
        (f"shipped: ensemble of {len(refits)} refit on train+val", shipped, "mean_log10"),
    ):
        rows.append((label, {t: _mae_by_size(frames[t], column, counts) for t in TARGETS}))
    if binaries is not None:
        rows.append(("single model on the development binaries only", {
            t: _by_size(binaries[t], counts) for t in TARGETS}))  # fmt: skip
    _print_table(rows, len(measured["shear"]))
    record = _record(members, refits, rows, calibration)
    _ship(refits, calibration, record)
    (OUT / "report.json").write_text(json.dumps({"rows": rows, "calibration": calibration},
                                                indent=2, default=float))  # fmt: skip


def _mae_by_size(frame, column: str, counts: dict) -> dict:
    import numpy as np

    errors = dict(zip(frame["id"], np.abs(frame[column] - frame["true_log10"]), strict=True))
    return _by_size(errors, counts)


def _by_size(errors: dict, counts: dict) -> dict:
    """MAE (log10 GPa) of all entries, of binaries and of ternaries and beyond."""
    import numpy as np

    def mae(keep):
        values = [v for e, v in errors.items() if keep(counts[e])]
        return float(np.mean(values)) if values else float("nan")

    return {"all": mae(lambda n: True), "binary": mae(lambda n: n == 2),
            "ternary+": mae(lambda n: n >= 3)}  # fmt: skip


CITATIONS = [
    "Materials Project: Jain et al., APL Mater. 1, 011002 (2013) (data CC BY 4.0)",
    "Elastic constants: de Jong et al., Sci. Data 2, 150009 (2015)",
    "CGCNN: Xie & Grossman, Phys. Rev. Lett. 120, 145301 (2018)",
    "Bond angles (line graph) as in ALIGNN: Choudhary & DeCost, npj Comput. Mater. 7, 185 (2021)",
    "Crystal state as in MEGNet: Chen et al., Chem. Mater. 31, 3564 (2019)",
]
LIMITS = [
    "Trained on DFT (PBE) VRH moduli of ordered Materials Project crystals, 0 < K, G <= 500 GPa; "
    "predictions are of that quantity, not of experiment.",
    "Mostly binaries and ternaries (4,176 / 4,178 of 8,740); 276 quaternaries and beyond: "
    "expect larger errors there, and read the applicability flags.",
    "Disordered or partially occupied sites are refused; so are isolated atoms (no neighbour "
    "within 8 Å) and atoms closer than 0.5 Å.",
    "The spread is that of 3 seeds, scaled on validation entries; errors are heavy-tailed "
    "(the ±2σ interval covers fewer than 95% of entries).",
]


def _record(members, refits, rows, calibration) -> dict:
    """The shipped model's record (``zoo/pretrained/NAME.json``)."""
    from zoo.compare import read_run_predictions

    table = dict(rows)
    shipped = table[f"shipped: ensemble of {len(refits)} refit on train+val"]
    val = [read_run_predictions(run, t, "val") for run in members for t in TARGETS]
    import numpy as np

    return {
        "name": NAME, "kind": "ensemble", "members": len(refits), "variant": "cgcnn-angle-global",
        "targets": list(TARGETS), "config": "configs/cgcnn-angle-global-mt.yaml",
        "training_data": "mp_elasticity_2024 train+val (7,000 MP crystals)",
        "test_split": "mp_elasticity_2024 test split (1,740 crystals, the development "
                      "binaries' test crystals among them)",
        "test_mae_log10": {t: shipped[t]["all"] for t in TARGETS},
        "scores": {label: values for label, values in rows},
        "val_mae_log10_mean": float(np.mean([np.mean(np.abs(r.predicted - r.true)) for r in val])),
        "calibration": calibration, "citations": CITATIONS, "limits": LIMITS,
        "built_by": "python bench/build_pretrained.py train && python bench/build_pretrained.py "
                    "report",
    }  # fmt: skip


def _ship(refits, calibration, record) -> None:
    """The refit ensemble, carrying the measured ensemble's spread scale, into the package."""
    from zoo.bundle import load_bundle
    from zoo.ensemble import Ensemble

    ensemble = Ensemble(
        [load_bundle(run / "model.zoo.pt") for run in refits],
        [f"bench/results/pretrained/{run.name}" for run in refits],
        {t: calibration[t]["scale"] for t in TARGETS},
        {t: {**calibration[t], "fitted_on": "validation predictions of the train-split "
             "ensemble (the refit has no validation split)"} for t in TARGETS},
    )  # fmt: skip
    ensemble.save(PACKAGE / f"{NAME}.zoo.pt")
    record["reference_predictions"] = reference_predictions()
    (PACKAGE / f"{NAME}.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    (PACKAGE / f"{NAME}.md").write_text(card(record))
    print(f"wrote {PACKAGE / NAME}.zoo.pt, .json and .md")


def reference_structures() -> dict:
    """Three textbook cells (tests/test_pretrained.py builds the same ones)."""
    from pymatgen.core import Lattice, Structure

    a = 3.61
    return {
        "Cu-fcc": Structure(Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]),
                            ["Cu"], [[0, 0, 0]]),
        "NaCl-rocksalt": Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                                   [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "Si-diamond": Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]),
    }  # fmt: skip


def reference_predictions() -> dict:
    """The shipped file's predictions (log10 GPa, mean and spread) for the reference cells: the
    golden values of tests/test_pretrained.py."""
    import zoo

    cells = reference_structures()
    table = zoo.load_model(str(PACKAGE / f"{NAME}.zoo.pt")).predict(list(cells.values()))
    columns = [f"{t}_{k}" for t in TARGETS for k in ("log10", "std_log10")]
    return {name: {c: float(table[c][i]) for c in columns} for i, name in enumerate(cells)}


def card(record: dict) -> str:
    """The model card (Markdown)."""
    lines = [f"# {record['name']}: G_VRH and K_VRH of inorganic crystals", "",
             f"An ensemble of {record['members']} `{record['variant']}` models (bond angles and "
             "a global crystal state on CGCNN's graph, one head per modulus), each trained with "
             f"`{record['config']}` on {record['training_data']} with a different seed, built "
             f"by `{record['built_by']}`.", "",
             "## Intended use", "",
             "Screening: ranking and triaging ordered inorganic crystals by shear and bulk "
             "modulus before DFT, with `zoo screen --model zoo-elastic-mp2024` or "
             "`zoo.load_model(\"zoo-elastic-mp2024\")`. Not a replacement for a calculation "
             "where a number matters.", "",
             "## Test scores (log10 GPa MAE: all / binaries / ternaries and beyond)", "",
             "| model | shear | bulk |", "| --- | ---: | ---: |"]  # fmt: skip
    for label, values in record["scores"].items():
        cells = [" / ".join(f"{values[t][k]:.4f}" for k in ("all", "binary", "ternary+"))
                 for t in TARGETS]  # fmt: skip
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "## Uncertainty",
        "",
        "Measured on the train-split ensemble (its validation entries fit the scale, its "
        "test predictions are scored); the shipped refit carries that scale.",
        "",
    ]
    for target, found in record["calibration"].items():
        lines.append(
            f"- {target}: spread scale {found['scale']:.2f} (fitted on validation); on the "
            f"test split ±1σ covers {100 * found['test_coverage_1sigma']:.0f}%, ±2σ "
            f"{100 * found['test_coverage_2sigma']:.0f}%; Spearman(spread, error) "
            f"{found['spearman_spread_error']:.2f}"
        )
    lines += ["", "## Training data, licences and citations", ""]
    lines += [f"- {c}" for c in record["citations"]]
    lines += ["- zoo itself: MIT", "", "## Known limits", ""]
    lines += [f"- {limit}" for limit in record["limits"]]
    return "\n".join(lines) + "\n"


def _print_table(rows, entries: int) -> None:
    print(f"\n2024 test split ({entries} crystals): MAE in log10 GPa (all / binaries / ternaries+)")
    print("| model | shear | bulk |\n| --- | ---: | ---: |")
    for label, values in rows:
        cells = [" / ".join(f"{values[t][k]:.4f}" for k in ("all", "binary", "ternary+"))
                 for t in TARGETS]  # fmt: skip
        print(f"| {label} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["train", "report"])
    args = parser.parse_args()
    if args.phase == "train":
        train_all()
    else:
        report()


if __name__ == "__main__":
    main()
