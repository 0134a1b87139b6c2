"""Shared by the benchmark scripts: paths and one training run in its own process."""

from __future__ import annotations

import multiprocessing
import resource
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV_SET = SHARED / "data" / "mp_elasticity_binaries_2025.json.gz"
DEV_SPLIT = SHARED / "data" / "mp_elasticity_binaries_2025_split.csv"
RESULTS = ROOT / "bench" / "results"


def _child(config_path, overrides, queue):
    import torch

    from models import count_parameters
    from zoo.bundle import load_bundle
    from zoo.config import load_config
    from zoo.training import train

    torch.set_num_threads(2)
    base = {
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
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "seconds_per_epoch": float(np.median([r["epoch_seconds"] for r in result.history])),
        "train_minutes": metrics["train_seconds"] / 60,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters": count_parameters(load_bundle(result.bundle_path).build_model()),
        "run_id": result.run_id,
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
