"""Save -> load gives identical outputs; loading is strict."""

import pytest
import torch

from zoo.bundle import bundle_from_model, load_bundle
from zoo.elements import generate_element_table
from zoo.graphs import GraphSettings
from zoo.models import create_model
from zoo.predictor import predict_structures
from zoo.transforms import TargetTransform


@pytest.fixture
def bundle():
    torch.manual_seed(3)
    model = create_model("cgcnn", n_outputs=2, n_conv=2, h_fea_len=16).eval()
    transform = TargetTransform(targets=("shear", "bulk"), mean=(1.6, 2.0), std=(0.3, 0.35))
    return bundle_from_model(
        model,
        "cgcnn",
        GraphSettings(radius=7.0, max_neighbors=10),
        transform,
        generate_element_table(),
        train_config={"seed": 1},
    )


def test_round_trip_gives_identical_predictions(tmp_path, bundle, demo):
    path = bundle.save(tmp_path / "m.zoo.pt")
    again = load_bundle(path)
    assert again.graph_settings == bundle.graph_settings
    assert again.transform == bundle.transform
    assert again.element_table.features == bundle.element_table.features
    assert again.versions["torch"] == torch.__version__.split("+")[0] or again.versions["torch"]
    before = predict_structures(bundle, demo.ids, demo.structures)
    after = predict_structures(again, demo.ids, demo.structures)
    assert before.equals(after)
    assert list(after.columns) == [
        "id",
        "shear_gpa",
        "shear_log10",
        "bulk_gpa",
        "bulk_log10",
        "error",
        "flag_few_neighbors",
    ]
    assert (after["shear_gpa"] > 0).all()


def test_loading_is_strict(tmp_path, bundle):
    path = bundle.save(tmp_path / "m.zoo.pt")
    payload = torch.load(path, weights_only=True)

    def broken(change, name):
        data = dict(payload)
        change(data)
        target = tmp_path / name
        torch.save(data, target)
        return target

    with pytest.raises(ValueError, match="fields"):
        load_bundle(broken(lambda d: d.update(extra=1), "extra.pt"))
    with pytest.raises(ValueError, match="format 99"):
        load_bundle(broken(lambda d: d.update(format=99), "format.pt"))
    with pytest.raises(ValueError, match="n_convs"):
        load_bundle(
            broken(
                lambda d: d.update(model_config={**d["model_config"], "n_convs": 1}), "config.pt"
            )
        )
    with pytest.raises(RuntimeError, match="size mismatch|Missing key"):
        load_bundle(
            broken(
                lambda d: d.update(model_config={**d["model_config"], "n_conv": 3}), "weights.pt"
            )
        )
    (tmp_path / "junk.pt").write_bytes(b"not a bundle")
    with pytest.raises(ValueError, match="junk.pt"):
        load_bundle(tmp_path / "junk.pt")


def test_a_format_1_bundle_reads_without_a_training_domain(tmp_path, bundle):
    """Bundles written before format 2 (no ``training_domain``) still load, with None; a
    format 2 file without the field is refused like any missing field."""
    payload = bundle.to_payload()
    assert payload["format"] == 2
    old = {k: v for k, v in payload.items() if k != "training_domain"} | {"format": 1}
    torch.save(old, tmp_path / "old.zoo.pt")
    loaded = load_bundle(tmp_path / "old.zoo.pt")
    assert loaded.training_domain is None and loaded.model_name == bundle.model_name
    torch.save({**old, "format": 2}, tmp_path / "missing.zoo.pt")
    with pytest.raises(ValueError, match="bundle fields"):
        load_bundle(tmp_path / "missing.zoo.pt")
