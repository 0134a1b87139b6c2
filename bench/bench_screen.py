"""Issue 17: ``zoo screen`` at the study's scale, measured as a user runs it.

The input: the 36,737 real structures of ``../shared/data/mp_structures_36k.json.gz`` plus
seeded variants of them up to 80,000 (each variant a random original, strained by up to ±3%
per strain component, with one element swapped for another of its group in half of them, and
small cells made into supercells of at least 20 atoms), written once as JSON lines of pymatgen
dicts (what the Materials Project API returns) to ``bench/results/screen/input-80k.jsonl.gz``.

Measured (2 worker processes, chunks of 1,000):

- ``zoo screen`` end to end with the shipped model: wall time, structures per second, peak
  memory of the whole process tree (sampled every 0.2 s), worker seconds per stage;
- the floor: the neighbour search alone, as the graph builder does it (pymatgen
  ``get_neighbor_list`` at 5 Å, again at 8 Å where 5 Å holds fewer than 12 neighbours of an
  atom), and pymatgen's search at 8 Å for scale, over the same structures in 2 processes,
  parsing untimed;
- the memory bound at 80,000 and at 4× that (the input four times over, new ids), with one
  fast ``cgcnn`` model from the benchmark runs so the 4× run takes minutes, not an hour;
- the Dask engine (a local cluster of 2 worker processes) against the local engine, on the
  first 10,000 structures.

    python bench/bench_screen.py                 # everything (about an hour on 2 cores)
    python bench/bench_screen.py --only screen   # one part: input, floor, screen, memory, dask
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, ROOT, SHARED

OUT = RESULTS / "screen"
SOURCE = SHARED / "data" / "mp_structures_36k.json.gz"
INPUT = OUT / "input-80k.jsonl.gz"
TOTAL = 80_000
SHIPPED = "zoo-elastic-mp2024"


def make_input(total: int = TOTAL, seed: int = 0) -> None:
    """The 80,000-structure input (see the module docstring); its statistics to a JSON file."""
    import warnings

    from pymatgen.core import Element

    from zoo.readers.records import structure_from_value

    warnings.filterwarnings("ignore")
    with gzip.open(SOURCE, "rt") as handle:
        records = json.load(handle)
    rng = np.random.default_rng(seed)
    sites = []
    OUT.mkdir(parents=True, exist_ok=True)
    partial = INPUT.with_suffix(".part")
    with gzip.open(partial, "wt", compresslevel=1) as handle:
        originals = []
        for record in records:
            structure = structure_from_value(record["structure"])
            originals.append(structure)
            handle.write(json.dumps({"mp_id": record["mp_id"], "structure": structure.as_dict()}))
            handle.write("\n")
            sites.append(len(structure))
        for number in range(total - len(records)):
            pick = int(rng.integers(len(originals)))
            variant = _variant(originals[pick], rng, Element)
            entry = f"{records[pick]['mp_id']}-v{number}"
            handle.write(json.dumps({"mp_id": entry, "structure": variant.as_dict()}) + "\n")
            sites.append(len(variant))
    partial.rename(INPUT)
    stats = {"structures": len(sites), "mean_sites": float(np.mean(sites)),
             "median_sites": float(np.median(sites)), "max_sites": int(np.max(sites))}  # fmt: skip
    (OUT / "input-80k.json").write_text(json.dumps(stats, indent=2))
    print(f"wrote {INPUT}: {stats}")


def _variant(structure, rng, element_class):
    """A strained copy, with one element swapped within its group half of the time, made a
    supercell of at least 20 atoms when smaller."""
    strained = structure.copy()
    strained.remove_oxidation_states()
    strain = rng.uniform(-0.03, 0.03, (3, 3))
    strained.apply_strain((strain + strain.T) / 2)
    if rng.random() < 0.5:
        present = sorted({site.specie.symbol for site in strained})
        old = element_class(present[int(rng.integers(len(present)))])
        group = [e for e in element_class if e.group == old.group and abs(e.row - old.row) == 1
                 and e.Z <= 94]  # fmt: skip
        if group:
            strained.replace_species({old: group[int(rng.integers(len(group)))]})
    while len(strained) < 20:
        axis = [1, 1, 1]
        axis[int(np.argmin(strained.lattice.abc))] = 2
        strained.make_supercell(axis)
    return strained


def _floor_worker(part: int, parts: int, queue) -> None:
    """Neighbour search seconds over every ``parts``-th structure from ``part`` (parsing
    untimed): the builder's search (:func:`zoo.graphs.neighbors._candidate_pairs`: 5 Å
    first, 8 Å where that is too short) and pymatgen's search at 8 Å alone."""
    from pymatgen.core import Structure

    from zoo.graphs.neighbors import _candidate_pairs
    from zoo.graphs.settings import GraphSettings

    settings = GraphSettings(parts=("bond", "angle", "crystal"))
    seconds = {"builder_search": 0.0, "search_8a": 0.0}
    with gzip.open(INPUT, "rt") as handle:
        for number, line in enumerate(handle):
            if number % parts != part:
                continue
            structure = Structure.from_dict(json.loads(line)["structure"])
            start = time.perf_counter()
            _candidate_pairs(structure, settings)
            middle = time.perf_counter()
            structure.get_neighbor_list(r=8.0, exclude_self=False)
            seconds["builder_search"] += middle - start
            seconds["search_8a"] += time.perf_counter() - middle
    queue.put(seconds)


