"""The prediction stage: a model built once from a bundle, fed any number of batches.

``zoo predict``, the registry's pyfunc model and the Python API all predict through
:class:`Predictor`, so a structure gets the same number (and the same reason when it cannot get
one) whichever way it comes in::

    predictor = Predictor(zoo.load_bundle("runs/<run>/model.zoo.pt"))  # zoo.load_model wraps it
    table = predictor.predict(ids, structures)                 # again and again
"""

from __future__ import annotations

import pandas as pd
import torch

from zoo import names
from zoo.bundle import ModelBundle
from zoo.domain import FEW_NEIGHBORS
from zoo.graphs import usable_graphs
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
        output = predict_normalised(self.model, store, None, self.batch_size, progress)
        return self.bundle.transform.to_log10(output.double()).numpy()

    def batches(self, store):
        """The store's graphs as batched DGL graphs, in order, one at a time: at most
        :attr:`batch_size` crystals and :data:`MAX_BATCH_ATOMS` atoms each (a batch of large
        cells would otherwise hold the biggest activations), each built once for every member
        of an ensemble (:meth:`predict_batch`)."""
        sizes = store.num_nodes.numpy()
        start = 0
        while start < len(store):
            stop, atoms = start, 0
            while stop < len(store) and stop - start < self.batch_size:
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
