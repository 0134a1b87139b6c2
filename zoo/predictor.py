"""The prediction stage: a model built once from a bundle, fed any number of batches.

``zoo predict``, the registry's pyfunc model and the Python API all predict through
:class:`Predictor`, so a structure gets the same number (and the same reason when it cannot get
one) whichever way it comes in::

    predictor = Predictor(zoo.load_bundle("runs/<run>/model.zoo.pt"))  # zoo.load_model wraps it
    table = predictor.predict(ids, structures)                 # again and again
"""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial

import numpy as np
import pandas as pd
import torch

from zoo import names
from zoo.bundle import ModelBundle
from zoo.domain import FEW_NEIGHBORS
from zoo.graphs import usable_graphs
from zoo.processes import map_forked
from zoo.progress import CountBar

MAX_BATCH_ATOMS = 4096
"""Most atoms in one batch of :meth:`Predictor.batches` (128 crystals of 32 atoms). It bounds
the largest activations: for ``cgcnn-angle-global``, about 34 angle pairs per atom times 64
floats per pair per tensor. Measured once by hand (peak PSS per worker of ``zoo screen`` on
6,000 structures of 37 atoms, 2 workers): 8,192 atoms, 0.95 GB; 4,096, 0.72 GB; 2,048, 0.58
GB; the same speed within 5%. The end-to-end effect is in docs/benchmarks.md, issue 17."""


def predict_normalised(
    model, store, indices=None, batch_size: int = 256, progress: bool = False
) -> torch.Tensor:
    """Model output ``(n, T)`` for the graphs of ``store`` at ``indices`` (default: all), in
    that order (eval mode, no grad)."""
    indices = torch.arange(len(store)) if indices is None else torch.as_tensor(indices)
    model.eval()
    outputs = []
    starts = range(0, len(indices), batch_size)
    with torch.no_grad():
        for start in CountBar(starts, desc="predicting", unit="batches", disable=not progress):
            outputs.append(model(store.batch(indices[start : start + batch_size])))
    return torch.cat(outputs) if outputs else torch.zeros(0, model.n_outputs)


