"""The evidence for zoo's geometry check (``zoo.dataset.MIN_CONTACT_FRACTION`` and
``MIN_VOLUME_PER_ATOM``): over every structure file in ``../shared/data``, each structure's
closest pair of atoms as a fraction of the sum of their covalent radii, and its volume per
atom. Prints one row per file (smallest, 0.1st percentile and median ratio, the entry with the
smallest, the smallest volume per atom) beside the thresholds, and saves the rows in
``bench/results/close_contacts.json``.

    python bench/bench_close_contacts.py [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import RESULTS, SHARED  # noqa: E402

FILES = [
    "mp_elasticity_binaries_2025.json.gz",
    "mp_elasticity_2024.json.gz",
    "matbench/matbench_log_gvrh_subset_large.json.gz",
    "mp_structures_36k.json.gz",
    "gnome_structures_36k.json.gz",
]
SEARCH = 1.5
"""Ratios are searched up to this; a structure whose closest pair is farther counts as 1.5."""


def scan(path: Path, limit: int | None) -> dict:
    from tqdm import tqdm

    from zoo.dataset import closest_contact
    from zoo.readers.registry import iter_entry_chunks

    id_key = "gnome_id" if "gnome" in path.name else None
    ratios, volumes, ids, unread = [], [], [], 0
    entries = (e for chunk in iter_entry_chunks(path, 1000, id_key=id_key) for e in chunk)
    for number, entry in enumerate(tqdm(entries, desc=path.name, unit=" structures")):
        if limit is not None and number >= limit:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structure = entry.load()
        except Exception:
            unread += 1
            continue
        if not structure.is_ordered:
            unread += 1
            continue
        contact = closest_contact(structure, SEARCH)
        ratios.append(SEARCH if contact is None else contact[0])
        volumes.append(structure.volume / len(structure))
        ids.append(entry.id)
    ratios_a = np.asarray(ratios)
    k = int(np.argmin(ratios_a))
    return {
        "file": str(path.relative_to(SHARED / "data")),
        "structures": len(ratios),
        "not_read_or_disordered": unread,
        "min_ratio": float(ratios_a[k]),
        "min_ratio_id": ids[k],
        "p0.1_ratio": float(np.percentile(ratios_a, 0.1)),
        "median_ratio": float(np.median(ratios_a)),
        "min_volume_per_atom": float(np.min(volumes)),
        "max_volume_per_atom": float(np.max(volumes)),
    }


def main() -> None:
    from zoo.dataset import MAX_VOLUME_PER_ATOM, MIN_CONTACT_FRACTION, MIN_VOLUME_PER_ATOM

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="structures per file (default: all)")
    args = parser.parse_args()
    if not (SHARED / "data").is_dir():
        sys.exit(f"skipped: {SHARED / 'data'} is absent")
    rows = [scan(SHARED / "data" / name, args.limit) for name in FILES]
    print(f"\nthresholds: contact fraction {MIN_CONTACT_FRACTION}, "
          f"volume per atom {MIN_VOLUME_PER_ATOM} to {MAX_VOLUME_PER_ATOM} A^3")  # fmt: skip
    header = ("| file | structures | smallest ratio (entry) | 0.1% | median | min A^3/atom "
              "| max A^3/atom |")  # fmt: skip
    print(header + "\n| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['file']} | {r['structures']:,} | {r['min_ratio']:.3f} ({r['min_ratio_id']}) "
              f"| {r['p0.1_ratio']:.3f} | {r['median_ratio']:.3f} "
              f"| {r['min_volume_per_atom']:.2f} | {r['max_volume_per_atom']:.1f} |")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "close_contacts.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
