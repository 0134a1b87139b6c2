"""One chunk of a screen, start to finish, in whichever process runs it: raw entries ->
structures -> neighbour arrays -> graphs -> every model's predictions -> derived properties and
applicability flags -> one table (and the entries that could not be used, with reasons).

The local engine runs :func:`screen_chunk` in worker processes, the Dask engine as tasks on a
cluster: the same function, so the two give the same numbers. The models are built once per
process (:func:`screen_models`, cached by the model files' digests).

Seconds are kept per stage (:data:`STAGES`): ``reading`` (parsing and structure checks),
``neighbours`` (the neighbour search and each structure's edge and angle arrays), ``graphs``
(the graph store and its batched DGL graphs, one batch at a time, each built once per model and
read by all its members), ``inference`` (every member's forward passes), ``derived`` (derived
properties, flags, the table).

Columns of the table, in order: ``id``, ``formula``, ``n_sites``, ``density_g_cm3``,
``volume_per_atom_a3``; per target ``<t>_gpa``, ``<t>_log10`` (and for an ensemble
``<t>_std_log10``, ``<t>_gpa_low``, ``<t>_gpa_high``); with both moduli the derived columns of
:mod:`zoo.derived` (each with ``*_std`` where members give a spread), ``ductility``,
``hardness_note``; the flags of :data:`FLAG_COLUMNS`, ``flagged``, and ``warnings`` (what the
parser warned about this structure).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from zoo import derived, names
from zoo.dataset import TARGETS
from zoo.domain import (
    FLAG_COLUMNS,
    MANY_ATOMS,
    any_flag,
    density_g_cm3,
    flag_table,
    merge_domains,
)
from zoo.errors import BadInputError

STAGES = ("reading", "neighbours", "graphs", "inference", "derived")
ERROR_COLUMNS = ["id", "stage", "reason"]


@dataclass
class ModelFile:
    """A model as a worker receives it: its spec, a local file (or its bytes) and digest."""

    spec: str
    digest: str
    path: str | None = None
    content: bytes | None = None


@dataclass
class ChunkResult:
    """What one chunk gives: its number, the table, the errors, seconds per stage."""

    number: int
    table: pd.DataFrame
    errors: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Source:
    """One target's source among the screen's models: the model's number, the column of this
    target in its output, the spread scale (1 for a single model), whether it is an ensemble."""

    model: int
    column: int
    scale: float
    ensemble: bool


class ScreenModels:
    """The screen's models, built once: which model gives which target, the graph settings
    each needs, the merged training domain."""

    def __init__(self, loaded: list):
        from zoo.ensemble import Ensemble
        from zoo.predictor import Predictor

        self.sources: dict[str, _Source] = {}
        self.members: list[list[Predictor]] = []
        domains = []
        for number, model in enumerate(loaded):
            bundles = model.members if isinstance(model, Ensemble) else [model]
            predictors = [Predictor(bundle) for bundle in bundles]
            self.members.append(predictors)
            domains += [bundle.training_domain for bundle in bundles]
            for column, target in enumerate(predictors[0].targets):
                if target in self.sources:
                    raise ValueError(f"two models predict {target}: give each target one model")
                scale = model.scale[target] if isinstance(model, Ensemble) else 1.0
                ensemble = isinstance(model, Ensemble)
                self.sources[target] = _Source(number, column, scale, ensemble)
        self.targets = [t for t in TARGETS if t in self.sources]
        self.settings = {p.graph_key(): p.graph_settings for ps in self.members for p in ps}
        self.domain = None if None in domains else merge_domains(domains)


_CACHE: dict[tuple, ScreenModels] = {}


def screen_models(files: list[ModelFile]) -> ScreenModels:
    """The models of ``files``, built on the first call in this process and reused after."""
    from zoo.ensemble import load_model_file

    key = tuple(f.digest for f in files)
    if key not in _CACHE:
        import torch

        from zoo.malloc import keep_freed_memory

        torch.set_num_threads(1)
        keep_freed_memory()
        loaded = [load_model_file(_local_file(model)) for model in files]
        _CACHE.clear()
        _CACHE[key] = ScreenModels(loaded)
    return _CACHE[key]


def check_models(files: list[ModelFile]) -> None:
    """Build the models of ``files`` in this worker (kept for its chunks): a bad model file,
    or two models for one target, raises here with its one-line message."""
    screen_models(files)


def _local_file(model: ModelFile) -> str:
    """The model's file here: its path, or its bytes written once to this machine's temp dir
    (a Dask worker on another machine gets the bytes, not a path it cannot see)."""
    import tempfile
    from pathlib import Path

    if model.content is None:
        return str(model.path)
    local = Path(tempfile.gettempdir()) / f"zoo-screen-{model.digest[:16]}.zoo.pt"
    if not local.exists():
        from zoo.files import atomic_write

        with atomic_write(local) as partial:
            Path(partial).write_bytes(model.content)
    return str(local)


@dataclass
class ScreenOptions:
    """What a chunk is told besides its entries."""

    max_atoms: int = MANY_ATOMS
    """``flag_many_atoms`` above this many atoms per cell."""
    batch_size: int = 256


def screen_chunk(number: int, entries: list, files: list[ModelFile], options: ScreenOptions):
    """Screen one chunk of raw :class:`~zoo.readers.registry.Entry` values (see the module
    docstring). Returns a :class:`ChunkResult`; nothing an entry does stops the chunk."""
    models = screen_models(files)
    clock = _Clock()
    with clock("reading"):
        read, errors = _read(entries)
    with clock("neighbours"):
        arrays = _neighbours(read, models, errors)
    usable = [e for e in read if all(e in arrays[key] for key in models.settings)]
    with clock("graphs"):
        stores = _stores(usable, arrays, models, errors)
    members = _predict(models, stores, clock)
    kept = [e for e in usable if all(e in position for _, position in stores)]
    with clock("derived"):
        table = _table(kept, read, arrays, members, stores, models, options)
    error_table = pd.DataFrame(errors, columns=ERROR_COLUMNS)
    return ChunkResult(number, table, error_table, clock.seconds)


class _Clock:
    """Seconds spent per stage: ``with clock("reading"): ...``."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def __call__(self, stage: str):
        from contextlib import contextmanager

        @contextmanager
        def timed():
            start = time.perf_counter()
            yield
            self.seconds[stage] += time.perf_counter() - start

        return timed()


