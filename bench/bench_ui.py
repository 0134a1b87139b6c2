"""How long the MLflow UI takes to answer (issue 18: "within a few seconds on 2 cores"):
``zoo ui`` (one server worker, MLflow's job runner off) against ``mlflow server`` as MLflow
starts it by default (one worker, job runner on), on the same small store, three starts each.

    python bench/bench_ui.py
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seconds_to_answer(command: list[str], port: int, cwd: Path, env: dict) -> float:
    started = time.time()
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    return time.time() - started
            except OSError:
                if server.poll() is not None or time.time() - started > 120:
                    raise RuntimeError(f"{command[:4]} did not answer") from None
                time.sleep(0.1)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = {**os.environ, "DGLBACKEND": "pytorch"}
        subprocess.run([sys.executable, "-m", "zoo.cli", "train", "--epochs", "2"], cwd=cwd,
                       env=env, check=True, capture_output=True)  # fmt: skip
        store = f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}"
        rows = {"mlflow server (MLflow's defaults, --workers 1)": [], "zoo ui": []}
        for _ in range(3):
            port = free_port()
            rows["mlflow server (MLflow's defaults, --workers 1)"].append(seconds_to_answer(
                [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], port, cwd, env,
            ))  # fmt: skip
            port = free_port()
            rows["zoo ui"].append(seconds_to_answer(
                [sys.executable, "-m", "zoo.cli", "ui", "--port", str(port)], port, cwd, env,
            ))  # fmt: skip
    print("\n| server | seconds to answer /health (3 starts) | median |")
    print("| --- | --- | ---: |")
    for name, values in rows.items():
        listed = ", ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {listed} | {statistics.median(values):.1f} |")


if __name__ == "__main__":
    main()
