"""Models in the MLflow model registry: the pyfunc wrapper, registration with a ``champion``
alias, and resolving ``models:/`` and ``runs:/`` URIs to a model bundle.

The registered model is an MLflow pyfunc model that carries the zoo bundle (``model.zoo.pt``) as
its one artifact. Its input is a table with a ``structure`` column (a pymatgen ``Structure``, its
``as_dict()``, CIF text or POSCAR text: data, never a file path, since a served model must not
read the server's files) and an optional ``id`` column; its
output has ``id``, ``<target>_gpa`` and ``<target>_log10`` for each target of the model (both
moduli for a multitask model), and ``error`` (why a row could not be predicted, empty otherwise).
Graphs are built inside ``predict``.

Loading in a fresh process needs only the tracking store::

    mlflow.set_tracking_uri(zoo.tracking.tracking_uri())   # or MLFLOW_TRACKING_URI
    mlflow.pyfunc.load_model("models:/cgcnn-shear@champion").predict(table)
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from pymatgen.core import Structure

from zoo import names

CHAMPION = "champion"
VAL_SCORE_TAG = "zoo.val_mae_log10"
"""Model version tag holding the validation MAE (log10 GPa) the alias comparison uses."""
PYFUNC_NAME = "pyfunc"


MAX_STRUCTURES_PER_CALL = 1000
"""A served model's bound on the rows of one request (a larger request is refused whole)."""
MAX_ATOMS_PER_STRUCTURE = 1000
"""A served model's bound on the sites of one structure (a larger one is that row's error).
The Materials Project's largest elastic cells have under 200 sites."""


def structure_from_input(value, allow_paths: bool = False) -> Structure:
    """A structure from a ``Structure``, a pymatgen dict, CIF text or POSCAR text; with
    ``allow_paths`` (a local caller who asked for it) also from a structure file's path. Without
    it a path is refused before the file system is touched, so a remote caller of a served
    model can neither read a server's files nor learn which exist."""
    from zoo.readers.cif import structure_from_cif
    from zoo.readers.structure_file import read_structure_file

    if isinstance(value, Structure):
        return value
    if isinstance(value, dict):
        return Structure.from_dict(value)
    is_path = isinstance(value, Path) or (isinstance(value, str) and "\n" not in value.strip())
    if is_path:
        if not allow_paths:
            raise ValueError(
                "file paths are not accepted here; send the structure itself (CIF text, POSCAR "
                "text or a pymatgen dict)"
            )
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{value!r} is not a structure file")
        return read_structure_file(path)
    if isinstance(value, str):
        text = value.strip()
        if "data_" in text:
            return structure_from_cif(text)
        return Structure.from_str(text, fmt="poscar")
    raise ValueError(f"unsupported structure value of type {type(value).__name__}")


def predict_table(
    model,
    table: pd.DataFrame,
    *,
    allow_paths: bool = False,
    max_structures: int | None = None,
    max_atoms: int | None = None,
) -> pd.DataFrame:
    """Predictions for a table of structures (see the module docstring), in input order, by a
    :class:`~zoo.loaded_model.LoadedModel` (or a bundle or ensemble, for one call).
    ``max_structures``: more rows are refused; ``max_atoms``: a larger structure is its row's
    error (a served model sets both, :data:`MAX_STRUCTURES_PER_CALL`,
    :data:`MAX_ATOMS_PER_STRUCTURE`)."""
    from zoo.loaded_model import LoadedModel

    if not isinstance(model, LoadedModel):
        model = LoadedModel(model, "in memory")
    if "structure" not in table.columns:
        raise ValueError(f"input needs a 'structure' column; it has {list(table.columns)}")
    if max_structures is not None and len(table) > max_structures:
        raise ValueError(
            f"{len(table)} structures in one call; this model takes at most {max_structures}: "
            "split the request"
        )
    ids = (
        [str(v) for v in table["id"]]
        if "id" in table.columns
        else list(map(str, range(len(table))))
    )
    if len(set(ids)) != len(ids):
        raise ValueError("the 'id' column has repeated values")
    loaders = [
        lambda v=value: _bounded(structure_from_input(v, allow_paths), max_atoms)
        for value in table["structure"]
    ]
    return model.predict_entries(ids, loaders)


def _bounded(structure: Structure, max_atoms: int | None) -> Structure:
    if max_atoms is not None and len(structure) > max_atoms:
        raise ValueError(f"{len(structure)} sites; this model takes at most {max_atoms}")
    return structure


