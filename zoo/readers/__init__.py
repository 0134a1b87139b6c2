"""Read any supported input: a registry of formats (:mod:`zoo.readers.registry`), one module
each, tried in this order (their ``priority``); every format can be read whole
(:func:`read_dataset`) or in chunks of N structures (:func:`iter_datasets`), streaming where it
says so.

=====================  =========================================  ======================  =======
format                 input                                      options                 streams
=====================  =========================================  ======================  =======
``demo``               nothing (``path=None``): built-in demo set                         yes
``cgcnn-folder``       folder with ``id_prop.csv`` (CIFs)         cgcnn_target, _log10    yes
``structure-folder``   folder of structure files (no targets)                             yes
``matbench``           ``*.json[.gz]`` object (matminer's file)                           no
``records-json``       ``*.json[.gz]`` list of records            id_key, target_keys     no
``records-jsonl``      ``*.jsonl[.gz]``, one record per line      id_key, target_keys     yes
``extxyz``             ``*.extxyz`` / ``*.xyz``, targets in info  target_keys             yes
``ase-db``             ``*.db`` ASE database                      target_keys             yes
``structure-file``     one CIF/POSCAR/... file (no targets)                               yes
=====================  =========================================  ======================  =======

Every format takes ``with_targets`` (False: structures only). A new format is a new module
here that registers an :class:`~zoo.readers.registry.InputFormat`, imported below.
"""

from __future__ import annotations

# every format module registers itself on import
from zoo.readers import (  # noqa: F401
    ase_db,
    cgcnn_folder,
    demo,
    extxyz,
    matbench,
    records,
    structure_file,
    structure_folder,
)
from zoo.readers.demo import read_demo
from zoo.readers.matbench import download_matbench, read_matbench
from zoo.readers.registry import FORMATS, format_for, iter_datasets, read_dataset

__all__ = [
    "FORMATS",
    "download_matbench",
    "format_for",
    "iter_datasets",
    "read_dataset",
    "read_demo",
    "read_matbench",
]
