"""`zoo predict` against `zoo screen` (issue 31): the same shipped model (`zoo-elastic-mp2024`,
an ensemble), the same 2,000 real Materials Project structures (a seeded sample of
``../shared/data/mp_structures_36k.json.gz``, written once to
bench/results/predict/input-2k.json.gz), each command as a user runs it with its defaults,
alone and beside another two-thread torch job that keeps both cores busy (the one of
bench/bench_threads.py). Prints the wall times side by side, the ratio the issue's target is
stated in (predict at most as slow as screen), and how many progress bars `zoo predict`
printed; saves bench/results/predict.json.

    .venv/bin/python bench/bench_predict.py [--structures 2000] [--repeats 1]

Target: `zoo predict` as fast as `zoo screen` (within noise, ratio <= 1.1) on an idle and on
a busy machine, with one prediction bar for the ensemble.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import RESULTS, SHARED, machine_load, plain_environment  # noqa: E402

SOURCE = SHARED / "data" / "mp_structures_36k.json.gz"
OUT = RESULTS / "predict"
MODEL = "zoo-elastic-mp2024"


def make_input(count: int, seed: int = 0) -> Path:
    """``count`` records of the source (seeded sample), as the source's own JSON format."""
    path = OUT / f"input-{count // 1000}k.json.gz"
    if not path.exists():
        with gzip.open(SOURCE, "rt") as handle:
            records = json.load(handle)
        chosen = np.random.default_rng(seed).choice(len(records), count, replace=False)
        OUT.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as handle:
            json.dump([records[i] for i in sorted(chosen)], handle)
    return path


def commands(data: Path) -> dict[str, list[str]]:
    """Each measured command, with its defaults (output into bench/results/predict)."""
    zoo = [sys.executable, "-m", "zoo.cli"]
    return {
        "zoo predict": [*zoo, "predict", "--model", MODEL, "--input", str(data),
                        "-o", str(OUT / "predicted.csv")],
        "zoo screen": [*zoo, "screen", "--model", MODEL, "--input", str(data),
                       "-o", str(OUT / "screen"), "--no-card"],
    }  # fmt: skip


def timed(command: list[str]) -> tuple[float, str]:
    """Wall seconds of one run from a clean output, and its standard error."""
    shutil.rmtree(OUT / "screen", ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=plain_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[2:4])} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stderr


def prediction_bars(stderr: str) -> int:
    """How many distinct prediction progress bars a run printed (tqdm redraws a bar with
    carriage returns and may print its end twice; each bar starts once at 0%)."""
    return len(re.findall(r"predicting:\s+0%", stderr))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--structures", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    data = make_input(args.structures)
    runs = commands(data)
    timed(runs["zoo predict"])  # warm the file cache and the shipped model's download
    rows = []
    for load in ("idle", "busy"):
        with machine_load(load):
            for repeat in range(args.repeats):  # interleaved: a slow spell hits both
                for name, command in runs.items():
                    seconds, stderr = timed(command)
                    bars = prediction_bars(stderr) if name == "zoo predict" else None
                    row = {"machine": load, "command": name, "repeat": repeat}
                    rows.append({**row, "seconds": round(seconds, 1), "prediction_bars": bars})
                    print(f"{load:5s} {name:12s} {seconds:6.1f} s", flush=True)
    report(rows, args.structures)
    (RESULTS / "predict.json").write_text(json.dumps(rows, indent=1))


def report(rows: list[dict], count: int) -> None:
    best = {}
    for row in rows:
        key = (row["machine"], row["command"])
        best[key] = min(best.get(key, np.inf), row["seconds"])
    print(f"\n{count:,} structures, {MODEL}, best of the repeats:")
    print("| machine | zoo predict | zoo screen | predict / screen |\n| --- | ---: | ---: | ---: |")
    for load in ("idle", "busy"):
        predict, screen = best[(load, "zoo predict")], best[(load, "zoo screen")]
        print(f"| {load} | {predict} s | {screen} s | {predict / screen:.2f} |")
    bars = {r["prediction_bars"] for r in rows if r["prediction_bars"] is not None}
    print(f"\nzoo predict printed {sorted(bars)} prediction bar(s) per run (target: 1)")


if __name__ == "__main__":
    main()
