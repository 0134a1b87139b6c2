"""The registry of input formats: each format is one module of :mod:`zoo.readers` that declares
what it reads and which options it takes, and yields raw entries one by one. Everything that
reads structures (training, ``zoo predict``, screening) goes through :func:`read_dataset` (all
at once) or :func:`iter_datasets` (chunks of N structures, without reading the source whole).

A format yields :class:`Entry` values: an id, a callable that parses the structure (so a parse
error stays with its entry) and the raw target values; :class:`~zoo.dataset.DatasetBuilder`
checks each and raises, or skips and reports, the bad ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zoo.dataset import Dataset, DatasetBuilder
from zoo.errors import BadInputError


@dataclass(frozen=True)
class ReadOptions:
    """What a reader may be told; each format declares the fields it uses."""

    id_key: str | None = None
    """id column of JSON records (default ``mp_id``)."""
    target_keys: dict[str, str] | None = None
    """target name -> column / info key (JSON records, extxyz, ase.db)."""
    cgcnn_target: str = "shear"
    """which target the values of a CGCNN ``id_prop.csv`` are."""
    cgcnn_log10: bool = False
    """whether those values are log10(GPa) rather than GPa."""
    with_targets: bool = True
    """read the moduli too; False reads structures only (prediction)."""


@dataclass(frozen=True)
class Entry:
    """One raw entry of a source. ``problem``: why it is bad before any parsing (a record
    without a structure), or None."""

    id: str
    load: Callable[[], object] | None
    targets: dict[str, object] = field(default_factory=dict)
    problem: str | None = None


Opener = Callable[[Path | None, ReadOptions], tuple[list[str], Iterator[Entry]]]


@dataclass(frozen=True)
class InputFormat:
    """An input format.

    Attributes:
        name: short name (``records-json``).
        reads: what it reads, in words (for the docs and the error of an unknown input).
        options: the :class:`ReadOptions` fields it uses.
        streams: whether it reads entry by entry (False: the source is loaded whole first).
        matches: whether a path is of this format (cheap: names and the first bytes).
        open: ``(path, options) -> (target names, iterator of entries)``.
        priority: formats are tried from the lowest (a folder with ``id_prop.csv`` is a
            CGCNN folder before it is a folder of structure files).
        describe: the data set's ``source`` text (default: the path).
        count: ``path -> number of entries`` without parsing them, where a format can count
            faster than it reads (default: read past every entry).
    """

    name: str
    reads: str
    options: tuple[str, ...]
    streams: bool
    matches: Callable[[Path | None], bool]
    open: Opener
    priority: int
    describe: Callable[[Path | None], str] | None = None
    count: Callable[[Path], int] | None = None


FORMATS: dict[str, InputFormat] = {}
"""Registered formats by name (tried by ``priority``)."""


def register_format(fmt: InputFormat) -> InputFormat:
    """Add a format; a name registered twice is an error."""
    if fmt.name in FORMATS:
        raise ValueError(f"input format {fmt.name!r} is registered already")
    FORMATS[fmt.name] = fmt
    return fmt


def input_format(
    name: str,
    *,
    reads: str,
    priority: int,
    matches: Callable[[Path | None], bool],
    options: tuple[str, ...] = ("with_targets",),
    streams: bool = True,
    describe: Callable[[Path | None], str] | None = None,
    count: Callable[[Path], int] | None = None,
):
    """Decorator: register the decorated ``open`` function as the format ``name`` (the fields
    of :class:`InputFormat`)."""

    def register(opener: Opener) -> Opener:
        register_format(
            InputFormat(name, reads, options, streams, matches, opener, priority, describe, count)
        )
        return opener

    return register


def is_file_named(*suffixes: str) -> Callable[[Path | None], bool]:
    """A ``matches`` test: an existing file whose name ends with one of ``suffixes``."""
    return lambda path: path is not None and path.is_file() and path.name.lower().endswith(suffixes)


def format_for(path: str | Path | None) -> InputFormat:
    """The first registered format that matches ``path`` (None: the built-in demo set)."""
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    for fmt in sorted(FORMATS.values(), key=lambda f: f.priority):
        if fmt.matches(path):
            return fmt
    known = "; ".join(f"{f.name}: {f.reads}" for f in FORMATS.values())
    raise ValueError(f"{path}: unknown input format (known: {known})")


def _open(path, options: ReadOptions) -> tuple[str, list[str], Iterator[Entry]]:
    """The source text, target names and entries of ``path``."""
    fmt = format_for(path)
    path = None if path is None else Path(path)
    targets, entries = fmt.open(path, options)
    source = fmt.describe(path) if fmt.describe else str(path)
    return source, (targets if options.with_targets else []), entries


def _add(builder: DatasetBuilder, entry: Entry) -> None:
    if entry.problem is not None:
        builder.reject(BadInputError(entry.id, entry.problem))
    else:
        builder.add(entry.id, entry.load, entry.targets)


def read_dataset(
    path: str | Path | None = None, *, skip_bad: bool = False, workers: int = 1, **options
) -> Dataset:
    """Read ``path`` whole with the format it matches (None: the built-in demo set).

    Args:
        skip_bad: drop bad entries and report them in ``Dataset.skipped`` instead of raising.
        workers: processes parsing the structures (:class:`~zoo.dataset.DatasetBuilder`).
        options: :class:`ReadOptions` fields (``id_key``, ``target_keys``, ``cgcnn_target``,
            ``cgcnn_log10``, ``with_targets``).
    """
    source, targets, entries = _open(path, ReadOptions(**options))
    builder = DatasetBuilder(source, targets, skip_bad, workers=workers)
    for entry in entries:
        _add(builder, entry)
    return builder.build()


def iter_datasets(
    path: str | Path | None, chunk_size: int, *, skip_bad: bool = True, **options
) -> Iterator[Dataset]:
    """``path`` as consecutive data sets of at most ``chunk_size`` entries each (bad entries
    reported in each chunk's ``skipped``). Streaming formats never hold more than one chunk's
    structures; an id repeated in a later chunk is bad input like one within a chunk."""
    source, targets, entries = _open(path, ReadOptions(**options))
    for chunk in _checked_chunks(entries, chunk_size):
        builder = DatasetBuilder(source, targets, skip_bad)
        for entry in chunk:
            _add(builder, entry)
        yield builder.build(allow_empty=True)


def iter_entry_chunks(path: str | Path | None, chunk_size: int, **options) -> Iterator[list[Entry]]:
    """``path``'s raw entries (unparsed) in lists of at most ``chunk_size``, repeated ids
    marked as in :func:`iter_datasets` (what ``zoo screen`` sends to its workers)."""
    _, _, entries = _open(path, ReadOptions(**options))
    return _checked_chunks(entries, chunk_size)


def _checked_chunks(entries: Iterator[Entry], chunk_size: int) -> Iterator[list[Entry]]:
    """Lists of at most ``chunk_size`` entries; an entry whose id an earlier entry had, in its
    chunk or an earlier one, carries that problem."""
    if chunk_size < 1:
        raise ValueError(f"chunk size {chunk_size} must be at least 1")
    seen: set[str] = set()
    while chunk := list(itertools.islice(entries, chunk_size)):
        checked = []
        for entry in chunk:
            if entry.id in seen and entry.problem is None:
                entry = Entry(entry.id, None, {}, "duplicate id (an earlier entry has the same id)")
            seen.add(entry.id)
            checked.append(entry)
        yield checked


def count_entries(path: str | Path | None, **options) -> int:
    """How many raw entries ``path`` has (counted by its format, or read past, not parsed)."""
    fmt = format_for(path)
    if fmt.count is not None and path is not None:
        return fmt.count(Path(path))
    _, _, entries = _open(path, ReadOptions(**options))
    return sum(1 for _ in entries)
