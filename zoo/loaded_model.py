"""``zoo.load_model``: a trained model (or ensemble) ready to predict, from any spec.

::

    import zoo
    model = zoo.load_model("models:/cgcnn-shear@champion")   # or a *.zoo.pt path, runs:/...
    model = zoo.load_model("zoo-elastic-mp2024")             # a shipped pretrained model
    model.predict(structure)          # a dict for one Structure, Atoms, dict or CIF text
    model.predict([s1, s2, cif_text]) # a DataFrame, one row per input
    model.predict_path("structures/") # a DataFrame, one row per entry of a file or folder
    model.predict(["a.cif", "b.vasp"], allow_paths=True)   # paths, only when asked for
    model.targets, model.graph_settings, model.info()

Every row has each target in GPa (``shear_gpa``) and log10 GPa (``shear_log10``) and
``error``, the one-line reason when a structure could not be predicted (then the numbers are
NaN); an ensemble adds its spread columns. ``zoo predict`` and the registry's pyfunc model
predict through this same object.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from zoo import names
from zoo.domain import FEW_NEIGHBORS, FLAG_COLUMNS, any_flag, flag_table, merge_domains
from zoo.readers.structures import parse_structure
from zoo.resolve import predictor_for, registry_version, resolve_model


class LoadedModel:
    """A bundle or ensemble with its predictor (see the module docstring).

    Attributes:
        source: the spec it was loaded from.
        version: the registry version it resolved to (``models:/`` specs), else None.
        targets: the moduli it predicts.
        graph_settings: how it builds graphs (of the first member, for an ensemble).
        columns: the columns of every table :meth:`predict` returns.
    """

    def __init__(self, loaded, source: str, version: str | None = None, **options):
        self.loaded, self.source, self.version = loaded, source, version
        self.predictor = predictor_for(loaded, **options)
        self.targets = list(self.predictor.targets)
        self.graph_settings = self.predictor.graph_settings
        self.domain = training_domain_of(loaded)
        predicted = [c for c in self.predictor.columns if c != FEW_NEIGHBORS]
        self.columns = [*predicted, *FLAG_COLUMNS, "flagged"]

    def predict(self, x, *, allow_paths: bool = False, progress: bool = False):
        """Moduli for ``x``: one structure (a dict of columns back) or a list of them (a
        DataFrame, one row each in order). A structure is what
        :func:`~zoo.readers.structures.parse_structure` takes: a ``Structure``, ASE ``Atoms``,
        a structure dict, CIF or POSCAR text; a file path only with ``allow_paths=True`` (a
        folder or data set: :meth:`predict_path`). Code that passes on data from elsewhere
        leaves ``allow_paths`` off, so that data never makes it read a file."""
        if _is_one_structure(x):
            row = self.predict([x], allow_paths=allow_paths).iloc[0].to_dict()
            return {key: row[key] for key in self.first_keys() if key in row} | row
        items = list(x)
        ids = [str(v) if isinstance(v, Path) else str(n) for n, v in enumerate(items)]
        if allow_paths:
            ids = [str(v) if isinstance(v, str | Path) and "\n" not in str(v) else i
                   for v, i in zip(items, ids, strict=True)]  # fmt: skip
        loaders = [partial(parse_structure, item, allow_paths=allow_paths) for item in items]
        return self.predict_entries(ids, loaders, progress=progress)

    def first_keys(self) -> list[str]:
        """The keys a single-structure :meth:`predict` gives first: per target the modulus in
        GPa and, for an ensemble, its ±1σ interval (``shear_gpa``, ``shear_gpa_low``,
        ``shear_gpa_high``), then ``error`` and ``flagged``; the rest (``id``, log10 values,
        spreads, each flag) follow in table order."""
        from zoo.ensemble import interval_columns

        first = []
        for target in self.targets:
            first += [names.gpa(target), *interval_columns(target)]
        return [*first, names.ERROR, "flagged"]

    def predict_path(self, path, *, strict: bool = False, progress: bool = False):
        """Every entry of a structure file, folder or data set (targets ignored), parsed and
        made into graphs by the predictor's ``workers`` processes."""
        from zoo.readers import read_dataset

        workers = self.predictor.workers
        dataset = read_dataset(path, skip_bad=not strict, with_targets=False, workers=workers)
        table = self.predict_structures(
            dataset.ids, dataset.structures, skip_bad=not strict, progress=progress
        )
        unread = pd.DataFrame(
            {names.ID: [e for e, _ in dataset.skipped.items],
             names.ERROR: [r for _, r in dataset.skipped.items]}
        )  # fmt: skip
        return pd.concat([table, unread], ignore_index=True)[self.columns]

    def predict_structures(self, ids, structures, *, skip_bad=True, progress=False):
        """The predictor's table for structures already read (one row each, in order), with
        the applicability flags ``zoo screen`` writes (:data:`zoo.domain.FLAG_COLUMNS`: those
        of :func:`zoo.domain.flag_table` and the graphs' ``flag_few_neighbors``) and
        ``flagged``, any of them; all missing on a row that could not be predicted."""
        table = self.predictor.predict(ids, structures, skip_bad=skip_bad, progress=progress)
        predicted = (table[names.ERROR] == "").to_numpy()
        atoms = [np.asarray(s.atomic_numbers) if ok else None
                 for s, ok in zip(structures, predicted, strict=True)]  # fmt: skip
        volumes = [s.volume for s in structures]
        flags = flag_table(self.domain, atoms, volumes)
        joined = pd.concat([table.reset_index(drop=True), flags], axis=1)
        joined["flagged"] = pd.array(any_flag(joined, FLAG_COLUMNS), dtype="boolean")
        joined.loc[~predicted, "flagged"] = pd.NA
        return joined[self.columns]

    def predict_entries(self, ids: list[str], loaders: list, *, progress=False) -> pd.DataFrame:
        """One row per id, in order. ``loaders[i]()`` reads entry i's structure; a failure
        there or in the structure checks is that row's one-line reason (and NaN); the others
        are predicted. What the Python API and the served model both use."""
        from zoo.dataset import DatasetBuilder

        builder = DatasetBuilder("model input", [], skip_bad=True)
        for entry, load in zip(ids, loaders, strict=True):
            builder.add(entry, load, {})
        predicted = self.predict_structures(builder.ids, builder.structures, progress=progress)
        unread = pd.DataFrame(
            {names.ERROR: [reason for _, reason in builder.skipped.items]},
            index=pd.Index([entry for entry, _ in builder.skipped.items], name=names.ID),
        )
        joined = pd.concat([predicted.set_index(names.ID), unread]).reindex(ids)
        return joined.rename_axis(names.ID).reset_index()[self.columns]

    def info(self) -> dict:
        """What the model is: source, registry version, variant(s), targets, graph settings,
        training data (``name``, ``path``, ``description``) and metrics, package versions
        (members' for an ensemble). ``metrics``: a model's own; for a shipped ensemble its
        record's test MAE; for another ensemble the mean of its members' (``metrics_of``
        says which)."""
        from zoo.ensemble import Ensemble

        members = self.loaded.members if isinstance(self.loaded, Ensemble) else [self.loaded]
        first = members[0]
        metrics, metrics_of = _metrics(self.source, members)
        return {
            "source": self.source,
            "registry_version": self.version,
            "kind": "ensemble" if len(members) > 1 else "model",
            "models": sorted({m.model_name for m in members}),
            "members": len(members),
            "targets": self.targets,
            "graph_settings": self.graph_settings.model_dump(),
            "train_data": _train_data(self.source, first),
            "metrics": metrics,
            "metrics_of": metrics_of,
            "calibration": getattr(self.loaded, "calibration", None),
            "versions": first.versions,
        }

    def __repr__(self) -> str:
        version = f" (version {self.version})" if self.version else ""
        return f"LoadedModel({self.source}{version}: {', '.join(self.targets)})"


