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
from pathlib import Path

import mlflow
import pytest

from tests.conftest import rocksalt
from tests.servers import free_port
from tests.test_security import hostile_dicts
from zoo import tracking
from zoo.config import load_config
from zoo.serving import RequestBounds, log_pyfunc, register
from zoo.training import train

pytestmark = pytest.mark.slow


def ask(base: str, rows: list[list], raw: str | None = None) -> tuple[int, str]:
    body = raw or json.dumps({"dataframe_split": {"columns": ["id", "structure"], "data": rows}})
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


SERVER: dict[str, int] = {}
"""The pid of the running ``mlflow models serve`` process (set by the fixture)."""

PEAK_SERVER_MB = 1500
"""The most the server's processes may have held (their peak resident sets summed, MB) after
the bounded requests; the unbounded 38,000-atom CIF of issue 28 took 3,700."""


def server_peak_mb() -> float:
    """Sum of the peak resident set (Linux ``VmHWM``) of the server and its children."""
    import psutil

    root = psutil.Process(SERVER["pid"])
    total = 0
    for process in [root, *root.children(recursive=True)]:
        status = Path(f"/proc/{process.pid}/status").read_text()
        total += int(
            next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
        )
    return total / 1e3


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
    SERVER["pid"] = server.pid
    yield base
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=60)


def test_a_served_model_reads_no_server_file_and_answers_valid_json(marker, served, isolated):
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
            ["plain dict", crystal.as_dict()],
            *[[f"hostile {name}", value] for name, value in hostile_dicts().items()],
        ],
    )
    assert status == 200, text
    rows = {row["id"]: row for row in strict_json(text)["predictions"]}
    refused = {rows[k]["error"] for k in ("existing file", "missing file", "system file")}
    assert len(refused) == 1  # the same words whether the file exists or not
    assert "file paths are not read here" in refused.pop()
    for key in ("existing file", "missing file", "system file"):
        assert rows[key]["shear_gpa"] is None and rows[key]["shear_log10"] is None
    assert rows["cif"]["error"] == "" and rows["cif"]["shear_gpa"] > 0
    assert rows["poscar"]["shear_gpa"] == pytest.approx(rows["cif"]["shear_gpa"], rel=1e-5)
    assert "cannot read structure" in rows["dict"]["error"]  # JSON text is no structure format
    assert rows["plain dict"]["shear_gpa"] == pytest.approx(rows["cif"]["shear_gpa"], rel=1e-5)
    for name in hostile_dicts():  # an object reference imports nothing, reads no file
        assert "object reference" in rows[f"hostile {name}"]["error"]
        assert rows[f"hostile {name}"]["shear_gpa"] is None
    assert "root:" not in text


def test_a_served_model_bounds_its_work_and_refuses_in_one_line_of_json(served):
    """Too many rows, too many sites in all, a CIF whose symmetry expands past the per-structure
    bound, JSON nested 100,000 deep and a malformed request: each answered at once as one line
    of JSON, with no stack trace; a bad row among good ones is that row's error."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    bounds = RequestBounds()
    refusals = {
        "rows": ask(served, [[str(i), "x"] for i in range(bounds.structures + 1)]),
        "sites": ask(served, [[str(i), (rocksalt() * (3, 3, 3)).as_dict()] for i in range(100)]),
        "nested": ask(served, [], raw='{"dataframe_split": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "malformed": ask(served, [], raw='{"dataframe_split": {"columns": ["id"], "data": [[1]]}}'),
    }
    for name, (status, text) in refusals.items():
        assert status == 400, (name, status, text[:300])
        answer = strict_json(text)
        assert set(answer) == {"error_code", "message"}, (name, answer)
        assert "\n" not in answer["message"] and "stack_trace" not in text, name
        assert "Traceback" not in text and "/site-packages/" not in text, name
    assert f"{bounds.structures + 1:,} structures in one request" in refusals["rows"][1]
    assert "21,600 sites in one request" in refusals["sites"][1]
    assert "nested too deeply" in refusals["nested"][1]
    assert "missing inputs ['structure']" in refusals["malformed"][1]  # MLflow's schema check

    general = [[0.10, 0.20, 0.30], [0.05, 0.15, 0.35], [0.12, 0.27, 0.41], [0.21, 0.33, 0.07],
               [0.31, 0.02, 0.17], [0.14, 0.39, 0.23], [0.36, 0.11, 0.28],
               [0.27, 0.44, 0.13]]  # fmt: skip
    expands = Structure.from_spacegroup("Fm-3m", Lattice.cubic(60.0), ["Na"] * 8, general)
    assert len(expands) > 1000
    started = time.perf_counter()
    status, text = ask(served, [["big", str(CifWriter(expands, symprec=0.01))],
                                ["bad", "data_x\n_cell_length_a nonsense\n"],
                                ["good", rocksalt().to(fmt="cif")]])  # fmt: skip
    assert status == 200 and time.perf_counter() - started < 30, text[:300]
    rows = {row["id"]: row for row in strict_json(text)["predictions"]}
    assert f"{len(expands):,} sites; at most 1,000" in rows["big"]["error"]
    assert rows["bad"]["error"] and rows["bad"]["shear_gpa"] is None
    assert rows["good"]["error"] == "" and rows["good"]["shear_gpa"] > 0
    peak = server_peak_mb()
    print(f"mlflow models serve: peak resident {peak:.0f} MB after the bounded requests")
    assert peak < PEAK_SERVER_MB, peak
