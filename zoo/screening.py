"""``zoo screen``: predict both moduli and what follows from them for any number of structures,
streaming, resumable, on this machine or a Dask cluster.

The input is read entry by entry (:mod:`zoo.readers`) and cut into chunks of ``chunk_size``
raw entries; each chunk is screened start to finish by :func:`zoo.screen_chunk.screen_chunk` in
a worker process (``engine="local"``) or as a task on a Dask cluster (``engine="dask"``), and
committed to the output folder as it comes back (:mod:`zoo.screen_output`). At most
``2 × workers`` chunks are in flight, so memory does not grow with the input: the main process
holds the unread source's iterator, the ids seen so far and the chunks in flight; each worker
one chunk's structures and graphs and the models.

::

    result = run_screen(ScreenSpec(input="structures.jsonl", models=["zoo-elastic-mp2024"],
                                   output_dir="screen-out"))
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from zoo.faults import failpoint
from zoo.readers.registry import Entry, count_entries, format_for, iter_entry_chunks
from zoo.screen_chunk import STAGES, ModelFile, ScreenOptions, check_models, screen_chunk
from zoo.screen_output import (
    commit_chunk,
    file_digest,
    input_fingerprint,
    lock_output,
    merge_chunks,
    open_output,
    write_json,
)


class ScreenSpec(BaseModel):
    """What to screen, with what, and how (unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(description="structures: a file or folder any reader takes")
    models: list[str] = Field(min_length=1, description="model specs (file, URI, pretrained)")
    output_dir: str
    chunk_size: int = Field(1000, ge=1, description="raw entries per chunk")
    workers: int = Field(2, ge=1, description="worker processes (local) or Dask workers")
    engine: str = Field("local", pattern="^(local|dask)$")
    scheduler: str | None = Field(None, description="Dask scheduler address (None: local)")
    restart: bool = Field(False, description="discard a different screen in output_dir")
    max_atoms: int = Field(200, ge=1, description="flag_many_atoms above this many atoms")
    id_key: str | None = None
    progress: bool = True
    card: bool = Field(True, description="write the data card and its plots at the end")


@dataclass
class ScreenResult:
    """Counts, seconds per stage (summed over workers), wall time and where the files are."""

    output_dir: Path
    predicted: int
    errors: int
    errors_by_stage: dict[str, int]
    errors_by_reason: dict[str, int]
    stage_seconds: dict[str, float]
    wall_seconds: float
    chunks_run: int
    processed: int
    files: dict[str, str] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        """Input entries screened by this run per second of wall time."""
        return self.processed / max(self.wall_seconds, 1e-9)

    def report(self) -> str:
        """The end-of-run summary: counts, skips by stage, seconds per stage, rate, files."""
        skipped = ", ".join(f"{n} at {stage}" for stage, n in self.errors_by_stage.items())
        stages = ", ".join(f"{k} {v:.1f}" for k, v in self.stage_seconds.items())
        lines = [
            f"predicted {self.predicted} structures; skipped {self.errors}"
            + (f" ({skipped}; reasons in {self.output_dir / 'errors.csv'})" if skipped else ""),
            f"this run: {self.chunks_run} chunks, {self.processed} entries in "
            f"{self.wall_seconds:.1f} s wall ({self.per_second:.1f} entries/s); "
            f"worker seconds per stage: {stages}",
        ]
        lines += [f"  {n} × {reason}" for reason, n in self.errors_by_reason.items()]
        lines += [f"{what}: {path}" for what, path in self.files.items()]
        return "\n".join(lines)


def resolve_models(specs: list[str]) -> tuple[list[ModelFile], list[dict]]:
    """Each spec's local model file (downloaded from the registry when it is a URI) with its
    digest, and its manifest record (spec, registry version, digest)."""
    from zoo.resolve import model_file, registry_version

    files, records = [], []
    for spec in specs:
        path = model_file(spec)
        digest = file_digest(path)
        files.append(ModelFile(spec, digest, str(path)))
        records.append({"spec": spec, "registry_version": registry_version(spec), "sha256": digest})
    return files, records


def chunks(spec: ScreenSpec, skip: set[int]) -> Iterator[tuple[int, list[Entry]]]:
    """``(number, raw entries)`` of every chunk not in ``skip``; an id seen before is bad
    input of its own (across chunks too). Skipped chunks are read past, not parsed."""
    cut = iter_entry_chunks(spec.input, spec.chunk_size, id_key=spec.id_key, with_targets=False)
    for number, chunk in enumerate(cut):
        if number not in skip:
            yield number, chunk


def manifest_for(spec: ScreenSpec, records: list[dict]) -> dict:
    """The manifest of a screen (what must match for it to continue, and provenance)."""
    import zoo

    return {
        "input": {
            "path": str(Path(spec.input).resolve()) if spec.input else None,
            "format": format_for(spec.input).name,
            "fingerprint": input_fingerprint(spec.input),
        },
        "models": records,
        "chunk_size": spec.chunk_size,
        "options": {"max_atoms": spec.max_atoms, "id_key": spec.id_key},
        "code_version": zoo.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_screen(spec: ScreenSpec, log=print) -> ScreenResult:
    """Screen ``spec.input`` into ``spec.output_dir`` (see the module docstring); a rerun of
    the same screen continues where it stopped."""
    started = time.perf_counter()
    files, records = resolve_models(spec.models)
    open_engine = _dask_engine if spec.engine == "dask" else _local_engine
    seconds = dict.fromkeys(STAGES, 0.0)
    run = processed = 0
    with ExitStack() as holding:  # the output folder is held until the card is written
        with open_engine(spec, files) as engine:
            engine.check()
            holding.enter_context(lock_output(spec.output_dir))
            done = open_output(spec.output_dir, manifest_for(spec, records), spec.restart, log)
            if done:
                log(f"continuing: {len(done)} chunks of {spec.output_dir} are done already")
            bar = _Progress(spec, done)
            options = ScreenOptions(max_atoms=spec.max_atoms)
            for result in engine.results(chunks(spec, done), options):
                write_start = time.perf_counter()
                commit_chunk(spec.output_dir, result.number, result.table, result.errors)
                failpoint("chunk-committed")
                for stage, value in result.seconds.items():
                    seconds[stage] += value
                seconds["writing"] = seconds.get("writing", 0.0) + time.perf_counter() - write_start
                run += 1
                processed += len(result.table) + len(result.errors)
                bar.advance(len(result.table) + len(result.errors))
            bar.close()
        return _finish(spec, seconds, (run, processed), started, log)


class _Progress:
    """The progress bar (rate, and time left once the input is counted). The input is counted
    in a thread while the first chunks run: counting 80,000 JSON lines takes 6 s, which the
    workers would otherwise spend waiting."""

    def __init__(self, spec: ScreenSpec, done: set[int]):
        from concurrent.futures import ThreadPoolExecutor

        from zoo.progress import CountBar

        self.bar = CountBar(
            initial=len(done) * spec.chunk_size,
            unit="structures",
            desc="screening",
            disable=not spec.progress,
            smoothing=0.1,
        )
        self.counter = ThreadPoolExecutor(1, thread_name_prefix="zoo-count")
        self.total = None
        if spec.progress:
            self.total = self.counter.submit(count_entries, spec.input, id_key=spec.id_key)

    def advance(self, entries: int) -> None:
        self.bar.update(entries)
        if self.total is not None and self.total.done() and self.bar.total is None:
            self.bar.total = self.total.result()
            self.bar.n = min(self.bar.n, self.bar.total)  # the last chunk done may be short
            self.bar.refresh()

    def close(self) -> None:
        self.counter.shutdown(wait=True)
        self.bar.close()


def _finish(spec, seconds, counts, started, log) -> ScreenResult:
    """Merge the chunks, count, write ``summary.json`` and the data card."""
    merge_start = time.perf_counter()
    predicted, table = merge_chunks(spec.output_dir)
    failpoint("screen-merged")
    seconds["writing"] = seconds.get("writing", 0.0) + time.perf_counter() - merge_start
    by_stage = {str(k): int(v) for k, v in table["stage"].value_counts().items()}
    kinds = table["reason"].str.split(" [(]", regex=True).str[0].str.slice(0, 80)
    by_reason = {str(k): int(v) for k, v in kinds.value_counts().head(10).items()}
    result = ScreenResult(
        output_dir=Path(spec.output_dir),
        predicted=predicted,
        errors=len(table),
        errors_by_stage=by_stage,
        errors_by_reason=by_reason,
        stage_seconds=seconds,
        wall_seconds=time.perf_counter() - started,
        chunks_run=counts[0],
        processed=counts[1],
    )
    write_json(Path(spec.output_dir) / "summary.json", _summary(result))
    if spec.card:
        from zoo.data_card import write_card

        result.files = write_card(spec.output_dir, _summary(result))
    return result


def _summary(result: ScreenResult) -> dict:
    return {
        "predicted": result.predicted,
        "skipped": result.errors,
        "skipped_by_stage": result.errors_by_stage,
        "skipped_by_reason": result.errors_by_reason,
        "chunks_run_this_time": result.chunks_run,
        "entries_screened_this_time": result.processed,
        "entries_per_second_this_time": round(result.per_second, 1),
        "seconds_per_stage_this_time": {k: round(v, 2) for k, v in result.stage_seconds.items()},
        "wall_seconds_this_time": round(result.wall_seconds, 2),
    }


def _result(future):
    """A finished chunk's result; a chunk that failed as a whole (not an entry: a bug, a lost
    worker) stops the screen with one line; it is not committed, so a rerun repeats it."""
    try:
        return future.result()
    except Exception as error:
        detail = " ".join(str(error).split())[:300]
        raise RuntimeError(
            f"a chunk failed ({type(error).__name__}: {detail}); the chunks committed so far "
            "are kept, and the same command continues"
        ) from error


@contextmanager
def _local_engine(spec: ScreenSpec, files: list[ModelFile]):
    """Chunks in ``spec.workers`` spawned processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        spec.workers, mp_context=context, initializer=_leave_with_parent, initargs=(os.getpid(),)
    ) as pool:
        yield _LocalEngine(pool, spec.workers, files)


class _LocalEngine:
    """The local engine (see :class:`_DaskEngine` for the same two methods on a cluster)."""

    def __init__(self, pool, workers: int, files: list[ModelFile]):
        self.pool, self.workers, self.files = pool, workers, files

    def check(self) -> None:
        """Build the models in the workers: a bad model fails (with its own message) before the
        output folder is touched, the main process never loads torch, and every worker has
        started (imports, models) before the first chunk."""
        for started in [self.pool.submit(check_models, self.files) for _ in range(self.workers)]:
            started.result()

    def results(self, work, options: ScreenOptions) -> Iterator:
        """At most 2 chunks per worker in flight; results in the order they finish."""
        from concurrent.futures import FIRST_COMPLETED, wait

        running = set()
        for number, entries in itertools.chain(work, [(None, None)]):
            if number is not None:
                running.add(self.pool.submit(screen_chunk, number, entries, self.files, options))
            while running and (number is None or len(running) >= 2 * self.workers):
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield _result(future)
                if number is not None:
                    break


def _leave_with_parent(parent: int) -> None:
    """In a worker: exit as soon as the screen's main process is gone (killed with SIGKILL,
    it cannot stop its workers; an orphan would hold the terminal and the CPU)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="zoo-parent-watch").start()