def _metrics(source: str, members: list) -> tuple[dict | None, str]:
    """The metrics :meth:`LoadedModel.info` gives, and what they are of."""
    from zoo import pretrained

    if len(members) == 1:
        return members[0].metrics, "the model"
    if pretrained.is_pretrained(source):
        record = pretrained.record(source)
        test = {f"test_{t}_mae_log10": v for t, v in record["test_mae_log10"].items()}
        return test, f"the shipped ensemble, on {record['test_split']}"
    shared = set.intersection(*(set(m.metrics or {}) for m in members))
    numbers = [k for k in sorted(shared) if all(isinstance(m.metrics[k], float) for m in members)]
    mean = {k: sum(m.metrics[k] for m in members) / len(members) for k in numbers}
    return mean or None, f"the mean of the {len(members)} members' own"


def _train_data(source: str, first) -> dict:
    """What the model was trained on (:attr:`ModelBundle.train_data`), with a description
    where one is known (a shipped model's record)."""
    from zoo import pretrained

    described = (
        pretrained.record(source)["training_data"] if pretrained.is_pretrained(source) else None
    )
    return {**first.train_data, "description": described}


def training_domain_of(loaded) -> dict | None:
    """The training domain of a bundle, or the union of an ensemble's members' (None when a
    model has none recorded: a format-1 bundle)."""
    from zoo.ensemble import Ensemble

    members = loaded.members if isinstance(loaded, Ensemble) else [loaded]
    domains = [m.training_domain for m in members]
    return None if None in domains else merge_domains(domains)


def load_model(spec: str | Path, **options) -> LoadedModel:
    """A :class:`LoadedModel` from a bundle or ensemble path, a pretrained name
    (:mod:`zoo.pretrained`), ``models:/NAME@ALIAS``, ``models:/NAME/VERSION`` or
    ``runs:/RUN_ID/PATH``. ``options``: ``batch_size``,
    ``workers``."""
    text = str(spec)
    return LoadedModel(resolve_model(text), text, registry_version(text), **options)


def _is_one_structure(value) -> bool:
    """One structure rather than a list of them (text and paths are one structure each)."""
    from ase import Atoms
    from pymatgen.core import Structure

    return isinstance(value, Structure | Atoms | dict | str | Path)
