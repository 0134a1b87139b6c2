"""ASE extended XYZ: one frame per structure, read frame by frame. Targets come from
``atoms.info`` under the keys the user names (default ``shear`` and ``bulk``, in GPa); the id
is the ``id`` info key if present, else the frame number."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from zoo.readers.registry import Entry, ReadOptions, input_format, is_file_named
from zoo.readers.structure_file import atoms_to_structure

DEFAULT_TARGET_KEYS = {"shear": "shear", "bulk": "bulk"}


@input_format(
    "extxyz",
    reads="*.extxyz / *.xyz: ASE extended XYZ, targets from atoms.info",
    priority=60,
    matches=is_file_named(".extxyz", ".xyz"),
    options=("target_keys", "with_targets"),
)
def _open(path: Path, options: ReadOptions):
    target_keys = options.target_keys or DEFAULT_TARGET_KEYS

    def entries():
        import ase.io

        frame = 0  # frames are numbered from 1, as lines and rows are
        try:
            frames = ase.io.iread(path, index=":", format="extxyz")
            for frame, atoms in enumerate(frames, start=1):
                values = {t: atoms.info.get(key) for t, key in target_keys.items()}
                entry = str(atoms.info.get("id", f"frame-{frame}"))
                yield Entry(entry, partial(atoms_to_structure, atoms), values)
        except Exception as error:  # a broken frame ends the file: say where
            reason = f"cannot read as extended XYZ after frame {frame} ({error})"
            yield Entry(f"{path.name}:frame-{frame + 1}", None, {}, reason)

    return list(target_keys), entries()