def _read(entries: list) -> tuple[dict, list]:
    """``{id: (structure, warnings text)}`` of the entries that read and pass the structure
    checks, in order, and ``[id, "reading", reason]`` for the others."""
    from zoo.dataset import DatasetBuilder

    builder = DatasetBuilder("screen input", [], skip_bad=True)
    caught: dict[str, str] = {}
    for entry in entries:
        if entry.problem is not None:
            builder.reject(BadInputError(entry.id, entry.problem))
            continue
        with warnings.catch_warnings(record=True) as raised:
            warnings.simplefilter("always")
            builder.add(entry.id, entry.load, {})
        text = "; ".join(dict.fromkeys(" ".join(str(w.message).split()) for w in raised))
        caught[entry.id] = text
    read = {e: (s, caught.get(e, "")) for e, s in zip(builder.ids, builder.structures, strict=True)}
    errors = [[e, "reading", reason] for e, reason in builder.skipped.items]
    return read, errors


def _neighbours(read: dict, models: ScreenModels, errors: list) -> dict:
    """``{graph key: {id: neighbour arrays}}``; a structure no graph can be built for goes to
    ``errors`` (once, with the first reason)."""
    from zoo.graphs.neighbors import neighbor_arrays

    arrays: dict = {key: {} for key in models.settings}
    failed: set[str] = set()
    for entry, (structure, _) in read.items():
        for key, settings in models.settings.items():
            try:
                arrays[key][entry] = neighbor_arrays(structure, settings, entry)
            except BadInputError as error:
                if entry not in failed:
                    errors.append([entry, "graph", error.reason])
                failed.add(entry)
    return arrays


def _stores(usable: list, arrays: dict, models: ScreenModels, errors: list) -> list:
    """Per model ``(store, position)``: the graph store of the entries whose elements it
    knows (None if none), and each such id's row in it (the others go to ``errors`` once,
    naming the elements)."""
    from zoo.graphs.build import check_elements
    from zoo.graphs.store import GraphStore

    stores, refused = [], set()
    for predictors in models.members:
        first = predictors[0]
        key = first.graph_key()
        ok = []
        for entry in usable:
            problem = check_elements(entry, arrays[key][entry]["Z"], first.model.elements.known)
            if problem is None:
                ok.append(entry)
            elif entry not in refused:
                refused.add(entry)
                errors.append([entry, "model", problem.reason])
        store = None
        if ok:
            store = GraphStore.from_arrays(ok, [arrays[key][e] for e in ok], first.graph_settings)
        stores.append((store, {entry: row for row, entry in enumerate(ok)}))
    return stores


