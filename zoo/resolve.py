"""A model spec -> its model file (a bundle or an ensemble): a file path, the name of a shipped
pretrained model (:mod:`zoo.pretrained`), a registry URI (``models:/NAME@ALIAS``,
``models:/NAME/VERSION``) or a run URI (``runs:/RUN_ID/PATH``), looked up in the zoo's tracking
store (:func:`zoo.tracking.tracking_uri`)."""

from __future__ import annotations

from pathlib import Path

MODEL_URI_PREFIXES = ("models:/", "runs:/", "mlflow-artifacts:/")


def predictor_for(loaded, **options):
    """The predictor of a loaded bundle or ensemble."""
    from zoo.ensemble import Ensemble, EnsemblePredictor
    from zoo.predictor import Predictor

    if isinstance(loaded, Ensemble):
        return EnsemblePredictor(loaded, **options)
    return Predictor(loaded, **options)


def resolve_model(model: str | Path):
    """A :class:`~zoo.bundle.ModelBundle` or :class:`~zoo.ensemble.Ensemble` from any spec
    :func:`model_file` takes."""
    from zoo.ensemble import load_model_file

    return load_model_file(model_file(model))


def model_file(model: str | Path) -> Path:
    """The local model file of a spec: a file path, a pretrained name, a ``models:/NAME@ALIAS``
    or ``models:/NAME/VERSION`` registry URI, or a ``runs:/RUN_ID[/PATH]`` run URI (downloaded;
    tracking store: :func:`zoo.tracking.tracking_uri`). A URI the store cannot resolve is a
    one-line error that says what the registry holds; nothing is created on the way."""
    from zoo import pretrained

    text = str(model)
    if pretrained.is_pretrained(text):
        return pretrained.model_path(text)
    if not text.startswith(MODEL_URI_PREFIXES):
        if not Path(text).is_file():
            shipped = ", ".join(pretrained.names()) or "none"
            raise FileNotFoundError(
                f"{text}: no such model file, registry URI or pretrained name (shipped: {shipped})"
            )
        return Path(text)
    import mlflow
    from mlflow.exceptions import MlflowException

    from zoo import tracking
    from zoo.bundle import BUNDLE_SUFFIX

    if tracking.default_store_missing():
        raise ValueError(
            f"{text}: there is no MLflow store here ({tracking.MLRUNS / 'mlflow.db'} does not "
            "exist); run in the folder that holds mlruns/ or set MLFLOW_TRACKING_URI"
        )
    tracking.quiet_logging()
    mlflow.set_tracking_uri(tracking.tracking_uri(create=False))
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text))
    except (MlflowException, OSError) as error:
        raise ValueError(f"{text}: {_unresolved(text, error)}") from None
    found = [local] if local.is_file() else sorted(local.rglob(f"*{BUNDLE_SUFFIX}"))
    if len(found) != 1:
        names = [str(p.relative_to(local)) for p in found]
        detail = f": {names}; name one in the URI" if found else ""
        raise ValueError(
            f"{text}: expected one model bundle (*{BUNDLE_SUFFIX}), found {len(found)}{detail}"
        )
    return found[0]


def registry_version(uri: str) -> str | None:
    """The registry version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names
    (the store is asked for an alias), else None."""
    if not uri.startswith("models:/"):
        return None
    name, _, rest = uri[len("models:/") :].partition("/")
    if "@" in name:
        from mlflow import MlflowClient

        name, alias = name.split("@", 1)
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    return rest or None


def _unresolved(uri: str, error: Exception) -> str:
    """Why ``uri`` could not be loaded, in one line, with what the store holds instead."""
    from mlflow import MlflowClient

    if uri.startswith("runs:/"):
        return "no such run, or no such artifact in it, in this MLflow store"
    try:
        models = MlflowClient().search_registered_models()
    except Exception:  # the store itself is unreadable: say what MLflow said
        return " ".join(str(error).split())[:300]
    held = []
    for found in models:
        aliases = ", ".join(f"@{alias}" for alias in sorted(found.aliases or {}))
        held.append(f"{found.name} ({aliases})" if aliases else found.name)
    what = f"registered models here: {'; '.join(held)}" if held else "the registry is empty"
    return f"no such registered model, version or alias; {what}"
