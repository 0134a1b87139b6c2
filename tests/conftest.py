"""Shared fixtures. Tests that need ``../shared`` skip with a reason where it is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEV_SET = SHARED / "data" / "mp_elasticity_binaries_2025.json.gz"
DEV_SPLIT = SHARED / "data" / "mp_elasticity_binaries_2025_split.csv"
REFERENCE = SHARED / "reference" / "cgcnn"

needs_shared = pytest.mark.skipif(
    not (DEV_SET.exists() and REFERENCE.exists()),
    reason=f"shared data not found at {SHARED} (tests with real reference data need ../shared)",
)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own folder with its own graph cache and MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "graph-cache"))
    # set, then removed: so the teardown restores the value from before the test even when the
    # test's mlflow.set_tracking_uri (which also sets the variable) added it
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    return tmp_path


@pytest.fixture
def zoo_ui(isolated):
    """Call ``zoo_ui(seconds)`` once the runs exist: starts ``zoo ui`` on a free loopback port
    over the test folder's store, waits up to ``seconds`` for ``/health`` to answer 200 and
    returns the base URL. The server is stopped at teardown."""
    from tests.servers import zoo_ui_server

    with ExitStack() as servers:
        yield lambda seconds: servers.enter_context(zoo_ui_server(isolated, seconds))


@pytest.fixture(scope="session")
def demo():
    from zoo.readers import read_demo

    return read_demo()


def rocksalt(a: float = 5.64) -> Structure:
    """Conventional NaCl cell, 8 atoms."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def fcc_primitive(a: float = 3.61, species: str = "Cu") -> Structure:
    """One-atom fcc cell: 12 nearest neighbours at a / sqrt(2)."""
    return Structure(
        Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]]), [species], [[0, 0, 0]]
    )


def bcc_conventional(a: float = 2.87, species: str = "Fe") -> Structure:
    """Two-atom bcc cell: 8 neighbours at a*sqrt(3)/2, then 6 at a."""
    return Structure(Lattice.cubic(a), [species, species], [[0, 0, 0], [0.5, 0.5, 0.5]])


def zoo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "zoo.cli", *args]


def run_zoo(
    *args: str, cwd, failpoint: str | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``zoo ARGS`` in a fresh process in ``cwd``; ``failpoint`` sets ``$ZOO_FAILPOINT``,
    ``env`` adds variables."""
    env = {**os.environ, "DGLBACKEND": "pytorch", **(env or {})}
    env.pop("ZOO_FAILPOINT", None)
    if failpoint:
        env["ZOO_FAILPOINT"] = failpoint
    return subprocess.run(
        zoo_command(*args),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


MARKER = "zoo_security_marker_module"
"""A module of the tests' own that object references in hostile input name (issue 28)."""


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The marker module on ``sys.path`` and ``$PYTHONPATH``; returns the file its import
    would write."""
    folder = tmp_path / "marker"
    folder.mkdir()
    imported = tmp_path / "marker-was-imported"
    (folder / f"{MARKER}.py").write_text(
        f"open({str(imported)!r}, 'w').write('imported')\n"
        "class Anything:\n"
        "    def __init__(self, *args, **kwargs):\n"
        "        open(kwargs.get('filename', '/dev/null')).read()\n"
        "    @classmethod\n"
        "    def from_dict(cls, d):\n"
        "        return cls(**{k: v for k, v in d.items() if not k.startswith('@')})\n"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    yield imported
    assert MARKER not in sys.modules, "the marker module was imported"
    assert not imported.exists(), "the marker module was imported (in another process)"
