"""Real servers for the tests that need them, started on 127.0.0.1 in a temporary folder and
stopped afterwards: a PostgreSQL cluster (Debian's ``postgresql`` package, an unprivileged
cluster made with ``initdb``; as root the cluster runs as the ``postgres`` user), an MLflow
tracking server backed by it, and ``zoo ui`` over a folder's store."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as ``postgres`` then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@contextmanager
def postgres_cluster():
    """Yields a SQLAlchemy URL base ``postgresql://zoo@127.0.0.1:PORT``; databases are made
    with :func:`create_database`. The cluster lives in its own temporary folder (one the
    ``postgres`` user can enter, when run as root) and is stopped and removed afterwards."""
    import tempfile

    binaries = postgres_bin()
    if binaries is None:
        raise FileNotFoundError("initdb not found (install Debian's postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="zoo-postgres-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    run = lambda *cmd: subprocess.run(_as_server_user([str(c) for c in cmd]), check=True,  # noqa: E731
                                      capture_output=True, text=True)  # fmt: skip
    run(binaries / "initdb", "-D", data, "-U", "zoo", "--auth=trust", "-E", "UTF8")
    port = free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder}"
    run(binaries / "pg_ctl", "-D", data, "-o", options, "-l", folder / "server.log", "-w", "start")
    try:
        yield f"postgresql://zoo@127.0.0.1:{port}"
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def create_database(base_url: str, name: str) -> str:
    """A new database on the cluster; returns its URL."""
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return f"{base_url}/{name}"


def _set(args: list[str], flag: str, value: str) -> list[str]:
    args = list(args)
    args[args.index(flag) + 1] = value
    return args


def wait_for_health(url: str, server: subprocess.Popen, seconds: float) -> None:
    """Return once ``url/health`` answers 200; raise when ``seconds`` pass or the server exits."""
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError(f"no server answered at {url} within {seconds} s") from None
            time.sleep(0.5)


@contextmanager
def serving(
    command: list[str], port: int, seconds: float, env: dict, stderr, cwd: Path | None = None
):
    """``command`` in its own session (in ``cwd``, with ``env``, its output to ``stderr``),
    serving on 127.0.0.1:``port``: yields its URL once ``/health`` answers 200 (waiting up to
    ``seconds``); its process group is stopped on exit."""
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                              stderr=stderr, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, server, seconds)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@contextmanager
def mlflow_server(command: list[str], artifacts: Path, seconds: float = 90):
    """``command`` (``mlflow server ...``, as the README writes it) with its artifact folder,
    host and port made ``artifacts``, 127.0.0.1 and a free port; yields its URL once
    ``/health`` answers."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    command = _set(_set(command, "--artifacts-destination", str(artifacts)), "--host", "127.0.0.1")
    command = _set(command, "--port", str(port))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    with (
        open(artifacts.parent / "mlflow-server.log", "w") as log,
        serving([str(bin_dir / "mlflow"), *command[1:]], port, seconds, env, log) as url,
    ):  # fmt: skip
        yield url


@contextmanager
def zoo_ui_server(folder: Path, seconds: float):
    """``zoo ui`` over ``folder``'s store (``folder/mlruns``, whatever ``$MLFLOW_TRACKING_URI``
    an earlier ``mlflow.set_tracking_uri`` in this process left) on a free loopback port: yields
    the base URL once ``/health`` answers 200 (waiting up to ``seconds``); stopped on exit."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["DGLBACKEND"] = "pytorch"
    command = [sys.executable, "-m", "zoo.cli", "ui", "--port", str(port)]
    with serving(command, port, seconds, env, subprocess.DEVNULL, cwd=folder) as url:
        yield url