def floor(workers: int = 2) -> dict:
    """The neighbour search alone over the input, ``workers`` processes: the slowest process's
    seconds is the floor's wall time (the builder's search; pymatgen's at 8 Å for scale)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_floor_worker, args=(p, workers, queue))
                 for p in range(workers)]  # fmt: skip
    for process in processes:
        process.start()
    seconds = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    return {
        "neighbour_search_seconds": max(s["builder_search"] for s in seconds),
        "search_8a_seconds": max(s["search_8a"] for s in seconds),
        "per_process": seconds,
    }


class TreeMemory:
    """Peak memory of a process and all its descendants, sampled every 0.2 s: the sum of
    their proportional set sizes (PSS: each shared page, such as torch's libraries mapped by
    every worker, counted once over the processes that share it; a sum of resident set sizes
    would count those pages once per process)."""

    def __init__(self, pid: int):
        import psutil

        self.root, self.peak, self.samples = psutil.Process(pid), 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        import psutil

        while not self._stop.is_set():
            try:
                family = [self.root, *self.root.children(recursive=True)]
                total = sum(p.memory_full_info().pss for p in family if p.is_running())
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            self.samples.append(total)
            time.sleep(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1e9


def timed_screen(name: str, source: Path, model: str, *extra: str) -> dict:
    """``zoo screen`` as a user runs it (a fresh output folder): wall, rate, peak memory, the
    summary's worker seconds per stage."""
    import shutil

    out = OUT / name
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "zoo.cli", "screen", "--input", str(source), "--model",
               model, "-o", str(out), "--workers", "2", "--chunk-size", "1000", *extra]  # fmt: skip
    started = time.perf_counter()
    environment = {**os.environ, "DGLBACKEND": "pytorch"}
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    memory = TreeMemory(process.pid)
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    peak = memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{name}: zoo screen failed ({process.returncode})")
    summary = json.loads((out / "summary.json").read_text())
    row = {"name": name, "model": model, "wall_seconds": wall, "peak_pss_gb": peak,
           "structures": summary["predicted"] + summary["skipped"],
           "predicted": summary["predicted"], "skipped": summary["skipped"],
           "stages": summary["seconds_per_stage_this_time"]}  # fmt: skip
    row["per_second"] = row["structures"] / wall
    print(output.strip().splitlines()[0], flush=True)
    return row


def repeated_input(times: int) -> Path:
    """The input ``times`` over, ids suffixed (``-r1``...), streamed to a new file."""
    path = OUT / f"input-{times}x80k.jsonl.gz"
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with gzip.open(partial, "wt", compresslevel=1) as out:
        for copy in range(times):
            with gzip.open(INPUT, "rt") as handle:
                for line in handle:
                    record = json.loads(line)
                    record["mp_id"] = f"{record['mp_id']}-r{copy}"
                    out.write(json.dumps(record) + "\n")
    partial.rename(path)
    return path


