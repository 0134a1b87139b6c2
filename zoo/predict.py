"""Predict moduli with a model bundle for any structures."""

from __future__ import annotations

import math

import pandas as pd
import torch
from tqdm import tqdm

from zoo.bundle import ModelBundle
from zoo.dataset import check_structure
from zoo.errors import BadInputError, SkipReport
from zoo.graph_store import GraphStore, build_store


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
        for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
            outputs.append(model(store.batch(indices[start : start + batch_size])))
    return torch.cat(outputs) if outputs else torch.zeros(0, model.n_outputs)


def check_elements(entry: str, atomic_numbers, known) -> BadInputError | None:
    """The error for an entry holding an element without features (``known``: bool
    ``(MAX_Z + 1,)`` by atomic number), or None."""
    missing = sorted({int(z) for z in atomic_numbers if z > len(known) - 1 or not known[z]})
    if not missing:
        return None
    from pymatgen.core import Element

    names = ", ".join(Element.from_Z(z).symbol for z in missing)
    return BadInputError(entry, f"no element features for {names}")


def usable_graphs(
    ids: list[str],
    structures: list,
    settings,
    known,
    *,
    skip_bad: bool,
    workers: int = 1,
    cache_dir=None,
    progress: bool = False,
) -> tuple[GraphStore | None, SkipReport]:
    """Graphs of the entries that pass :func:`zoo.dataset.check_structure` (structures may come
    from a reader or straight from the caller), whose elements all have features and whose
    graphs can be built.

    Bad entries raise their :class:`BadInputError`, or with ``skip_bad`` are left out and
    reported. The store is None when no entry passes the element check.
    """
    skipped = SkipReport()
    usable_ids, usable = [], []
    for entry, structure in zip(ids, structures, strict=True):
        try:
            check_structure(entry, structure)
            problem = check_elements(entry, structure.atomic_numbers, known)
        except BadInputError as error:
            problem = error
        if problem is None:
            usable_ids.append(entry)
            usable.append(structure)
        elif skip_bad:
            skipped.add(problem)
        else:
            raise problem
    if not usable:
        return None, skipped
    store, graph_skips = build_store(
        usable_ids,
        usable,
        settings,
        workers=workers,
        cache_dir=cache_dir,
        skip_bad=skip_bad,
        progress=progress,
    )
    skipped.items.extend(graph_skips.items)
    return store, skipped


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
    """Moduli for ``structures``: a table with ``id``, ``<target>_gpa``, ``<target>_log10`` and
    ``error`` (the reason an entry could not be predicted, empty otherwise), in input order."""
    model = bundle.build_model()
    store, skipped = usable_graphs(
        ids,
        structures,
        bundle.graph_settings,
        model.elements.known,
        skip_bad=skip_bad,
        workers=workers,
        cache_dir=cache_dir,
        progress=progress,
    )
    errors = dict(skipped.items)
    rows = {entry: {} for entry in ids}
    if store is not None:
        output = predict_normalised(model, store, batch_size=batch_size, progress=progress)
        log10 = bundle.transform.to_log10(output.double()).numpy()
        for row, entry in enumerate(store.ids):
            for column, target in enumerate(bundle.transform.targets):
                rows[entry][f"{target}_log10"] = float(log10[row, column])
                rows[entry][f"{target}_gpa"] = float(10.0 ** log10[row, column])
    table = []
    for entry in ids:
        record = {"id": entry}
        for target in bundle.transform.targets:
            record[f"{target}_gpa"] = rows[entry].get(f"{target}_gpa", math.nan)
            record[f"{target}_log10"] = rows[entry].get(f"{target}_log10", math.nan)
        record["error"] = errors.get(entry, "")
        table.append(record)
    return pd.DataFrame(table)
