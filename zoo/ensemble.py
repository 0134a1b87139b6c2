"""Ensembles: several trained models as one, predicting the mean and the spread.

An ensemble is one file (``*.zoo.pt``, like a bundle) holding its member bundles, a spread
scale per target (1.0 until calibrated, :mod:`zoo.calibration`) and the calibration record. It
predicts, per structure and target, the members' mean of log10 GPa, their standard deviation
times the scale (``<target>_std_log10``) and the ±1σ interval in GPa (``<target>_gpa_low``,
``<target>_gpa_high``). Members must predict the same targets; members with the same graph
settings and element table share one graph build, others build their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zoo import names
from zoo.bundle import ModelBundle, bundle_from_payload, read_payload
from zoo.domain import FEW_NEIGHBORS
from zoo.files import atomic_write
from zoo.versions import package_versions

ENSEMBLE_KIND = "ensemble"
ENSEMBLE_FORMAT = 1
_FIELDS = {"kind", "format", "members", "sources", "scale", "calibration", "versions"}


def std_column(target: str) -> str:
    return f"{target}_std_log10"


def interval_columns(target: str) -> tuple[str, str]:
    return f"{target}_gpa_low", f"{target}_gpa_high"


def ensemble_columns(targets: list[str]) -> list[str]:
    """``id``, then per target GPa, log10, std (log10), the ±1σ GPa interval; ``error``."""
    columns = [names.ID]
    for target in targets:
        columns += [names.gpa(target), names.log10(target), std_column(target)]
        columns += list(interval_columns(target))
    return [*columns, names.ERROR]


def spread_columns(target: str, mean, spread) -> dict:
    """A target's columns from the members' mean and the (scaled) spread, log10 GPa: GPa,
    log10, std and the ±1σ interval in GPa (the order of :func:`ensemble_columns`)."""
    low, high = interval_columns(target)
    return {
        names.gpa(target): 10.0**mean,
        names.log10(target): mean,
        std_column(target): spread,
        low: 10.0 ** (mean - spread),
        high: 10.0 ** (mean + spread),
    }


@dataclass
class Ensemble:
    """Member bundles (at least two, same targets) and the spread scale per target."""

    members: list[ModelBundle]
    sources: list[str]
    scale: dict[str, float] = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)
    versions: dict = field(default_factory=package_versions)

    def __post_init__(self) -> None:
        if len(self.members) < 2:
            raise ValueError(f"an ensemble needs at least two models, got {len(self.members)}")
        first = list(self.members[0].transform.targets)
        for number, member in enumerate(self.members[1:], 1):
            theirs = list(member.transform.targets)
            if theirs != first:
                raise ValueError(
                    f"member {number} ({self.sources[number]}) predicts {theirs}, "
                    f"member 0 ({self.sources[0]}) {first}: members must share their targets"
                )
        self.scale = {t: float(self.scale.get(t, 1.0)) for t in first}

    @property
    def targets(self) -> list[str]:
        return list(self.members[0].transform.targets)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "kind": ENSEMBLE_KIND,
            "format": ENSEMBLE_FORMAT,
            "members": [member.to_payload() for member in self.members],
            "sources": list(self.sources),
            "scale": dict(self.scale),
            "calibration": dict(self.calibration),
            "versions": dict(self.versions),
        }
        with atomic_write(path) as partial:
            torch.save(payload, partial)
        return path


def load_ensemble(path: str | Path) -> Ensemble:
    """Read an ensemble file strictly (fields, format, every member as a bundle)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    payload = read_payload(path)
    return ensemble_from_payload(payload, path)


def ensemble_from_payload(payload: dict, path) -> Ensemble:
    if not isinstance(payload, dict) or set(payload) != _FIELDS:
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: ensemble fields {found} differ from {sorted(_FIELDS)}")
    if payload["format"] != ENSEMBLE_FORMAT:
        raise ValueError(f"{path}: ensemble format {payload['format']}, expected {ENSEMBLE_FORMAT}")
    members = [
        bundle_from_payload(member, f"{path} (member {number})")
        for number, member in enumerate(payload["members"])
    ]
    return Ensemble(
        members, payload["sources"], payload["scale"], payload["calibration"], payload["versions"]
    )


