"""``zoo ui`` serves the MLflow UI and API on the zoo's store."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from zoo.config import load_config
from zoo.training import train

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_zoo_ui_lists_the_runs(isolated):
    result = train(load_config(None, {"epochs": 1, "run_name": "seen"}), progress=False)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "zoo.cli", "ui", "--port", str(port)],
        cwd=isolated,
        env={**os.environ, "DGLBACKEND": "pytorch"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
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
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
