"""Train/validation/test splits: from a split file or seeded fractions."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.files import atomic_write

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices into a data set, int64 arrays, disjoint."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}


def read_split_file(
    path: str | Path,
    ids: list[str],
    *,
    skipped: set[str] | frozenset[str] = frozenset(),
    strict: bool = False,
    log=print,
) -> Split:
    """Split from a CSV with columns ``id`` (or ``mp_id``/``mbid``) and ``split``
    (``train``/``val``/``test``), UTF-8 with or without a byte-order mark (see
    :func:`split_from_assignment` for the checks)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        id_field = next((f for f in ("id", "mp_id", "mbid") if f in fields), None)
        if id_field is None or "split" not in fields:
            raise ValueError(f"{path}: needs an id column (id/mp_id/mbid) and a split column")
        assignment = {row[id_field].strip(): (row["split"] or "").strip() for row in reader}
    return split_from_assignment(
        assignment, ids, str(path), skipped=skipped, strict=strict, log=log
    )


def assignment_of(split_ids: dict[str, list[str]]) -> dict[str, str]:
    """``{"train": [ids], "val": [...], "test": [...]}`` -> ``{id: split}``; an id in two
    splits is an error."""
    assignment: dict[str, str] = {}
    for name, members in split_ids.items():
        for entry in members:
            if assignment.setdefault(str(entry), name) != name:
                raise ValueError(f"{entry} is in both {assignment[str(entry)]} and {name}")
    return assignment


def split_from_assignment(
    assignment: dict[str, str],
    ids: list[str],
    source: str,
    *,
    skipped: set[str] | frozenset[str] = frozenset(),
    strict: bool = False,
    log=print,
) -> Split:
    """The :class:`Split` of ``ids`` by ``assignment`` (id -> split name). Every id must be
    assigned. Assigned ids that the data does not hold are reported through ``log`` (count and
    the first few), apart from the ``skipped`` ones (entries left out as bad input), and are an
    error with ``strict``."""
    bad = {s for s in assignment.values() if s not in SPLITS}
    if bad:
        raise ValueError(f"{source}: unknown split names {sorted(bad)}; use {SPLITS}")
    missing = [i for i in ids if i not in assignment]
    if missing:
        raise ValueError(f"{source}: {len(missing)} entries have no split, e.g. {missing[:3]}")
    held = set(ids)
    unknown = [i for i in assignment if i not in held and i not in skipped]
    if unknown:
        message = (
            f"{source}: {len(unknown)} of its ids are not in the data, e.g. "
            f"{', '.join(unknown[:5])}"
        )
        if strict:
            raise ValueError(message)
        log(f"{message} (ignored)")
    return Split(
        *(
            np.array([k for k, i in enumerate(ids) if assignment[i] == s], dtype=np.int64)
            for s in SPLITS
        )
    )


def write_assignment(path: str | Path, assignment: dict[str, str]) -> None:
    """Write ``{id: split}`` as ``id,split`` rows, atomically."""
    with atomic_write(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split"])
        writer.writerows(assignment.items())


def random_split(n: int, fractions: tuple[float, float, float], seed: int) -> Split:
    """Seeded random split of ``n`` entries by (train, val, test) fractions."""
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(
            f"split fractions {fractions} must be three non-negative numbers summing to 1"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    n_train = n - n_val - n_test
    if n_train <= 0 or (fractions[1] > 0 and n_val == 0):
        raise ValueError(f"{n} entries are too few for split fractions {fractions}")
    return Split(
        train=np.sort(order[:n_train]),
        val=np.sort(order[n_train : n_train + n_val]),
        test=np.sort(order[n_train + n_val :]),
    )


def write_split_file(path: str | Path, ids: list[str], split: Split) -> None:
    """Write ``split`` as ``id,split`` rows, atomically (a run reading the file meanwhile
    sees the old file or the new one, never half of one)."""
    with atomic_write(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "split"])
        for name in SPLITS:
            for index in getattr(split, name):
                writer.writerow([ids[index], name])


MATBENCH_FOLD_SEED = 18012019
"""``random_state`` of Matbench v0.1's ``KFold(n_splits=5, shuffle=True)`` over its rows."""


def kfold_assignment(n: int, folds: int = 5, seed: int = MATBENCH_FOLD_SEED) -> np.ndarray:
    """Test fold of each of ``n`` entries in their given order, int64 ``(n,)`` in
    ``0 .. folds-1``: scikit-learn's ``KFold(folds, shuffle=True, random_state=seed)``, which
    with the defaults is Matbench v0.1's rule (the same folds as its official tables)."""
    from sklearn.model_selection import KFold

    if folds < 2 or n < folds:
        raise ValueError(f"{n} entries cannot make {folds} folds")
    assignment = np.empty(n, dtype=np.int64)
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.arange(n))):
        assignment[test] = fold
    return assignment


def fold_split(assignment: np.ndarray, fold: int, val_fraction: float, seed: int = 0) -> Split:
    """Test = the entries of ``fold``; of the others a seeded random ``val_fraction`` is the
    validation set (for the best-epoch choice) and the rest is trained on."""
    assignment = np.asarray(assignment)
    if fold not in set(assignment.tolist()):
        raise ValueError(f"fold {fold} has no entries (folds: {sorted(set(assignment.tolist()))})")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction {val_fraction} must be in [0, 1)")
    rest = np.flatnonzero(assignment != fold)
    shuffled = np.random.default_rng(seed).permutation(rest)
    n_val = int(round(val_fraction * len(rest)))
    return Split(
        train=np.sort(shuffled[n_val:]),
        val=np.sort(shuffled[:n_val]),
        test=np.flatnonzero(assignment == fold),
    )
