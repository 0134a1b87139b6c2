"""zoo's threading on an idle and on a busy machine (issue 31): `zoo train` (cgcnn, the
development split, 1 epoch, no MLflow) with its default threads (all cores) and zoo's OpenMP
setting (spin 3,000 times before sleeping, set before torch loads), with `--threads 1`, with
GNU OpenMP's own spinning (300,000 times: what applied before) and with no spinning
(`OMP_WAIT_POLICY=PASSIVE`), alone and beside another two-thread torch job that keeps the
cores busy. Prints the wall times side by side and the ratios the issue's targets are stated
in; saves bench/results/threads.json.

    .venv/bin/python bench/bench_threads.py [--epochs 1]

Targets: busy, default threads at most 1.5 times `--threads 1`; idle, default threads no
slower than before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import DEV_SET, DEV_SPLIT, RESULTS, machine_load, plain_environment  # noqa: E402

CASES = [
    ("default threads (zoo: spin 3,000)", None, {}),
    ("--threads 1", 1, {}),
    ("default threads, OpenMP's 300,000 (before)", None, {"GOMP_SPINCOUNT": "300000"}),
    ("default threads, PASSIVE", None, {"OMP_WAIT_POLICY": "PASSIVE"}),
]
"""Name, --threads and the OpenMP variables of each measured case."""


def train_seconds(threads: int | None, openmp: dict, epochs: int, work: Path) -> float:
    env = {**plain_environment(), **openmp}
    env["ZOO_CACHE_DIR"] = str(work / "graph-cache")
    command = [sys.executable, "-m", "zoo.cli", "train", "--model", "cgcnn", "--data",
               str(DEV_SET), "--split", str(DEV_SPLIT), "--epochs", str(epochs), "--no-track",
               "-o", str(work / "runs")]  # fmt: skip
    if threads:
        command += ["--threads", str(threads)]
    started = time.perf_counter()
    subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    work = RESULTS / "threads"
    work.mkdir(parents=True, exist_ok=True)
    train_seconds(1, {}, 1, work)  # builds the graph cache
    rows = []
    for load in ("idle", "busy"):
        with machine_load(load):
            for name, threads, openmp in CASES:
                seconds = train_seconds(threads, openmp, args.epochs, work)
                rows.append({"machine": load, "case": name, "seconds": round(seconds, 1)})
                print(f"{load:5s} {name:44s} {seconds:7.1f} s", flush=True)
    table = {(r["machine"], r["case"]): r["seconds"] for r in rows}
    names = [name for name, _, _ in CASES]
    print("\n| machine | " + " | ".join(names) + " |\n| --- |" + " ---: |" * len(names))
    for load in ("idle", "busy"):
        print(f"| {load} | " + " | ".join(f"{table[(load, n)]} s" for n in names) + " |")
    ratio = table[("busy", names[0])] / table[("busy", names[1])]
    idle = table[("idle", names[0])] / table[("idle", names[2])]
    print(
        f"\nbusy: default / --threads 1 = {ratio:.2f} (target <= 1.5); "
        f"idle: default / before = {idle:.2f} (target <= 1.0 within noise)"
    )
    (RESULTS / "threads.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
