"""Model variants, selected by name: ``create_model("cgcnn")``, ``list_models()``."""

from zoo.models import cgcnn as _cgcnn  # noqa: F401  (registers the variants)
from zoo.models import variants as _variants  # noqa: F401
from zoo.models.registry import (
    ModelEntry,
    count_parameters,
    create_model,
    get_model_entry,
    list_models,
    register_model,
    resolve_config,
)

__all__ = [
    "ModelEntry",
    "count_parameters",
    "create_model",
    "get_model_entry",
    "list_models",
    "register_model",
    "resolve_config",
]
