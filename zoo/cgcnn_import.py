"""Turn a checkpoint of the original CGCNN code into a zoo model bundle.

The original ``model_best.pth.tar`` holds ``state_dict``, ``normalizer`` (``mean``/``std`` of the
training targets) and ``args`` (an ``argparse.Namespace`` with the architecture). The zoo's
``cgcnn`` uses the original's parameter names, so weights map one to one; batch-norm counters
that older torch versions did not save are filled with zero (they are unused in eval mode).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from zoo.bundle import ModelBundle
from zoo.elements import ElementTable
from zoo.graphs import GraphSettings
from zoo.models import create_model
from zoo.models.layers import element_feature_tensor
from zoo.transforms import TargetTransform

_TARGET_HINTS = {"shear": "shear", "bulk": "bulk"}
_HEAD_LAYERS = ("conv_to_fc.", "fcs.", "fc_out.")
_NOT_IN_ORIGINAL = (
    "num_batches_tracked",  # batch-norm counter older torch did not save (unused in eval)
    "elements.table",  # the element table comes from --atom-init
    "expansion.centers",  # fixed Gaussian centres, rebuilt from the architecture
    "loss_weights.weights",  # training-only multitask loss weights
)


def _zoo_name(original_name: str) -> str:
    """Parameter name in zoo's CGCNN: the original head layers live in ``heads.heads.0``."""
    if original_name.startswith(_HEAD_LAYERS):
        return f"heads.heads.0.{original_name}"
    return original_name


def read_original_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path}: not a readable CGCNN checkpoint ({error})") from error
    missing = {"state_dict", "normalizer", "args"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path}: CGCNN checkpoint lacks {sorted(missing)}")
    return checkpoint


def _args_dict(checkpoint: dict) -> dict:
    """The saved ``args``: a dict in some checkpoints, an ``argparse.Namespace`` in others."""
    args = checkpoint["args"]
    return dict(args) if isinstance(args, dict) else vars(args)


def guess_target(checkpoint: dict, path: Path) -> str:
    args = _args_dict(checkpoint)
    text = " ".join(str(v) for v in (args.get("data_options"), path.name)).lower()
    found = [t for hint, t in _TARGET_HINTS.items() if hint in text]
    if len(found) != 1:
        raise ValueError(f"{path}: cannot tell the target (shear or bulk); pass it explicitly")
    return found[0]


def import_cgcnn(
    checkpoint_path: str | Path,
    element_table: ElementTable,
    target: str | None = None,
    radius: float = 8.0,
    max_neighbors: int = 12,
) -> ModelBundle:
    """A bundle reproducing the original model (targets in log10 GPa, as the original's)."""
    checkpoint_path = Path(checkpoint_path)
    checkpoint = read_original_checkpoint(checkpoint_path)
    args = _args_dict(checkpoint)
    if args.get("task", "regression") != "regression":
        raise ValueError(f"{checkpoint_path}: only regression checkpoints can be imported")
    target = target or guess_target(checkpoint, checkpoint_path)
    config = {
        "atom_fea_len": int(args["atom_fea_len"]),
        "n_conv": int(args["n_conv"]),
        "h_fea_len": int(args["h_fea_len"]),
        "n_h": int(args["n_h"]),
        "gaussian_dmin": 0.0,
        "gaussian_dmax": float(radius),
        "gaussian_step": 0.2,
    }
    model = create_model(
        "cgcnn", element_features=element_feature_tensor(element_table), n_outputs=1, **config
    )
    state = dict(model.state_dict())
    original = {_zoo_name(name): value for name, value in checkpoint["state_dict"].items()}
    for name, value in original.items():
        if name not in state:
            raise ValueError(f"{checkpoint_path}: unexpected weight {name!r}")
        if state[name].shape != value.shape:
            raise ValueError(
                f"{checkpoint_path}: weight {name} has shape {tuple(value.shape)}, "
                f"expected {tuple(state[name].shape)} (element table of another size?)"
            )
        state[name] = value
    for name in state:
        if name not in original and not name.endswith(_NOT_IN_ORIGINAL):
            raise ValueError(f"{checkpoint_path}: weight {name!r} missing from checkpoint")
    model.load_state_dict(state, strict=True)
    normalizer = checkpoint["normalizer"]
    transform = TargetTransform(
        targets=(target,), mean=(float(normalizer["mean"]),), std=(float(normalizer["std"]),)
    )
    return ModelBundle(
        model_name="cgcnn",
        model_config=model.config.model_dump(),
        state_dict=model.state_dict(),
        graph_settings=GraphSettings(radius=radius, max_neighbors=max_neighbors),
        transform=transform,
        element_table=element_table,
        train_config={
            "imported_from": str(checkpoint_path),
            "original_args": {
                k: v for k, v in args.items() if isinstance(v, (int, float, str, bool))
            },
        },
    )
