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
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mlflow.exceptions
import mlflow.pyfunc
import pandas as pd

from zoo import names

CHAMPION = "champion"
VAL_SCORE_TAG = "zoo.val_mae_log10"
"""Model version tag holding the validation MAE (log10 GPa) the alias comparison uses."""
PYFUNC_NAME = "pyfunc"


@dataclass(frozen=True)
class RequestBounds:
    """What one call of a served model may ask for. The defaults keep one request to seconds
    on two CPU cores (docs/benchmarks.md), well inside MLflow's 60 s request timeout; a server
    changes them with the environment variables of :data:`BOUND_VARIABLES`, read when the
    model is loaded."""

    structures: int = 1000
    """rows of one request (more: the request is refused)."""
    sites: int = 1000
    """sites of one structure, counted before it is built (more: that row's error). The
    Materials Project's largest elastic cells have under 200 sites."""
    total_sites: int = 20_000
    """sites of all rows of one request, counted before any is built (more: refused)."""

    @classmethod
    def from_environment(cls, environ=os.environ) -> RequestBounds:
        values = {}
        for field_name, variable in BOUND_VARIABLES.items():
            raw = environ.get(variable)
            if raw is None:
                continue
            if not raw.strip().isdigit() or int(raw) < 1:
                raise ValueError(f"{variable}={raw!r} is not a positive whole number")
            values[field_name] = int(raw)
        return cls(**values)


BOUND_VARIABLES = {
    "structures": "ZOO_SERVE_MAX_STRUCTURES",
    "sites": "ZOO_SERVE_MAX_SITES",
    "total_sites": "ZOO_SERVE_MAX_TOTAL_SITES",
}
"""RequestBounds field -> the environment variable that sets it for a served model."""


class RequestRefused(ValueError):
    """A whole request is refused (too many rows or sites, no ``structure`` column, repeated
    ids); a served model answers it as one line of JSON."""


def predict_table(
    model,
    table: pd.DataFrame,
    *,
    allow_paths: bool = False,
    bounds: RequestBounds | None = None,
) -> pd.DataFrame:
    """Predictions for a table of structures (see the module docstring), in input order, by a
    :class:`~zoo.loaded_model.LoadedModel` (or a bundle or ensemble, for one call). Every
    structure goes through :func:`zoo.readers.structures.parse_structure`; ``bounds`` (a
    served model's :class:`RequestBounds`) are checked on counted sites before any structure
    is built. Raises :class:`RequestRefused` for a request refused whole."""
    from zoo.loaded_model import LoadedModel

    if not isinstance(model, LoadedModel):
        model = LoadedModel(model, "in memory")
    if "structure" not in table.columns:
        raise RequestRefused(f"input needs a 'structure' column; it has {list(table.columns)}")
    ids = (
        [str(v) for v in table["id"]]
        if "id" in table.columns
        else list(map(str, range(len(table))))
    )
    if len(set(ids)) != len(ids):
        raise RequestRefused("the 'id' column has repeated values")
    values = list(table["structure"])
    counts = [None] * len(values) if bounds is None else _checked_counts(values, bounds)
    loaders = [
        partial(_parse_counted, value, count, allow_paths, bounds)
        for value, count in zip(values, counts, strict=True)
    ]
    return model.predict_entries(ids, loaders)


def _checked_counts(values: list, bounds: RequestBounds) -> list:
    """Each row's counted sites (the exception where it cannot be counted: that row's
    error); the request is refused if it has too many rows, or too many sites in all."""
    from zoo.readers.structures import count_sites

    if len(values) > bounds.structures:
        raise RequestRefused(
            f"{len(values):,} structures in one request; at most {bounds.structures:,}: "
            "split the request"
        )
    counts: list = []
    for value in values:
        try:
            counts.append(count_sites(value) if isinstance(value, dict | str) else None)
        except Exception as error:  # a parser's reason, reported on its row
            counts.append(error)
    total = sum(c for c in counts if isinstance(c, int) and c <= bounds.sites)
    if total > bounds.total_sites:
        raise RequestRefused(
            f"{total:,} sites in one request; at most {bounds.total_sites:,}: split the request"
        )
    return counts


