"""zoo: crystal graph neural networks for elastic moduli.

Public API (everything else is internal)::

    from zoo import read_dataset, build_graph, GraphSettings, TrainConfig, train
    model = zoo.load_model("models:/cgcnn-shear@champion")    # or a *.zoo.pt file, runs:/...
    model.predict(structure)                                    # Structure, Atoms, path, list
    from zoo import load_bundle, predict_structures, build_ensemble

Names are imported on first use, so ``import zoo.keys`` (done by the model code) stays light
and free of import cycles.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

import zoo._backend  # noqa: F401  (DGLBACKEND=pytorch before anything imports dgl)

_PUBLIC = {
    "BadInputError": "zoo.errors",
    "Ensemble": "zoo.ensemble",
    "build_ensemble": "zoo.ensemble",
    "load_model": "zoo.loaded_model",
    "LoadedModel": "zoo.loaded_model",
    "Dataset": "zoo.dataset",
    "GraphSettings": "zoo.graphs",
    "ModelBundle": "zoo.bundle",
    "TrainConfig": "zoo.config",
    "build_graph": "zoo.graphs",
    "load_bundle": "zoo.bundle",
    "load_config": "zoo.config",
    "predict_structures": "zoo.predictor",
    "read_dataset": "zoo.readers",
    "train": "zoo.training",
}
__all__ = sorted(_PUBLIC)

try:
    __version__ = version("zoo")
except PackageNotFoundError:  # run from a source tree that is not installed
    __version__ = "0+unknown"


def __dir__() -> list[str]:
    """The public API (so that ``zoo.<TAB>`` completes it), with ``__version__``."""
    return sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
