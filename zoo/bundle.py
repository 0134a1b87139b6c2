"""The model bundle: one file with everything needed to use a trained model.

A bundle holds the variant name and its resolved config, the weights, the graph settings, the
target transform (targets, log10 normaliser, units), the element feature table, the training
config it came from (if any), its training domain (:mod:`zoo.domain`: elements and ranges of the
crystals it was trained on; None for bundles written before format 2) and package versions.
It is written with ``torch.save`` holding only tensors and plain Python values, and read with
``torch.load(weights_only=True)``; loading is strict: unknown or missing fields, a format this
version does not read, an invalid config or a weight that does not fit are all errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from zoo.elements import ElementTable
from zoo.files import atomic_write
from zoo.graphs import GraphSettings
from zoo.models import create_model, get_model_entry, resolve_config
from zoo.transforms import TargetTransform
from zoo.versions import package_versions

BUNDLE_FORMAT = 2
READABLE_FORMATS = (1, 2)
"""Format 2 added ``training_domain``; a format 1 file reads with ``training_domain = None``."""
BUNDLE_SUFFIX = ".zoo.pt"
_FIELDS = {
    "format",
    "model_name",
    "model_config",
    "state_dict",
    "graph_settings",
    "transform",
    "element_table",
    "element_table_source",
    "train_config",
    "metrics",
    "training_domain",
    "versions",
}


@dataclass
class ModelBundle:
    """A trained model with its metadata (see module docstring)."""

    model_name: str
    model_config: dict
    state_dict: dict[str, torch.Tensor]
    graph_settings: GraphSettings
    transform: TargetTransform
    element_table: ElementTable
    train_config: dict | None = None
    metrics: dict | None = None
    versions: dict = field(default_factory=package_versions)
    training_domain: dict | None = None

    @property
    def train_data(self) -> dict:
        """What the model was trained on: ``name`` (the file's name, or the data set's label),
        ``path`` (None for data given in memory) and ``source`` (the label the run logged)."""
        path = ((self.train_config or {}).get("data") or {}).get("path")
        source = (self.training_domain or {}).get("source")
        name = Path(path).name if path else source
        return {"name": name, "path": path, "source": source}

    def build_model(self) -> torch.nn.Module:
        """The model with the bundle's weights, in eval mode (strict weight loading)."""
        from zoo.models.layers import element_feature_tensor

        model = create_model(
            self.model_name,
            element_features=element_feature_tensor(self.element_table),
            n_outputs=len(self.transform.targets),
            **self.model_config,
        )
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as partial:
            torch.save(self.to_payload(), partial)
        return path

    def to_payload(self) -> dict:
        """The bundle as tensors and plain values (what :meth:`save` writes)."""
        return {
            "format": BUNDLE_FORMAT,
            "model_name": self.model_name,
            "model_config": dict(self.model_config),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "graph_settings": self.graph_settings.model_dump(),
            "transform": self.transform.model_dump(),
            "element_table": {z: list(v) for z, v in self.element_table.features.items()},
            "element_table_source": self.element_table.source,
            "train_config": self.train_config,
            "metrics": self.metrics,
            "training_domain": self.training_domain,
            "versions": dict(self.versions),
        }


def bundle_from_model(
    model: torch.nn.Module,
    model_name: str,
    graph_settings: GraphSettings,
    transform: TargetTransform,
    element_table: ElementTable,
    train_config: dict | None = None,
    metrics: dict | None = None,
    training_domain: dict | None = None,
) -> ModelBundle:
    return ModelBundle(
        model_name=model_name,
        model_config=model.config.model_dump(),
        state_dict=model.state_dict(),
        graph_settings=graph_settings,
        transform=transform,
        element_table=element_table,
        train_config=train_config,
        metrics=metrics,
        training_domain=training_domain,
    )


def load_bundle(path: str | Path) -> ModelBundle:
    """Read a bundle file strictly (see module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model bundle")
    payload = read_payload(path)
    if isinstance(payload, dict) and payload.get("kind") == "ensemble":
        raise ValueError(f"{path}: an ensemble, not one model; load it with zoo.ensemble")
    return bundle_from_payload(payload, path)


def read_payload(path: Path) -> object:
    """What a zoo model file holds (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable zoo model file ({error})") from error


def bundle_from_payload(payload: object, path) -> ModelBundle:
    """A bundle from :meth:`ModelBundle.to_payload`'s dict, checked strictly; ``path`` names
    where it came from in errors."""
    if isinstance(payload, dict) and payload.get("format") == 1:
        payload = {**payload, "format": BUNDLE_FORMAT, "training_domain": None}
    if not isinstance(payload, dict) or set(payload) != _FIELDS:
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: bundle fields {found} differ from {sorted(_FIELDS)}")
    if payload["format"] != BUNDLE_FORMAT:
        raise ValueError(
            f"{path}: bundle format {payload['format']}, this zoo reads {list(READABLE_FORMATS)}"
        )
    get_model_entry(payload["model_name"])
    config = resolve_config(payload["model_name"], payload["model_config"]).model_dump()
    bundle = ModelBundle(
        model_name=payload["model_name"],
        model_config=config,
        state_dict=payload["state_dict"],
        graph_settings=GraphSettings.model_validate(payload["graph_settings"]),
        transform=TargetTransform.model_validate(payload["transform"]),
        element_table=ElementTable(
            features={int(z): tuple(v) for z, v in payload["element_table"].items()},
            source=payload["element_table_source"],
        ),
        train_config=payload["train_config"],
        metrics=payload["metrics"],
        versions=payload["versions"],
        training_domain=payload["training_domain"],
    )
    bundle.build_model()  # fails here, naming the file's problem, if weights do not fit
    return bundle
