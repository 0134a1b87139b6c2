"""Registry of model variants: ``register_model`` / ``create_model`` / ``list_models``."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import torch
from pydantic import BaseModel


@dataclass(frozen=True)
class ModelEntry:
    """A registered variant.

    Attributes:
        name: registry name (``cgcnn``...).
        model_class: ``nn.Module`` built as ``model_class(config, element_features, n_outputs)``.
        config_class: pydantic model of the variant's hyperparameters (unknown keys are errors).
        description: one paragraph on what the variant does.
        paper: the reference it follows.
        graph_parts: graph parts (:data:`zoo.keys.GRAPH_PARTS`) the variant reads.
    """

    name: str
    model_class: type[torch.nn.Module]
    config_class: type[BaseModel]
    description: str
    paper: str
    graph_parts: tuple[str, ...]


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    config: type[BaseModel],
    description: str,
    paper: str,
    graph_parts: tuple[str, ...] = ("bond",),
):
    """Class decorator adding a model variant under ``name``; a duplicate name is an error."""

    def decorator(model_class):
        if name in _REGISTRY:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(
            name, model_class, config, " ".join(description.split()), paper, tuple(graph_parts)
        )
        return model_class

    return decorator


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"no model named {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name]


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered variants matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def resolve_config(name: str, config: dict | None = None) -> BaseModel:
    """The variant's validated config from a partial dict (defaults filled in)."""
    return get_model_entry(name).config_class.model_validate(config or {})


def create_model(
    name: str,
    *,
    element_features: torch.Tensor | None = None,
    n_outputs: int = 1,
    **config,
) -> torch.nn.Module:
    """Build a registered variant.

    Args:
        name: registry name.
        element_features: float32 ``(MAX_Z + 1, F)`` feature table indexed by atomic number, with
            all-NaN rows for elements without features; None for the generated CGCNN table.
        n_outputs: number of predicted targets.
        **config: hyperparameters, validated by the variant's config class.
    """
    entry = get_model_entry(name)
    if element_features is None:
        from zoo.elements import generate_element_table
        from zoo.models.layers import element_feature_tensor

        element_features = element_feature_tensor(generate_element_table())
    return entry.model_class(resolve_config(name, config), element_features, n_outputs)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