def head_input(count: int) -> Path:
    path = OUT / f"input-{count}.jsonl.gz"
    if not path.exists():
        with gzip.open(INPUT, "rt") as handle, gzip.open(path, "wt", compresslevel=1) as out:
            for number, line in enumerate(handle):
                if number >= count:
                    break
                out.write(line)
    return path


def fast_model() -> str:
    """A ``cgcnn-mt`` bundle for the memory runs (3 epochs on the development set: its
    accuracy does not matter here, its speed does)."""
    from _common import DEV_SET, DEV_SPLIT

    bundle = OUT / "fast-cgcnn" / "model.zoo.pt"
    if not bundle.exists():
        subprocess.run([sys.executable, "-m", "zoo.cli", "train", "--model", "cgcnn-mt",
                        "--target", "shear,bulk", "--data", str(DEV_SET), "--split",
                        str(DEV_SPLIT), "--epochs", "3", "--no-track", "--output-dir", str(OUT),
                        "--run-name", "fast-cgcnn"], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
    return str(bundle)


def run_part(part: str, results: dict) -> None:
    if part == "input" and not INPUT.exists():
        make_input()
    elif part == "floor":
        results["floor"] = floor()
    elif part == "screen":
        results["screen"] = timed_screen("shipped-80k", INPUT, SHIPPED, "--no-card")
    elif part == "memory":
        model = fast_model()
        results["memory_80k"] = timed_screen("fast-80k", INPUT, model, "--no-card")
        results["memory_320k"] = timed_screen("fast-320k", repeated_input(4), model, "--no-card")
    elif part == "dask":
        head = head_input(10_000)
        results["local_10k"] = timed_screen("local-10k", head, SHIPPED, "--no-card")
        results["dask_10k"] = timed_screen("dask-10k", head, SHIPPED, "--no-card", "--engine",
                                           "dask")  # fmt: skip
        results["dask_identical"] = _same_table(OUT / "local-10k", OUT / "dask-10k")


def _same_table(first: Path, second: Path) -> bool:
    import pandas as pd

    a, b = (pd.read_parquet(p / "screen.parquet") for p in (first, second))
    try:
        pd.testing.assert_frame_equal(a, b)
        return True
    except AssertionError:
        return False


def table(results: dict) -> None:
    stats = json.loads((OUT / "input-80k.json").read_text())
    print(f"\ninput: {stats['structures']} structures, mean {stats['mean_sites']:.1f} atoms "
          f"(median {stats['median_sites']:.0f}, max {stats['max_sites']})")  # fmt: skip
    print(
        "| run | model | structures | wall (s) | structures/s | peak memory (PSS, GB) | "
        "worker s: reading / neighbours / graphs / inference / derived / writing |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for key in ("screen", "memory_80k", "memory_320k", "local_10k", "dask_10k"):
        if key in results:
            row = results[key]
            stages = " / ".join(f"{v:.0f}" for v in row["stages"].values())
            print(f"| {row['name']} | {Path(row['model']).name} | {row['structures']} | "
                  f"{row['wall_seconds']:.0f} | {row['per_second']:.0f} | "
                  f"{row['peak_pss_gb']:.2f} | {stages} |")  # fmt: skip
    if "floor" in results and "screen" in results:
        found = results["floor"]
        ratio = results["screen"]["wall_seconds"] / found["neighbour_search_seconds"]
        builder, alone = found["neighbour_search_seconds"], found.get("search_8a_seconds", 0)
        print(f"neighbour search alone (2 processes): the builder's {builder:.1f} s "
              f"(pymatgen's at 8 Å alone: {alone:.1f} s); the screen takes {ratio:.1f}× "
              "the builder's")  # fmt: skip
    if "dask_identical" in results:
        print(f"dask table identical to local: {results['dask_identical']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["input", "floor", "screen", "memory", "dask"])
    args = parser.parse_args()
    saved = OUT / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}
    for part in [args.only] if args.only else ["input", "floor", "screen", "memory", "dask"]:
        if part != "input" and not INPUT.exists():
            run_part("input", results)
        run_part(part, results)
        saved.write_text(json.dumps(results, indent=2))
    table(results)


if __name__ == "__main__":
    main()
