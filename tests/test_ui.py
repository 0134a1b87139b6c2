"""``zoo ui`` serves the MLflow UI and API on the zoo's store."""

import json
import urllib.request

import pytest

from zoo.config import load_config
from zoo.training import train

pytestmark = pytest.mark.slow


def test_zoo_ui_lists_the_runs(zoo_ui):
    result = train(load_config(None, {"epochs": 1, "run_name": "seen"}), progress=False)
    base = zoo_ui(90)
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/runs/search",
        method="POST",
        data=json.dumps({"experiment_ids": ["1"]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        runs = json.load(response)["runs"]
    assert [run["info"]["run_id"] for run in runs] == [result.run_id]
    assert runs[0]["info"]["run_name"] == "seen"
    with urllib.request.urlopen(base, timeout=10) as response:
        assert "MLflow" in response.read().decode()
