"""``zoo ui``: the MLflow UI on the zoo's store, stopped with this command."""

from __future__ import annotations

import argparse
import sys

NAME = "ui"
HELP = "serve the MLflow UI on the zoo's runs"
EXAMPLES = [
    "zoo ui",
    "zoo ui --port 5001",
]
"""Shown at the end of the command's ``--help``."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on")


def runs_page(base: str, experiment_id: str) -> str:
    """The URL of an experiment's runs table in MLflow's model-training view. MLflow 3.17's
    UI has one switch, GenAI or model training, kept in the browser and GenAI at first;
    it follows the experiment tag ``mlflow.experimentKind`` only where that switch is off,
    so the link says ``workflowType=machine_learning`` (the switch's value in the link)."""
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def latest_experiment(uri: str) -> tuple[str, str] | None:
    """``(id, name)`` of the experiment of the store's latest run (None without runs)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    experiment_id = runs[0].info.experiment_id
    return experiment_id, client.get_experiment(experiment_id).name


def run(args) -> int:
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    from zoo import tracking
    from zoo.tracking import tracking_uri

    with socket.socket() as probe:
        try:
            probe.bind((args.host, args.port))
        except OSError:
            print(
                f"error: port {args.port} on {args.host} is in use (another zoo ui?); "
                "choose one with --port",
                file=sys.stderr,
            )
            return 2
    uri = tracking_uri()
    server = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri]
    server += ["--host", args.host, "--port", str(args.port), "--workers", "1"]
    server_log = tracking.MLRUNS / "ui-server.log"
    # MLflow's job runner (huey workers, for GenAI evaluation jobs) is not needed to browse
    # runs and models, and starting it doubles the time before the UI answers on 2 cores
    quiet = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    started = time.time()
    guard = subprocess.Popen(
        [sys.executable, "-m", "zoo.ui_guard", str(os.getpid()), *server],
        env=quiet,
        start_new_session=True,
        stdout=open(server_log, "ab"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
    )
    url = f"http://{args.host}:{args.port}"

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        while guard.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        if guard.poll() is not None:
            tail = server_log.read_text(errors="replace").splitlines()[-5:]
            print("error: the MLflow server stopped:", *tail, sep="\n  ", file=sys.stderr)
            return 2
        store = tracking.sqlite_path(uri) or uri
        print(
            f"MLflow UI at {url} for {store}, answering after {time.time() - started:.0f} s "
            f"(Ctrl-C stops it; server log {server_log})"
        )
        latest = latest_experiment(uri)
        if latest is not None:
            runs_table = runs_page(url, latest[0])
            print(f"runs of {latest[1]!r}, the latest experiment: {runs_table}")
        sys.stdout.flush()
        return guard.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if guard.poll() is None:
            guard.terminate()
            guard.wait(timeout=30)
