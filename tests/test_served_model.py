"""A registered model served by a real ``mlflow models serve`` process, asked as a remote client
would (issue 14): structures are taken as data only, never as paths on the server (whether the
file exists or not, the answer is the same), requests are bounded, and rows without a number
answer ``null`` in valid JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import pytest

from tests.conftest import rocksalt
from tests.servers import free_port
from zoo import tracking
from zoo.config import load_config
from zoo.serving import MAX_STRUCTURES_PER_CALL, log_pyfunc, register
from zoo.training import train

pytestmark = pytest.mark.slow


def ask(base: str, rows: list[list[str]]) -> tuple[int, str]:
    body = json.dumps({"dataframe_split": {"columns": ["id", "structure"], "data": rows}})
    request = urllib.request.Request(
        f"{base}/invocations", body.encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"the answer holds {constant}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def served(isolated, demo):
    result = train(load_config(None, {"epochs": 1}), dataset=demo, progress=False)
    mlflow.set_tracking_uri(tracking.tracking_uri())
    with mlflow.start_run(run_id=result.run_id):
        info = log_pyfunc(result.bundle_path)
    register(info.model_uri, "cgcnn-shear", 0.1, {"zoo.run_id": result.run_id}, log=print)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/cgcnn-shear@champion",
         "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=isolated,
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
            "DGLBACKEND": "pytorch",
            # as in an activated environment: MLflow starts the server with `uvicorn`
            "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=2):
                break
        except OSError:
            assert server.poll() is None, "mlflow models serve stopped"
            assert time.time() < deadline, "mlflow models serve did not answer in 180 s"
            time.sleep(0.5)
    yield base
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def test_a_served_model_reads_no_server_file_and_answers_valid_json(served, isolated):
    secret = isolated / "secret.cif"
    rocksalt().to(filename=str(secret))
    crystal = rocksalt()
    status, text = ask(
        served,
        [
            ["existing file", str(secret)],
            ["missing file", str(isolated / "missing.cif")],
            ["system file", "/etc/hostname"],
            ["cif", crystal.to(fmt="cif")],
            ["poscar", crystal.to(fmt="poscar")],
            ["dict", json.dumps(crystal.as_dict())],
        ],
    )
    assert status == 200, text
    rows = {row["id"]: row for row in strict_json(text)["predictions"]}
    refused = {rows[k]["error"] for k in ("existing file", "missing file", "system file")}
    assert len(refused) == 1  # the same words whether the file exists or not
    assert "file paths are not accepted here" in refused.pop()
    for key in ("existing file", "missing file", "system file"):
        assert rows[key]["shear_gpa"] is None and rows[key]["shear_log10"] is None
    assert rows["cif"]["error"] == "" and rows["cif"]["shear_gpa"] > 0
    assert rows["poscar"]["shear_gpa"] == pytest.approx(rows["cif"]["shear_gpa"], rel=1e-5)
    assert "cannot read structure" in rows["dict"]["error"]  # JSON text is no structure format


def test_a_served_model_refuses_a_request_over_its_bound(served):
    rows = [[str(i), "x"] for i in range(MAX_STRUCTURES_PER_CALL + 1)]
    status, text = ask(served, rows)
    assert 400 <= status < 500, (status, text[:300])
    assert f"{MAX_STRUCTURES_PER_CALL + 1} structures in one call" in text