def load_model_file(path: str | Path) -> ModelBundle | Ensemble:
    """A bundle or an ensemble, whichever the file holds (both read strictly)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    payload = read_payload(path)
    if isinstance(payload, dict) and payload.get("kind") == ENSEMBLE_KIND:
        return ensemble_from_payload(payload, path)
    return bundle_from_payload(payload, path)


def member_path(source: str | Path) -> Path:
    """A bundle file, or the bundle of a run folder (``model.zoo.pt``)."""
    from zoo.bundle import BUNDLE_SUFFIX

    path = Path(source)
    if path.is_dir():
        inside = path / f"model{BUNDLE_SUFFIX}"
        if not inside.exists():
            raise ValueError(f"{path}: a folder without a finished model (model{BUNDLE_SUFFIX})")
        return inside
    return path


def build_ensemble(sources: list[str | Path]) -> Ensemble:
    """An (uncalibrated) ensemble of the bundles, run folders or ensemble files ``sources``
    (an ensemble's members each become a member: ``<file>#<n>``)."""
    members, names = [], []
    for path in (member_path(source) for source in sources):
        loaded = load_model_file(path)
        if isinstance(loaded, Ensemble):
            members += loaded.members
            names += [f"{path}#{number}" for number in range(len(loaded.members))]
        else:
            members.append(loaded)
            names.append(str(path))
    return Ensemble(members, names)


class EnsemblePredictor:
    """An ensemble's members built once; the same ``predict`` as :class:`zoo.predictor.Predictor`
    with the spread columns added (:func:`ensemble_columns`)."""

    def __init__(self, ensemble: Ensemble, *, batch_size: int = 256, workers: int = 1):
        from zoo.predictor import Predictor

        self.ensemble, self.workers = ensemble, workers
        self.members = [
            Predictor(m, batch_size=batch_size, workers=workers) for m in ensemble.members
        ]
        self.targets = ensemble.targets
        self.graph_settings = ensemble.members[0].graph_settings
        self.columns = [*ensemble_columns(self.targets), FEW_NEIGHBORS]

    def member_predictions(self, ids, structures, skip_bad=True, cache_dir=False, progress=False):
        """log10 GPa ``(M, n, T)`` (NaN where a member could not predict) and the first
        reason per entry that a member gave; the entries whose graphs (of any member) have
        an atom short of neighbours are kept in :attr:`few_neighbors`. Members that read the
        same graphs share one build and each batch of it, in ``workers`` processes
        (:func:`~zoo.predictor.predict_in_workers`); one progress bar counts the structures
        of all of them."""
        from zoo.predictor import predict_in_workers, prediction_bar

        values = np.full((len(self.members), len(ids), len(self.targets)), np.nan)
        reasons: dict[str, str] = {}
        self.few_neighbors: dict[str, bool] = {}
        position = {entry: i for i, entry in enumerate(ids)}
        groups: dict[tuple, list[int]] = {}
        for number, member in enumerate(self.members):
            groups.setdefault(member.graph_key(), []).append(number)
        built = {}
        for key, numbers in groups.items():
            built[key] = self.members[numbers[0]].graphs(
                ids, structures, skip_bad, cache_dir, progress
            )
        total = sum(len(store) for store, _ in built.values() if store is not None)
        with prediction_bar(total, progress) as bar:
            for key, numbers in groups.items():
                store, skipped = built[key]
                for entry, reason in skipped.items:
                    reasons.setdefault(entry, reason)
                if store is None:
                    continue
                rows = [position[entry] for entry in store.ids]
                members = [self.members[n] for n in numbers]
                values[np.ix_(numbers, rows)] = predict_in_workers(
                    members, store, self.workers, bar
                )
                for entry, few in zip(store.ids, store.few_neighbors(), strict=True):
                    self.few_neighbors[entry] = self.few_neighbors.get(entry, False) or bool(few)
        return values, reasons

    def predict(self, ids, structures, *, skip_bad=True, cache_dir=False, progress=False):
        """Mean, spread and ±1σ interval per target; one row per input, in input order."""
        values, reasons = self.member_predictions(ids, structures, skip_bad, cache_dir, progress)
        table = pd.DataFrame({names.ID: list(ids)})
        complete = np.isfinite(values).all(axis=(0, 2))
        for column, target in enumerate(self.targets):
            member = np.where(complete[None, :], values[:, :, column], np.nan)
            spread = member.std(axis=0, ddof=1) * self.ensemble.scale[target]
            table = table.assign(**spread_columns(target, member.mean(axis=0), spread))
        table[names.ERROR] = [reasons.get(entry, "") for entry in ids]
        table[FEW_NEIGHBORS] = pd.array(
            [self.few_neighbors.get(e) if not reasons.get(e) else None for e in ids],
            dtype="boolean",
        )
        return table[self.columns]