class Predictor:
    """A bundle's model, built once, in eval mode.

    Attributes:
        bundle: the model bundle.
        targets: the moduli it predicts (``shear``, ``bulk``).
        graph_settings: how its graphs are built.
        columns: the columns of every table :meth:`predict` returns.
    """

    def __init__(self, bundle: ModelBundle, *, batch_size: int = 256, workers: int = 1):
        self.bundle = bundle
        self.model = bundle.build_model()
        self.model.eval()
        self.targets = list(bundle.transform.targets)
        self.graph_settings = bundle.graph_settings
        self.columns = [*names.prediction_columns(self.targets), FEW_NEIGHBORS]
        self.batch_size, self.workers = batch_size, workers

    def predict(
        self,
        ids: list[str],
        structures: list,
        *,
        skip_bad: bool = True,
        cache_dir=False,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Moduli for ``structures``: :attr:`columns` (``id``, ``<target>_gpa``,
        ``<target>_log10`` per target, ``error``), one row per input in input order. A
        structure that cannot be predicted gets its one-line reason and NaN, or, without
        ``skip_bad``, raises its :class:`~zoo.errors.BadInputError`."""
        store, skipped = self.graphs(ids, structures, skip_bad, cache_dir, progress)
        log10 = self.predict_graphs(store, progress) if store is not None else None
        rows = {entry: {names.ID: entry, names.ERROR: ""} for entry in ids}
        for entry, reason in skipped.items:
            rows[entry][names.ERROR] = reason
        if store is not None:
            for entry, few in zip(store.ids, store.few_neighbors(), strict=True):
                rows[entry][FEW_NEIGHBORS] = bool(few)
            for row, entry in enumerate(store.ids):
                for column, target in enumerate(self.targets):
                    rows[entry][names.log10(target)] = float(log10[row, column])
                    rows[entry][names.gpa(target)] = float(10.0 ** log10[row, column])
        table = pd.DataFrame([rows[entry] for entry in ids], columns=self.columns)
        table[FEW_NEIGHBORS] = table[FEW_NEIGHBORS].astype("boolean")
        return table

    def graphs(self, ids, structures, skip_bad=True, cache_dir=False, progress=False):
        """``(store, skipped)``: the graphs this model reads (None if no structure is usable)
        and the entries that have none, with their reasons."""
        return usable_graphs(
            ids,
            structures,
            self.graph_settings,
            self.model.elements.known,
            skip_bad=skip_bad,
            workers=self.workers,
            cache_dir=cache_dir,
            progress=progress,
        )

    def graph_key(self) -> tuple:
        """Models with equal keys read the same graphs (an ensemble builds them once)."""
        return (self.graph_settings.model_dump_json(), self.model.elements.known.numpy().tobytes())

    def predict_graphs(self, store, progress: bool = False):
        """log10 GPa predictions, float64 numpy ``(len(store), T)``, in store order."""
        with prediction_bar(len(store), progress) as bar:
            return predict_in_workers([self], store, self.workers, bar)[0]

    def batches(self, store, rows: range | None = None):
        """The store's graphs (at ``rows``, default all) as batched DGL graphs, in order, one
        at a time: at most :attr:`batch_size` crystals and :data:`MAX_BATCH_ATOMS` atoms each
        (a batch of large cells would otherwise hold the biggest activations), each built once
        for every member of an ensemble (:meth:`predict_batch`)."""
        sizes = store.num_nodes.numpy()
        rows = rows if rows is not None else range(len(store))
        start, end = rows.start, rows.stop
        while start < end:
            stop, atoms = start, 0
            while stop < end and stop - start < self.batch_size:
                if stop > start and atoms + sizes[stop] > MAX_BATCH_ATOMS:
                    break
                atoms += sizes[stop]
                stop += 1
            yield store.batch(torch.arange(start, stop))
            start = stop

    def predict_batch(self, graph):
        """log10 GPa ``(b, T)`` for one batched graph from :meth:`batches` (the same numbers
        as :meth:`predict_graphs` on its store)."""
        with torch.no_grad():
            output = self.model(graph)
        return self.bundle.transform.to_log10(output.double()).numpy()


def prediction_bar(total: int, progress: bool) -> CountBar:
    """The one bar of a prediction, counting structures (``1,000/2,000 structures``)."""
    return CountBar(total=total, desc="predicting", unit="structures", disable=not progress)


def predict_members(
    predictors: list[Predictor], store, bar=None, clock=None, rows: range | None = None
) -> np.ndarray:
    """log10 GPa, float64 ``(M, len(rows), T)``: each of the ``M`` predictors (all reading the
    same graphs: equal :meth:`Predictor.graph_key`) on the graphs of ``store`` at ``rows``
    (default: all), in order. Each batch (:meth:`Predictor.batches`) is built once and read
    by every predictor, one batch in memory at a time. ``bar`` is advanced by the structures
    of each batch; ``clock(stage)``, a context manager, times the stages ``graphs`` and
    ``inference``. The one prediction loop of ``zoo predict``, ensembles, the served model
    and ``zoo screen``."""
    clock = clock or (lambda stage: nullcontext())
    parts = [np.zeros((len(predictors), 0, len(predictors[0].targets)))]
    batches = predictors[0].batches(store, rows)
    while True:
        with clock("graphs"):
            graph = next(batches, None)
        if graph is None:
            break
        with clock("inference"):
            parts.append(np.stack([p.predict_batch(graph) for p in predictors]))
        if bar is not None:
            bar.update(graph.batch_size)
    return np.concatenate(parts, axis=1)


PARALLEL_PREDICT = 256
"""Fewest graphs :func:`predict_in_workers` shares out among worker processes."""
WORKER_ROWS = 128
"""Graphs per piece of work a worker takes (and per step of the progress bar)."""


def predict_in_workers(predictors: list[Predictor], store, workers: int, bar=None) -> np.ndarray:
    """:func:`predict_members` over all of ``store``, shared among ``workers`` forked
    processes of one torch thread each (the way ``zoo screen``'s workers run: on 2 cores,
    faster than one process with 2 threads); the same numbers to float32 rounding. One
    worker, or fewer than :data:`PARALLEL_PREDICT` graphs: in this process."""
    if workers <= 1 or len(store) < PARALLEL_PREDICT:
        return predict_members(predictors, store, bar)
    pieces = [range(start, min(start + WORKER_ROWS, len(store)))
              for start in range(0, len(store), WORKER_ROWS)]  # fmt: skip
    done = (lambda part: bar.update(part.shape[1])) if bar is not None else None
    parts = map_forked(partial(_predict_piece, predictors, store), pieces, workers, done)
    return np.concatenate(parts, axis=1)


def _predict_piece(predictors, store, rows: range) -> np.ndarray:
    """A worker's piece of :func:`predict_in_workers` (in a forked process: one thread)."""
    torch.set_num_threads(1)
    return predict_members(predictors, store, rows=rows)


def predict_structures(
    bundle: ModelBundle,
    ids: list[str],
    structures: list,
    *,
    batch_size: int = 256,
    skip_bad: bool = True,
    workers: int = 1,
    cache_dir=False,
    progress: bool = False,
) -> pd.DataFrame:
    """One-off :meth:`Predictor.predict` (builds the model for this call only)."""
    predictor = Predictor(bundle, batch_size=batch_size, workers=workers)
    return predictor.predict(
        ids, structures, skip_bad=skip_bad, cache_dir=cache_dir, progress=progress
    )