def _predict(models: ScreenModels, stores: list, clock) -> dict[str, np.ndarray]:
    """Per target, log10 GPa of every member ``(M, n)`` in its model's store order, the spread
    scaled by the ensemble's calibration: member' = mean + scale (member - mean). Each model
    runs once, whatever number of targets it gives; each batch is built once (``graphs``) and
    read by every member (``inference``), one batch in memory at a time."""
    from zoo.predictor import predict_members

    outputs = []
    for predictors, (store, _) in zip(models.members, stores, strict=True):
        if store is None:
            outputs.append(np.zeros((len(predictors), 0, len(predictors[0].targets))))
        else:
            outputs.append(predict_members(predictors, store, clock=clock))
    members = {}
    for target, source in models.sources.items():
        values = outputs[source.model][:, :, source.column]
        mean = values.mean(axis=0, keepdims=True)
        members[target] = mean + source.scale * (values - mean)
    return members


def _table(kept, read, arrays, members, stores, models, options) -> pd.DataFrame:
    """The chunk's table (columns: the module docstring), one row per kept id, in input order."""
    key = next(iter(models.settings))
    columns: dict[str, object] = {names.ID: kept}
    structures = [read[e][0] for e in kept]
    atoms = [arrays[key][e]["Z"] for e in kept]
    volume = np.array([s.volume for s in structures])
    n_sites = np.array([len(z) for z in atoms])
    density = np.array([density_g_cm3(z, v) for z, v in zip(atoms, volume, strict=True)])
    columns["formula"] = [s.composition.reduced_formula for s in structures]
    columns["n_sites"], columns["density_g_cm3"] = n_sites, density
    columns["volume_per_atom_a3"] = volume / np.maximum(n_sites, 1)
    moduli = {}
    for target in models.targets:
        source = models.sources[target]
        rows = [stores[source.model][1][e] for e in kept]
        values = members[target][:, rows]
        moduli[target] = values
        columns.update(_target_columns(target, values, source.ensemble))
    if {"shear", "bulk"} <= set(moduli):
        columns.update(_derived_columns(moduli, density, n_sites, volume))
    columns.update(_flag_columns(kept, atoms, volume, stores, models, options))
    columns["warnings"] = [read[e][1] for e in kept]
    return pd.DataFrame(columns)


def _target_columns(target: str, values: np.ndarray, ensemble: bool) -> dict:
    """``<t>_gpa``, ``<t>_log10`` and, for an ensemble, the spread and ±1σ interval
    (:func:`zoo.ensemble.spread_columns`; ``values`` are already scaled members)."""
    from zoo.ensemble import spread_columns

    mean = values.mean(axis=0)
    if not ensemble:
        return {names.gpa(target): 10.0**mean, names.log10(target): mean}
    return spread_columns(target, mean, values.std(axis=0, ddof=1))


def _derived_columns(moduli: dict, density, n_sites, volume) -> dict:
    """The derived properties from the mean moduli, and each one's spread over the members
    (paired member by member; a single model's value pairs with every member of an ensemble;
    ensembles of different sizes cannot be paired and give no spread)."""
    shear, bulk = moduli["shear"], moduli["bulk"]
    g, k = 10.0 ** shear.mean(axis=0), 10.0 ** bulk.mean(axis=0)
    values = derived.derive(g, k, density, n_sites, volume)
    columns: dict[str, object] = dict(values)
    spread = None
    if max(len(shear), len(bulk)) > 1 and (len(shear) == len(bulk) or 1 in (len(shear), len(bulk))):
        spread = derived.derive(10.0**shear, 10.0**bulk, density, n_sites, volume)
    for name in derived.NUMERIC:
        if spread is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN members: NaN spread
                columns[f"{name}_std"] = np.nanstd(spread[name], axis=0, ddof=1)
    columns["ductility"] = derived.ductility(values["pugh_ratio"])
    columns["hardness_note"] = derived.hardness_note(g, k)
    return columns


def _flag_columns(kept, atoms, volume, stores, models, options) -> dict:
    """The applicability flags (:data:`FLAG_COLUMNS`) and ``flagged`` (any of them): those of
    :func:`zoo.domain.flag_table` and ``flag_few_neighbors`` from the graphs (any model's
    store, :meth:`~zoo.graphs.store.GraphStore.few_neighbors`, as ``zoo predict`` reads it)."""
    flags = flag_table(models.domain, list(atoms), list(volume), options.max_atoms)
    few = np.zeros(len(kept), dtype=bool)
    for store, row_of in stores:
        if store is not None:
            per_crystal = store.few_neighbors()
            few |= np.array([per_crystal[row_of[entry]] for entry in kept], dtype=bool)
    flags["flag_few_neighbors"] = pd.array(few, dtype="boolean")
    columns = {name: flags[name].array for name in FLAG_COLUMNS}
    columns["flagged"] = any_flag(flags, FLAG_COLUMNS)
    return columns


def flag_set(table: pd.DataFrame, name: str) -> np.ndarray:
    """bool ``(n,)``: where the flag column ``name`` of a screen table is set (for
    ``flag_unseen_elements``: a non-empty list of symbols; missing values: not set)."""
    return any_flag(table, [name])
