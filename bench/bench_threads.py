"""zoo's threading on an idle and on a busy machine (issue 31): `zoo train` (cgcnn, the
development split, 1 epoch, no MLflow) with its default threads (all cores) and with
`--threads 1`, each with zoo's default OpenMP wait policy (PASSIVE, set before torch loads)
and with the spinning one torch used before (`OMP_WAIT_POLICY=ACTIVE`), alone and beside
another two-thread torch job that keeps the cores busy. Prints the wall times side by side and
the ratios the issue's targets are stated in; saves bench/results/threads.json.

    .venv/bin/python bench/bench_threads.py [--epochs 1]

Targets: busy, default threads at most 1.5 times `--threads 1`; idle, default threads no
slower than with the old policy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import DEV_SET, DEV_SPLIT, RESULTS  # noqa: E402

BUSY_JOB = """
import torch
torch.set_num_threads(2)
a = torch.randn(1500, 1500)
while True:
    a = (a @ a).tanh_()
"""
"""Another two-thread torch job (ordinary OpenMP settings), run beside the measured one."""


def train_seconds(threads: int | None, policy: str | None, epochs: int, work: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
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
    train_seconds(1, None, 1, work)  # builds the graph cache
    cases = [("default threads", None, None), ("--threads 1", 1, None),
             ("default threads, ACTIVE wait", None, "ACTIVE")]  # fmt: skip
    rows = []
    for load in ("idle", "busy"):
        busy = None
        if load == "busy":
            busy = subprocess.Popen([sys.executable, "-c", BUSY_JOB],
                                    env={k: v for k, v in os.environ.items()
                                         if k != "OMP_WAIT_POLICY"})  # fmt: skip
            time.sleep(2)
        try:
            for name, threads, policy in cases:
                seconds = train_seconds(threads, policy, args.epochs, work)
                rows.append({"machine": load, "case": name, "seconds": round(seconds, 1)})
                print(f"{load:5s} {name:30s} {seconds:7.1f} s", flush=True)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    table = {(r["machine"], r["case"]): r["seconds"] for r in rows}
    print("\n| machine | default threads (PASSIVE) | --threads 1 | default, ACTIVE (before) |")
    print("| --- | ---: | ---: | ---: |")
    for load in ("idle", "busy"):
        print(f"| {load} | {table[(load, 'default threads')]} s | {table[(load, '--threads 1')]} s"
              f" | {table[(load, 'default threads, ACTIVE wait')]} s |")  # fmt: skip
    ratio = table[("busy", "default threads")] / table[("busy", "--threads 1")]
    idle = table[("idle", "default threads")] / table[("idle", "default threads, ACTIVE wait")]
    print(
        f"\nbusy: default / --threads 1 = {ratio:.2f} (target <= 1.5); "
        f"idle: PASSIVE / ACTIVE = {idle:.2f} (target <= 1.0 within noise)"
    )
    (RESULTS / "threads.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
