"""Shared by the benchmark scripts: paths and one training run in its own process."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "data" / "mp_elasticity_binaries_2025.json.gz"
DEV_SPLIT = SHARED / "data" / "mp_elasticity_binaries_2025_split.csv"
RESULTS = ROOT / "bench" / "results"

BUSY_JOB = """
import torch
torch.set_num_threads(2)
a = torch.randn(256, 256)
while True:
    a = torch.tanh(a @ a)
"""
"""Another two-thread torch job with OpenMP's own settings (many short parallel regions, as
training has), run beside the measured one."""


def plain_environment() -> dict:
    """This environment without any OpenMP wait setting."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


@contextlib.contextmanager
def machine_load(load: str):
    """``idle``: nothing; ``busy``: :data:`BUSY_JOB` runs beside the block (started 2 s before
    it, killed after it)."""
    if load == "idle":
        yield
        return
    busy = subprocess.Popen([sys.executable, "-c", BUSY_JOB], env=plain_environment())
    time.sleep(2)
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


def _child(config_path, overrides, queue):
    from zoo.bundle import load_bundle
    from zoo.config import load_config
    from zoo.models import count_parameters
    from zoo.training import train

    base = {
        "threads": 2,
        "data.path": str(DEV_SET),
        "data.split_file": str(DEV_SPLIT),
        "output_dir": str(RESULTS / "runs"),
        "experiment": "bench",
    }
    config = load_config(config_path, {**base, **overrides})
    result = train(config, track=True, progress=False)
    metrics = result.metrics
    row = {
        "model": config.model,
        "targets": config.targets,
        "seed": config.seed,
        "threads": config.threads,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": float(np.median([r["epoch_seconds"] for r in result.history])),
        "train_minutes": metrics["train_seconds"] / 60,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": count_parameters(load_bundle(result.bundle_path).build_model()),
        "run_id": result.run_id,
        "output_dir": os.path.relpath(result.output_dir, ROOT),
        "finished": datetime.now().isoformat(timespec="minutes"),
    }
    for target in config.targets:
        for name in ("mae_log10", "mae_gpa", "r2_log10", "r2_gpa"):
            row[f"test_{target}_{name}"] = metrics[f"test_{target}_{name}"]
        row[f"val_{target}_mae_log10"] = metrics.get(f"val_{target}_mae_log10", float("nan"))
        row[f"train_{target}_mae_log10"] = metrics[f"train_{target}_mae_log10"]
    queue.put(row)


def train_in_child(config_path: str | Path | None, overrides: dict) -> dict:
    """Train on the development split in a fresh process; return its metrics, time, peak RSS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_child, args=(str(config_path) if config_path else None, overrides, queue)
    )
    process.start()
    row = queue.get()
    process.join()
    return row


def train_many(
    config_path: str | Path | None,
    jobs: list[dict],
    parallel: int,
    save_to: Path,
    keep: list[dict] | None = None,
) -> list[dict]:
    """Train every override set of ``jobs``, ``parallel`` at a time, each in a fresh process.

    Each run is given ``2 // parallel`` (at least one) torch threads unless its overrides say
    otherwise; a job's ``label`` key is not a config key but is copied to its row. Rows come
    back in the order of ``jobs``. The finished rows are written to
    ``save_to`` (JSON) after every run, so an interrupted benchmark keeps what it measured;
    rows in ``keep`` (earlier measurements) are written before them.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    threads = max(1, 2 // parallel)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = {}
        for index, job in enumerate(jobs):
            overrides = {"threads": threads, **{k: v for k, v in job.items() if k != "label"}}
            futures[pool.submit(train_in_child, config_path, overrides)] = index
        rows: list[dict | None] = [None] * len(jobs)
        for done, future in enumerate(as_completed(futures), start=1):
            index = futures[future]
            rows[index] = future.result() | {"label": jobs[index].get("label")}
            name = jobs[index].get("run_name", jobs[index])
            minutes = rows[index]["train_minutes"]
            print(f"[{done}/{len(jobs)}] finished {name}: {minutes:.1f} min", flush=True)
            finished = [*(keep or []), *(row for row in rows if row)]
            save_to.write_text(json.dumps(finished, indent=2))
    return rows


def run_key(row: dict) -> tuple:
    """What makes a run (a planned job or a measured row) the same run: group, targets, seed."""
    return row["label"], tuple(row["targets"]), row["seed"]


def earlier_rows(saved: Path, jobs: list[dict], update: bool) -> tuple[list[dict], list[dict]]:
    """The rows of ``saved`` to keep and the jobs still to train. ``update``: re-train the
    planned groups (label and targets), keep every other row; otherwise keep every row and
    train only the jobs without one (an interrupted benchmark, or more seeds)."""
    earlier = json.loads(saved.read_text()) if saved.exists() else []
    if update:
        rerun = {run_key(job)[:2] for job in jobs}
        keep = [row for row in earlier if run_key(row)[:2] not in rerun]
    else:
        keep = earlier
        done = {run_key(row) for row in earlier}
        jobs = [job for job in jobs if run_key(job) not in done]
    print(f"kept {len(keep)} earlier rows; {len(jobs)} runs to train", flush=True)
    return keep, jobs