def _parse_counted(value, count, allow_paths: bool, bounds: RequestBounds | None):
    """One row's structure; its sites were counted already (``count``: a number, None where
    the kind of value has no count before parsing, or the exception counting raised)."""
    from zoo.readers.structures import check_sites, parse_structure

    if isinstance(count, Exception):
        raise count
    limit = None if bounds is None else bounds.sites
    check_sites(None, count, limit)
    structure = parse_structure(  # counted here only where it was not counted before
        value, allow_paths=allow_paths, max_sites=limit if count is None else None
    )
    return check_sites(structure, len(structure), limit)


def nan_to_none(table: pd.DataFrame) -> pd.DataFrame:
    """The table with every missing number as None, so that MLflow's JSON answer holds
    ``null`` (JSON has no NaN; MLflow would write the invalid token ``NaN``)."""
    return table.astype(object).where(table.notna(), None)


class ZooModel(mlflow.pyfunc.PythonModel):
    """Pyfunc wrapper of a zoo model bundle (see the module docstring). As it may be served to
    remote callers, it takes structures as data only, never file paths, within
    :class:`RequestBounds` (read from the environment when MLflow loads it), and answers
    ``None`` (JSON ``null``) where a row has no number. Loaded by MLflow's scoring server, it
    makes a refused request answer one line of JSON (:func:`answer_refusals_as_json`). The
    model is built once, when MLflow loads it."""

    def load_context(self, context):
        from zoo.ensemble import load_model_file
        from zoo.loaded_model import LoadedModel

        self.bounds = RequestBounds.from_environment()
        self.model = LoadedModel(load_model_file(context.artifacts["bundle"]), "pyfunc model")
        answer_refusals_as_json()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        table = model_input
        if not isinstance(table, pd.DataFrame):
            table = pd.DataFrame(table)
        predicted = predict_table(self.model, table, allow_paths=False, bounds=self.bounds)
        return nan_to_none(predicted)


def answer_refusals_as_json() -> None:
    """In MLflow's scoring server (``mlflow models serve``), answer a request that cannot be
    served with HTTP 400 and ``{"error_code": "BAD_REQUEST", "message": "<one line>"}``: a
    :class:`RequestRefused`, JSON nested too deeply for the parser, or MLflow's own refusal
    (whose answer would otherwise carry a Python stack trace with server paths and echo the
    request). MLflow (pinned in pyproject.toml) looks its ``invocations`` handler up by name
    on every request; this wraps it once per process. Outside the server it does nothing."""
    import json
    import sys

    server = sys.modules.get("mlflow.pyfunc.scoring_server")
    if server is None or getattr(server.invocations, "zoo_wrapped", False):
        return
    handler = server.invocations

    def invocations(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except (RequestRefused, RecursionError, mlflow.exceptions.MlflowException) as error:
            body = json.dumps({"error_code": "BAD_REQUEST", "message": one_line_reason(error)})
        return server.InvocationsResponse(body, 400, "application/json")

    invocations.zoo_wrapped = True
    server.invocations = invocations


def one_line_reason(error: BaseException) -> str:
    """What a served model tells its caller about a refused request: one line, no stack
    trace, no echo of the request."""
    cause = error
    while cause is not None and not isinstance(cause, RequestRefused | RecursionError):
        cause = cause.__cause__ or cause.__context__  # MLflow re-raises what predict raised
    error = cause or error
    if isinstance(error, RecursionError):
        return "the request's JSON is nested too deeply"
    text = getattr(error, "message", None) or str(error)
    text = text.rsplit("Error: ", 1)[-1]  # MLflow puts the whole request in front
    return " ".join(text.split())[:500]


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
    from zoo.loaded_model import LoadedModel

    return LoadedModel(load_model_file(model_path), str(model_path)).columns


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
    from pymatgen.core import Lattice, Structure

    copper = Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]])
    return pd.DataFrame({"id": ["Cu-fcc"], "structure": [copper.to(fmt="cif")]})


def _signature(columns: list[str]):
    """Input: ``structure`` (any of the accepted kinds) and an optional ``id``; output: the
    predictor's ``columns`` (``id``, numbers, ``error``)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    text = {names.ID, names.ERROR, "flag_unseen_elements"}
    outputs = [
        ColSpec("string" if c in text else "boolean" if c.startswith("flag") else "double", c)
        for c in columns
    ]
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

    experiment_id = tracking.setup(experiment)
    run_name = tracking.unique_run_name(experiment_id, run_name)
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
