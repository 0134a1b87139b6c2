"""Kill anywhere, lose nothing: SIGKILL `zoo train`, `zoo tune` and `zoo screen` at many
instants, resume each with the command the tool documents, and check the invariants after every
one (issues 14 and 28).

    .venv/bin/python bench/bench_faults.py [--train-kills 30] [--tune-kills 30]
        [--screen-kills 30] [--only train,tune,screen] [--seed 0]

`zoo train` runs a short job on the development data (dev split, 6 epochs, one thread); `zoo
tune` a 3-trial study with `--final` on the built-in set (3 epochs per trial). Each kill lands
at a random instant of an uninterrupted run's wall time, or at a named fail point
(:mod:`zoo.faults`: inside the first epoch's checkpoint write, between a checkpoint and its
MLflow call, after the final evaluation, after the results are logged, before a trial's folder
exists, between registration and the alias). Then `zoo train --resume RUN_DIR` (the command
the tool prints) or the same `zoo tune` command is run until it succeeds.

Invariants after every resume, `zoo train`: history.csv has each epoch once; the folder's one
MLflow run is FINISHED with every `epoch/*` step once; metrics and predictions equal an
uninterrupted run's with the same seed, bit for bit; run.json says FINISHED; no run in the store
is RUNNING. `zoo tune`: the study holds 3 finished trials, no parameter set trained twice (each
continued trial in its predecessor's folder and run), every trial's history has each epoch once,
one registered version with the champion alias, no run RUNNING. `zoo screen` (the shipped
model over 600 Materials Project structures in chunks of 50, half the kills with the local
engine, half with the Dask engine, plus fail points after a chunk's commit, after the merge and
inside the card): every input id exactly once in the table or the errors, the table equal to
an uninterrupted run's, and no process of the killed screen (workers, Dask nannies) left
running 20 s after the kill. Prints a table by phase and writes bench/results/faults.json; the
table goes into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import DEV_SET, DEV_SPLIT, RESULTS  # noqa: E402

WORK = RESULTS / "faults"
EPOCHS, TRIALS, TRIAL_EPOCHS = 6, 3, 3
TRAIN_POINTS = ["run-opened", "checkpoint-part@1", "epoch-saved@1", f"epoch-saved@{EPOCHS}",
                "final-evaluated", "final-logged"]  # fmt: skip
TUNE_POINTS = ["trial-planned@2", "run-opened@2", "epoch-saved@4", "final-evaluated@4",
               "pyfunc-logged", "refit-registered"]  # fmt: skip


def zoo(args: list[str], cwd: Path, failpoint: str | None = None, kill_after: float | None = None):
    """Run ``zoo ARGS``; SIGKILL it after ``kill_after`` seconds. Returns (exit code, seconds)."""
    env = {**os.environ, "DGLBACKEND": "pytorch", "ZOO_CACHE_DIR": str(WORK / "graph-cache")}
    env.pop("ZOO_FAILPOINT", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # mlflow.set_tracking_uri (the checks) sets it
    if failpoint:
        env["ZOO_FAILPOINT"] = failpoint
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        _, err = process.communicate()
    if process.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"zoo {' '.join(args)} failed ({process.returncode}):\n{err[-3000:]}")
    return process.returncode, time.perf_counter() - started


def client_for(folder: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return mlflow.MlflowClient()


def all_runs(client) -> list:
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=5000) if ids else []


TRAIN_ARGS = ["train", "--data", str(DEV_SET), "--split", str(DEV_SPLIT), "--epochs",
              str(EPOCHS), "--threads", "1"]  # fmt: skip


def train_phase(folder: Path) -> str:
    """Where the kill landed, read from what the run left."""
    import torch

    if not (folder / "config.yaml").exists():
        return "before the folder"
    if not (folder / "last.pt").exists():
        return "before the first checkpoint"
    checkpoint = torch.load(folder / "last.pt", map_location="cpu", weights_only=True)
    if not checkpoint["complete"]:
        return "training"
    if json.loads((folder / "run.json").read_text())["status"] == "FINISHED":
        return "after the end"
    return "final evaluation and logging"


def train_invariants(cwd: Path, name: str, reference: Path) -> dict[str, bool]:
    folder = cwd / "runs" / name
    history = pd.read_csv(folder / "history.csv")
    client = client_for(cwd)
    runs = [r for r in all_runs(client) if r.data.tags.get("zoo.output_dir") == str(folder)]
    steps_once = len(runs) == 1 and all(
        sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, key))
        == list(range(1, EPOCHS + 1))
        for key in ("epoch/train_loss", "epoch/val_mae_log10", "epoch/lr")
    )
    ours = json.loads((folder / "metrics.json").read_text())
    theirs = json.loads((reference / "metrics.json").read_text())
    return {
        "history: each epoch once": history["epoch"].tolist() == list(range(1, EPOCHS + 1)),
        "one MLflow run, FINISHED": len(runs) == 1 and runs[0].info.status == "FINISHED",
        "MLflow: every epoch step once": steps_once,
        "metrics bit for bit": all(ours[k] == theirs[k] for k in theirs if k != "train_seconds"),
        "predictions bit for bit": (folder / "predictions.csv").read_bytes()
        == (reference / "predictions.csv").read_bytes(),
        "run.json FINISHED": json.loads((folder / "run.json").read_text())["status"] == "FINISHED",
        "no run left RUNNING": not [r for r in all_runs(client) if r.info.status == "RUNNING"],
    }


def kill_train(cwd: Path, name: str, reference: Path, wall: float, rng, point: str | None):
    delay = None if point else float(rng.uniform(0.0, wall))
    code, _ = zoo([*TRAIN_ARGS, "--run-name", name], cwd, failpoint=point, kill_after=delay)
    landed = code == -signal.SIGKILL
    phase = f"fail point {point}" if point else train_phase(cwd / "runs" / name)
    if landed and (cwd / "runs" / name).exists():  # the resume command the tool prints
        zoo(["train", "--resume", f"runs/{name}"], cwd)
    elif landed:  # killed before the run had a folder: nothing was done; the same command
        zoo([*TRAIN_ARGS, "--run-name", name], cwd)
    return {"part": "zoo train", "instant": point or f"{delay:.2f} s", "phase": phase,
            "killed": landed, **train_invariants(cwd, name, reference)}  # fmt: skip


TUNE_ARGS = ["tune", "--trials", str(TRIALS), "--epochs", str(TRIAL_EPOCHS), "--threads", "1",
             "--pruner", "none", "--final"]  # fmt: skip


def tune_invariants(cwd: Path) -> dict[str, bool]:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(
        study_name="cgcnn-shear", storage=f"sqlite:///{cwd / 'mlruns/optuna/cgcnn-shear.db'}"
    )
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    params = [json.dumps(t.params, sort_keys=True) for t in complete]
    folders = [t.user_attrs["zoo.output_dir"] for t in complete]
    histories = [pd.read_csv(Path(f) / "history.csv")["epoch"].tolist() for f in folders]
    client = client_for(cwd)
    runs = all_runs(client)
    trial_runs = [r for r in runs if "optuna.trial_number" in r.data.tags]
    versions = client.search_model_versions("name='cgcnn-shear'")
    champion = client.get_registered_model("cgcnn-shear").aliases.get("champion")
    return {
        f"{TRIALS} finished trials": len(complete) == TRIALS,
        "no parameter set trained twice": len(set(params)) == len(params)
        and len(set(folders)) == len(folders)
        and len({r.data.tags["zoo.output_dir"] for r in trial_runs}) == len(trial_runs),
        "trial histories: each epoch once": all(
            h == list(range(1, TRIAL_EPOCHS + 1)) for h in histories
        ),
        "one registered version, champion": len(versions) == 1 and champion is not None,
        "no run left RUNNING": not [r for r in runs if r.info.status == "RUNNING"],
    }


def kill_tune(cwd: Path, wall: float, rng, point: str | None):
    cwd.mkdir(parents=True)
    delay = None if point else float(rng.uniform(0.0, wall))
    code, _ = zoo(TUNE_ARGS, cwd, failpoint=point, kill_after=delay)
    landed = code == -signal.SIGKILL
    phase = f"fail point {point}" if point else tune_phase(cwd)
    for _ in range(3):
        if zoo(TUNE_ARGS, cwd)[0] == 0:
            break
    return {"part": "zoo tune", "instant": point or f"{delay:.2f} s", "phase": phase,
            "killed": landed, **tune_invariants(cwd)}  # fmt: skip


def tune_phase(cwd: Path) -> str:
    import optuna
    from optuna.trial import TrialState

    path = cwd / "mlruns/optuna/cgcnn-shear.db"
    if not path.exists():
        return "before the study"
    trials = optuna.load_study(study_name="cgcnn-shear", storage=f"sqlite:///{path}").get_trials()
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    if done < TRIALS:
        return f"trial {done + 1} of {TRIALS}"
    return "refit and registration"


SCREEN_STRUCTURES, SCREEN_CHUNK = 600, 50
SCREEN_POINTS = ["chunk-committed@3", "screen-merged", "card-part"]


def screen_args(engine: str) -> list[str]:
    return ["screen", "--model", "zoo-elastic-mp2024", "--input", "../screen-input.jsonl",
            "-o", "out", "--chunk-size", str(SCREEN_CHUNK), "--workers", "2",
            "--engine", engine]  # fmt: skip


def write_screen_input(path: Path) -> list[str]:
    """The first SCREEN_STRUCTURES MP structures as JSON lines; returns their ids."""
    import gzip

    from bench._common import SHARED

    with gzip.open(SHARED / "data" / "mp_structures_36k.json.gz") as handle:
        records = json.load(handle)
    chosen = records[:SCREEN_STRUCTURES]
    path.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return [r["mp_id"] for r in chosen]


def screen_phase(out: Path) -> str:
    if not (out / "manifest.json").exists():
        return "before the output"
    done = len(list((out / "chunks").glob("*.parquet")))
    if done < SCREEN_STRUCTURES // SCREEN_CHUNK:
        return "chunks"
    if not (out / "screen.parquet").exists():
        return "merge"
    return "summary and card" if not (out / "card.md").exists() else "after the end"


def kill_screen(cwd: Path, engine: str, wall: float, rng, point: str | None, ids, reference):
    import psutil

    cwd.mkdir(parents=True)
    env = {**os.environ, "DGLBACKEND": "pytorch", "ZOO_CACHE_DIR": str(WORK / "graph-cache")}
    env.pop("ZOO_FAILPOINT", None)
    if point:
        env["ZOO_FAILPOINT"] = point
    delay = None if point else float(rng.uniform(0.0, wall))
    command = [sys.executable, "-m", "zoo.cli", *screen_args(engine)]
    log = open(cwd / "screen.log", "wb")  # noqa: SIM115 (the child writes it)
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    family: set[int] = set()
    deadline = None if delay is None else time.perf_counter() + delay
    while process.poll() is None and (deadline is None or time.perf_counter() < deadline):
        try:
            family |= {c.pid for c in psutil.Process(process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait()
    log.close()
    if process.returncode not in (0, -signal.SIGKILL):
        tail = (cwd / "screen.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"zoo screen failed ({process.returncode}) in {cwd}:\n{tail}")
    landed = process.returncode == -signal.SIGKILL
    phase = f"fail point {point}" if point else screen_phase(cwd / "out")
    orphans = _survivors(family, seconds=20.0)
    if landed:
        zoo(screen_args(engine), cwd)  # the same command continues
    table = pd.read_parquet(cwd / "out" / "screen.parquet")
    errors = pd.read_csv(cwd / "out" / "errors.csv", dtype=str)
    seen = list(table["id"]) + list(errors["id"])
    return {"part": f"zoo screen ({engine})", "instant": point or f"{delay:.2f} s",
            "phase": phase, "killed": landed,
            "every id exactly once": sorted(seen) == sorted(ids),
            "table equals an uninterrupted run's": table.equals(reference),
            "no orphan process": not orphans}  # fmt: skip


def _survivors(pids: set[int], seconds: float) -> list[int]:
    """The processes of ``pids`` still running after up to ``seconds``."""
    import psutil

    deadline = time.perf_counter() + seconds
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive or time.perf_counter() > deadline:
            return alive
        time.sleep(0.5)


def screen_part(kills: int, rng) -> list[dict]:
    """Uninterrupted screens with each engine, then the kills, half with each engine."""
    import shutil

    folder = WORK / "screen"
    folder.mkdir(parents=True)
    ids = write_screen_input(folder / "screen-input.jsonl")
    walls, references = {}, {}
    for engine in ("local", "dask"):
        cwd = folder / f"reference-{engine}"
        cwd.mkdir()
        _, walls[engine] = zoo(screen_args(engine), cwd)
        references[engine] = pd.read_parquet(cwd / "out" / "screen.parquet")
        print(f"zoo screen --engine {engine}, uninterrupted: {walls[engine]:.1f} s wall")
    rows = []
    plan = [(e, None) for _ in range(kills // 2) for e in ("local", "dask")]
    plan += [(e, p) for p in SCREEN_POINTS for e in ("local", "dask")]
    for i, (engine, point) in enumerate(plan):
        cwd = folder / f"kill-{i:03d}"
        rows.append(kill_screen(cwd, engine, walls[engine], rng, point, ids, references[engine]))
        print(f"screen {i + 1}/{len(plan)} ({engine}): {rows[-1]['phase']}, all held: "
              f"{all(v for k, v in rows[-1].items() if isinstance(v, bool) and k != 'killed')}",
              flush=True)  # fmt: skip
        shutil.rmtree(cwd / "out" / "chunks", ignore_errors=True)  # keep the disk small
    return rows


def table(rows: list[dict]) -> str:
    """Instants tried, kills that landed and invariants held or broken, by part and phase."""
    lines = ["| part | phase | instants | killed | invariants held | broken |", "|---" * 6 + "|"]
    groups = defaultdict(list)
    for row in rows:
        groups[(row["part"], row["phase"])].append(row)
    for (part, phase), group in sorted(groups.items()):
        names = [k for k in group[0] if k not in ("part", "instant", "phase", "killed")]
        held = sum(row[k] for row in group for k in names)
        broken = Counter(k for row in group for k in names if not row[k])
        lines.append(
            f"| {part} | {phase} | {len(group)} | {sum(r['killed'] for r in group)} | "
            f"{held} / {held + sum(broken.values())} | {', '.join(broken) or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-kills", type=int, default=30, help="random instants, zoo train")
    parser.add_argument("--tune-kills", type=int, default=30, help="random instants, zoo tune")
    parser.add_argument("--screen-kills", type=int, default=30, help="random instants, screen")
    parser.add_argument("--only", default="train,tune,screen", help="parts to run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    parts = args.only.split(",")
    rng = np.random.default_rng(args.seed)
    if WORK.exists():
        import shutil

        shutil.rmtree(WORK)
    rows = []
    if "train" in parts:
        rows += train_part(args.train_kills, rng)
    if "tune" in parts:
        rows += tune_part(args.tune_kills, rng)
    if "screen" in parts:
        rows += screen_part(args.screen_kills, rng)
    (RESULTS / "faults.json").write_text(json.dumps(rows, indent=1))
    for part in dict.fromkeys(r["part"] for r in rows):
        print(table([r for r in rows if r["part"] == part]))
        print()


def train_part(kills: int, rng) -> list[dict]:
    train_dir = WORK / "train"
    train_dir.mkdir(parents=True)
    zoo([*TRAIN_ARGS, "--run-name", "warm-up"], train_dir)  # builds the graph cache
    _, wall = zoo([*TRAIN_ARGS, "--run-name", "reference"], train_dir)
    reference = train_dir / "runs" / "reference"
    print(f"zoo train, uninterrupted: {wall:.1f} s wall")
    rows = []
    plan = [None] * kills + TRAIN_POINTS
    for i, point in enumerate(plan):
        rows.append(kill_train(train_dir, f"k{i:03d}", reference, wall, rng, point))
        print(f"train {i + 1}/{len(plan)}: {rows[-1]['phase']}, all held: "
              f"{all(v for k, v in rows[-1].items() if isinstance(v, bool) and k != 'killed')}",
              flush=True)  # fmt: skip
    return rows


def tune_part(kills: int, rng) -> list[dict]:
    reference_tune = WORK / "tune-reference"
    reference_tune.mkdir(parents=True)
    _, tune_wall = zoo(TUNE_ARGS, reference_tune)
    print(f"zoo tune --final, uninterrupted: {tune_wall:.1f} s wall")
    rows = []
    plan = [None] * kills + TUNE_POINTS
    for i, point in enumerate(plan):
        rows.append(kill_tune(WORK / f"tune-{i:03d}", tune_wall, rng, point))
        print(f"tune {i + 1}/{len(plan)}: {rows[-1]['phase']}, all held: "
              f"{all(v for k, v in rows[-1].items() if isinstance(v, bool) and k != 'killed')}",
              flush=True)  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
