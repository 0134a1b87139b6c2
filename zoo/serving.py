"""Models in the MLflow model registry: the pyfunc wrapper, registration with a ``champion``
alias, and resolving ``models:/`` and ``runs:/`` URIs to a model bundle.

The registered model is an MLflow pyfunc model that carries the zoo bundle (``model.zoo.pt``) as
its one artifact. Its input is a table with a ``structure`` column (a pymatgen ``Structure``, its
``as_dict()``, CIF text, or the path of a structure file) and an optional ``id`` column; its
output has ``id``, ``<target>_gpa`` and ``<target>_log10`` for each target of the model (both
moduli for a multitask model), and ``error`` (why a row could not be predicted, empty otherwise).
Graphs are built inside ``predict``.

Loading in a fresh process needs only the tracking store::

    mlflow.set_tracking_uri(zoo.tracking.tracking_uri())   # or MLFLOW_TRACKING_URI
    mlflow.pyfunc.load_model("models:/cgcnn-shear@champion").predict(table)
"""

from __future__ import annotations

import math
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from pymatgen.core import Structure

from zoo.bundle import BUNDLE_SUFFIX, load_bundle

CHAMPION = "champion"
VAL_SCORE_TAG = "zoo.val_mae_log10"
"""Model version tag holding the validation MAE (log10 GPa) the alias comparison uses."""
PYFUNC_NAME = "pyfunc"
MODEL_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/")


def structure_from_input(value) -> Structure:
    """A structure from a ``Structure``, a structure file path, or what JSON records hold (a
    pymatgen dict or CIF text, :func:`zoo.readers.records.structure_from_value`)."""
    from zoo.readers.ase_files import read_structure_file
    from zoo.readers.records import structure_from_value

    if isinstance(value, Structure):
        return value
    if isinstance(value, Path):
        return read_structure_file(value)
    if isinstance(value, str) and "\n" not in value and not value.lstrip().startswith("data_"):
        path = Path(value)
        if not path.exists():
            raise ValueError(f"{value!r} is neither CIF text nor an existing file")
        return read_structure_file(path)
    return structure_from_value(value)


def predict_table(bundle, table: pd.DataFrame, batch_size: int = 256) -> pd.DataFrame:
    """Predictions for a table of structures (see the module docstring), in input order."""
    from zoo.dataset import DatasetBuilder
    from zoo.predict import predict_structures

    if "structure" not in table.columns:
        raise ValueError(f"input needs a 'structure' column; it has {list(table.columns)}")
    ids = (
        [str(v) for v in table["id"]]
        if "id" in table.columns
        else [str(i) for i in range(len(table))]
    )
    if len(set(ids)) != len(ids):
        raise ValueError("the 'id' column has repeated values")
    builder = DatasetBuilder("model input", [], skip_bad=True)
    for entry, value in zip(ids, table["structure"], strict=True):
        builder.add(entry, lambda v=value: structure_from_input(v), {})
    errors = dict(builder.skipped.items)
    predicted = pd.DataFrame({"id": []})
    if builder.ids:
        predicted = predict_structures(
            bundle, builder.ids, builder.structures, batch_size=batch_size, skip_bad=True
        )
    rows = predicted.set_index("id").to_dict("index")
    columns = [f"{t}_{unit}" for t in bundle.transform.targets for unit in ("gpa", "log10")]
    out = []
    for entry in ids:
        row = rows.get(entry, {})
        record = {"id": entry}
        record.update({c: row.get(c, math.nan) for c in columns})
        record["error"] = row.get("error", "") or errors.get(entry, "")
        out.append(record)
    return pd.DataFrame(out, columns=["id", *columns, "error"])


class ZooModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of a zoo model bundle (see the module docstring)."""

    def load_context(self, context):
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        table = model_input
        if not isinstance(table, pd.DataFrame):
            table = pd.DataFrame(table)
        return predict_table(self.bundle, table)


def pip_requirements() -> list[str]:
    """What a serving environment installs: this project's pinned runtime dependencies."""
    from importlib.metadata import requires

    return [r for r in (requires("zoo") or []) if "extra ==" not in r]


def log_pyfunc(bundle_path: str | Path):
    """Log the bundle as a pyfunc model into the active MLflow run; returns the ModelInfo.
    The model is logged from code (``zoo/pyfunc_model.py``, nothing pickled), and the ``zoo``
    and ``models`` code goes with it, so a serving environment needs only the pinned
    dependencies."""
    import models
    import zoo

    return mlflow.pyfunc.log_model(
        name=PYFUNC_NAME,
        python_model=str(Path(__file__).with_name("pyfunc_model.py")),
        artifacts={"bundle": str(bundle_path)},
        code_paths=[str(Path(zoo.__file__).parent), str(Path(models.__file__).parent)],
        pip_requirements=pip_requirements(),
        signature=_signature(load_bundle(bundle_path).transform.targets),
        input_example=_input_example(),
    )


def _input_example() -> pd.DataFrame:
    """One row: fcc copper (a = 3.61 angstrom) as CIF text."""
    from pymatgen.core import Lattice

    copper = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    return pd.DataFrame({"id": ["Cu-fcc"], "structure": [copper.to(fmt="cif")]})


def _signature(targets: list[str]):
    """Input: ``structure`` (any of the accepted kinds) and an optional ``id``; output: the
    moduli of ``targets`` and the error column."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    outputs = [ColSpec("string", "id")]
    outputs += [ColSpec("double", f"{t}_{unit}") for t in targets for unit in ("gpa", "log10")]
    outputs.append(ColSpec("string", "error"))
    return ModelSignature(
        inputs=Schema([ColSpec(AnyType(), "structure"), ColSpec("string", "id", required=False)]),
        outputs=Schema(outputs),
    )


def register(
    model_uri: str, name: str, val_score: float, tags: dict[str, str], log=print
) -> tuple[str, bool]:
    """Register ``model_uri`` as a new version of ``name``; move the ``champion`` alias to it
    only if ``val_score`` (validation MAE, lower is better) beats the current champion's.
    Returns the version and whether it became the champion."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    version = mlflow.register_model(
        model_uri, name, tags={**tags, VAL_SCORE_TAG: f"{val_score:.6f}"}
    ).version
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    if current is None:
        promote, reason = True, "no champion yet"
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
    log(f"registered {name} v{version}; {'now' if promote else 'not'} @{CHAMPION}: {reason}")
    return str(version), promote


def resolve_bundle(model: str | Path):
    """A :class:`~zoo.bundle.ModelBundle` from a bundle path, a ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` registry URI, or a ``runs:/RUN_ID[/PATH]`` run URI (tracking store:
    :func:`zoo.tracking.tracking_uri`)."""
    text = str(model)
    if not text.startswith(MODEL_URI_PREFIXES):
        return load_bundle(text)
    import mlflow

    from zoo import tracking

    tracking.quiet_logging()
    mlflow.set_tracking_uri(tracking.tracking_uri())
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    found = [local] if local.is_file() else sorted(local.rglob(f"*{BUNDLE_SUFFIX}"))
    if len(found) != 1:
        names = [str(p.relative_to(local)) for p in found]
        detail = f": {names}; name one in the URI" if found else ""
        raise ValueError(
            f"{text}: expected one model bundle (*{BUNDLE_SUFFIX}), found {len(found)}{detail}"
        )
    return load_bundle(found[0])