def nan_to_none(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every missing number as None, so that MLflow's JSON answer holds
    ``null`` (JSON has no NaN; MLflow would write the invalid token ``NaN``)."""
    return table.astype(object).where(table.notna(), None)


class ZooModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of a zoo model bundle (see the module docstring). As it may be served to
    remote callers, it takes structures as data only, never file paths, within the bounds
    :data:`MAX_STRUCTURES_PER_CALL` and :data:`MAX_ATOMS_PER_STRUCTURE`, and answers ``None``
    (JSON ``null``) where a row has no number. The model is built once, when MLflow loads it."""

    def load_context(self, context):
        from zoo.ensemble import load_model_file
        from zoo.loaded_model import LoadedModel

        self.model = LoadedModel(load_model_file(context.artifacts["bundle"]), "pyfunc model")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        table = model_input
        if not isinstance(table, pd.DataFrame):
            table = pd.DataFrame(table)
        predicted = predict_table(
            self.model,
            table,
            allow_paths=False,
            max_structures=MAX_STRUCTURES_PER_CALL,
            max_atoms=MAX_ATOMS_PER_STRUCTURE,
        )
        return nan_to_none(predicted)


def pip_requirements() -> list[str]:
    """What a serving environment installs: this project's pinned runtime dependencies."""
    from importlib.metadata import requires

    return [r for r in (requires("zoo") or []) if "extra ==" not in r]


def log_pyfunc(bundle_path: str | Path):
    """Log the bundle as a pyfunc model into the active MLflow run; returns the ModelInfo.
    The model is logged from code (``zoo/pyfunc_model.py``, nothing pickled), and the ``zoo``
    package goes with it (with ``zoo.models``, whose folder is ``models/`` in the repository),
    so a serving environment needs only the pinned dependencies."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        code = _package_tree(Path(folder))
        return mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"bundle": str(bundle_path)},
            code_paths=[str(code)],
            pip_requirements=pip_requirements(),
            signature=_signature(_columns_of(bundle_path)),
            input_example=_input_example(),
        )


def _columns_of(model_path) -> list[str]:
    from zoo.ensemble import load_model_file
    from zoo.resolve import predictor_for

    return predictor_for(load_model_file(model_path)).columns


def _package_tree(folder: Path) -> Path:
    """``folder/zoo``: the ``zoo`` package as it is imported, ``zoo.models`` inside it
    (installed from a wheel it is there already; in a source checkout it is the top-level
    ``models/`` folder). ``zoo.tuning`` is not needed to predict, and the shipped pretrained
    models (``zoo/pretrained/*.zoo.pt``) are not code: the logged model's own file is its
    artifact, and a second model file in the code would make the model ambiguous."""
    import shutil

    import zoo
    import zoo.models

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.zoo.pt")
    target = folder / "zoo"
    shutil.copytree(Path(zoo.__file__).parent, target, ignore=ignore)
    if not (target / "models").exists():
        shutil.copytree(Path(zoo.models.__file__).parent, target / "models", ignore=ignore)
    shutil.rmtree(target / "tuning", ignore_errors=True)
    return target


def _input_example() -> pd.DataFrame:
    """One row: fcc copper (a = 3.61 angstrom) as CIF text."""
    from pymatgen.core import Lattice

    copper = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    return pd.DataFrame({"id": ["Cu-fcc"], "structure": [copper.to(fmt="cif")]})


def _signature(columns: list[str]):
    """Input: ``structure`` (any of the accepted kinds) and an optional ``id``; output: the
    predictor's ``columns`` (``id``, numbers, ``error``)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    text = {names.ID, names.ERROR}
    outputs = [ColSpec("string" if c in text else "double", c) for c in columns]
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "structure"), ColSpec("string", "id", required=False)]),
        outputs=Schema(outputs),
    )


def register(
    model_uri: str, name: str, val_score: float, tags: dict[str, str], log=print
) -> tuple[str, bool]:
    """Register ``model_uri`` as a new version of ``name`` (once: a version from the same run,
    tag ``zoo.run_id``, left by an interrupted earlier call is reused); move the ``champion``
    alias to it only if ``val_score`` (validation MAE, lower is better) beats the current
    champion's. Returns the version and whether it is the champion."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from zoo.faults import failpoint

    client = MlflowClient()
    earlier = []
    if tags.get("zoo.run_id"):
        earlier = client.search_model_versions(f"name='{name}' and run_id='{tags['zoo.run_id']}'")
    if earlier:
        version = earlier[0].version
    else:
        with contextlib.redirect_stderr(io.StringIO()):  # MLflow prints its own two lines
            version = mlflow.register_model(
                model_uri, name, tags={**tags, VAL_SCORE_TAG: f"{val_score:.6f}"}
            ).version
    failpoint("refit-registered")
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        promote, reason = True, "no champion yet"
    elif str(current.version) == str(version):
        promote, reason = True, "already the champion"
    else:
        old = float(current.tags.get(VAL_SCORE_TAG, "inf"))
        promote = val_score < old
        reason = (
            f"validation MAE {val_score:.4f} vs champion v{current.version}'s {old:.4f} log10 GPa"
        )
        if current.tags.get("zoo.data") != tags.get("zoo.data") or current.tags.get(
            "zoo.split"
        ) != tags.get("zoo.split"):
            reason += " (note: measured on a different data set or split)"
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    holder = version if promote else current.version
    log(f"registered {name} version {version}; {CHAMPION}: version {holder} ({reason})")
    return str(version), promote


def register_model_file(
    path: str | Path,
    name: str,
    *,
    experiment: str,
    run_name: str,
    val_score: float,
    tags: dict[str, str],
    metrics: dict[str, float] | None = None,
    log=print,
) -> tuple[str, bool]:
    """Log a model file (a bundle or an ensemble) as a pyfunc model in a new MLflow run of
    ``experiment`` and register it under ``name`` (the ``champion`` rule of :func:`register`).
    Returns the version and whether it is the champion."""
    from zoo import tracking

    tracking.setup(experiment)
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        for key, value in (metrics or {}).items():
            mlflow.log_metric(key, value)
        info = log_pyfunc(path)
    return register(info.model_uri, name, val_score, {**tags, "zoo.run_id": run.info.run_id}, log)


def pyfunc_of_run(run_id: str, bundle_path) -> str:
    """URI of the run's pyfunc model, logged now unless an earlier attempt logged it whole
    (READY; one cut short by a kill stays PENDING and is logged again). The run ends FINISHED
    either way, also when the earlier attempt was killed while logging."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    from zoo.faults import failpoint

    run = mlflow.get_run(run_id)
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{PYFUNC_NAME}'",
        output_format="list",
    )
    ready = [m for m in logged if m.status == LoggedModelStatus.READY]
    if ready:
        mlflow.MlflowClient().set_terminated(run_id, status="FINISHED")
        return ready[0].model_uri
    with mlflow.start_run(run_id=run_id):
        info = log_pyfunc(bundle_path)
        failpoint("pyfunc-logged")
    return info.model_uri
