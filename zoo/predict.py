"""Predict moduli with a model bundle for any structures."""

from __future__ import annotations

import math

import pandas as pd
import torch
from tqdm import tqdm

from zoo.bundle import ModelBundle
from zoo.errors import BadInputError
from zoo.graph_store import build_store


def predict_normalised(model, store, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Model output ``(n, T)`` for every graph of ``store``, in order (eval mode, no grad)."""
    model.eval()
    outputs = []
    starts = range(0, len(store), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc="predicting", unit="batch", disable=not progress):
            indices = range(start, min(start + batch_size, len(store)))
            outputs.append(model(store.batch(indices)))
    return torch.cat(outputs) if outputs else torch.zeros(0, model.n_outputs)


def check_elements(ids, atomic_numbers_per_entry, known: torch.Tensor):
    """First entry holding an element without features, as a :class:`BadInputError`, or None."""
    for entry, numbers in zip(ids, atomic_numbers_per_entry, strict=True):
        missing = sorted({int(z) for z in numbers if z > len(known) - 1 or not known[z]})
        if missing:
            from pymatgen.core import Element

            names = ", ".join(Element.from_Z(z).symbol for z in missing)
            return BadInputError(entry, f"no element features for {names}")
    return None


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
    known = model.elements.known
    errors: dict[str, str] = {}
    usable_ids, usable = [], []
    for entry, structure in zip(ids, structures, strict=True):
        problem = check_elements([entry], [structure.atomic_numbers], known)
        if problem is not None:
            if not skip_bad:
                raise problem
            errors[entry] = problem.reason
        else:
            usable_ids.append(entry)
            usable.append(structure)
    rows = {entry: {} for entry in ids}
    if usable:
        store, skipped = build_store(
            usable_ids,
            usable,
            bundle.graph_settings,
            workers=workers,
            cache_dir=cache_dir,
            skip_bad=skip_bad,
            progress=progress,
        )
        errors.update(dict(skipped.items))
        output = predict_normalised(model, store, batch_size, progress=progress)
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
