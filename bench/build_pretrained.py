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

    python bench/build_pretrained.py train      # the training runs (about 2 h on 2 cores)
    python bench/build_pretrained.py report     # ensembles, scores table, shipped bundle
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import DEV_SET, DEV_SPLIT, RESULTS, ROOT, SHARED

DATA = SHARED / "data" / "mp_elasticity_2024.json.gz"
SPLIT = SHARED / "data" / "mp_elasticity_2024_split.csv"
CONFIG = ROOT / "configs" / "cgcnn-angle-global-mt.yaml"
OUT = RESULTS / "pretrained"
SEEDS = (0, 1, 2, 3)
# the order gives a usable measured and shipped ensemble as early as possible
QUEUE = ["member-0", "member-1", "refit-0", "refit-1", "member-2", "refit-2", "binaries-0",
         "member-3", "refit-3"]  # fmt: skip


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("phase", choices=["train", "report"])
    args = parser.parse_args()
    if args.phase == "train":
        train_all()
    else:
        raise SystemExit("report: not written yet")


if __name__ == "__main__":
    main()