SCHEDULER_CONNECT_SECONDS = 10
"""How long ``zoo screen --scheduler`` tries to reach the scheduler."""


@contextmanager
def _dask_engine(spec: ScreenSpec, files: list[ModelFile]):
    """The same chunks as tasks on a Dask cluster (``spec.scheduler``, or a local cluster of
    ``spec.workers`` single-threaded worker processes); the model files travel as bytes."""
    from dask.distributed import Client, LocalCluster

    cluster = None
    if spec.scheduler is None:
        cluster = LocalCluster(
            n_workers=spec.workers, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None,
        )  # fmt: skip
    try:
        client = Client(spec.scheduler or cluster, timeout=SCHEDULER_CONNECT_SECONDS)
    except OSError as error:
        if cluster is not None:
            cluster.close()
        raise ValueError(
            f"cannot reach the Dask scheduler {spec.scheduler} in {SCHEDULER_CONNECT_SECONDS} s "
            f"({' '.join(str(error).split())[:200]})"
        ) from None
    try:
        shipped = [ModelFile(f.spec, f.digest, None, Path(f.path).read_bytes()) for f in files]
        yield _DaskEngine(client, client.scatter(shipped, broadcast=True), spec.workers)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _DaskEngine:
    def __init__(self, client, models, workers: int):
        self.client, self.models, self.workers = client, models, workers

    def check(self) -> None:
        """As :meth:`_LocalEngine.check`, on a worker of the cluster."""
        self.client.submit(check_models, self.models, pure=False).result()

    def results(self, work, options: ScreenOptions) -> Iterator:
        """At most 2 tasks per worker in flight; results in the order they finish."""
        from dask.distributed import as_completed

        pending = as_completed()
        for number, entries in work:
            task = self.client.submit(screen_chunk, number, entries, self.models, options,
                                      pure=False)  # fmt: skip
            pending.add(task)
            if pending.count() >= 2 * self.workers:
                yield _result(next(pending))
        for future in pending:
            yield _result(future)
