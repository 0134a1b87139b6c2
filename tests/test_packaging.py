"""A wheel built from the repository works when installed in a fresh virtual environment, run
from a folder outside the repository that holds folders named ``models/`` and ``tuning/``
(issue 15): the bundled search spaces are in it, and the import names ``zoo.models`` and
``zoo.tuning`` cannot be shadowed.

The fresh environment gets the wheel alone (``--no-deps``); the pinned dependencies come from
the test's own environment through a ``.pth`` file, so the test needs no download (a ``.pth``
file's folders are added to ``sys.path`` but their own ``.pth`` files, such as the repository's
editable install, are not run)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the repository's wheel installed; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", work / "dist", ROOT)  # fmt: skip
    (wheel,) = (work / "dist").glob("zoo-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
        "--no-deps", "-q", wheel)  # fmt: skip
    return venv / "bin"


def test_the_wheel_runs_zoo_from_any_folder(installed, tmp_path):
    elsewhere = tmp_path / "project"
    for shadow in ("models", "tuning"):  # what a user's folder may well hold
        (elsewhere / shadow).mkdir(parents=True)
        (elsewhere / shadow / "__init__.py").write_text("raise ImportError('the wrong one')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ZOO_FAILPOINT")}
    env["ZOO_CACHE_DIR"] = str(tmp_path / "cache")
    python = installed / "python"
    where = run(python, "-c", "import zoo, zoo.models, zoo.tuning.space as s;"
                "print(zoo.__file__); print(s.SPACES_DIR)", cwd=elsewhere, env=env)  # fmt: skip
    package, spaces = where.stdout.split()
    assert str(ROOT) not in package and Path(spaces, "cgcnn-shear.yaml").is_file()
    assert run(installed / "zoo", "--version", cwd=elsewhere, env=env).stdout.startswith("zoo ")
    assert "cgcnn-angle-global" in run(installed / "zoo", "models", cwd=elsewhere, env=env).stdout
    tuned = run(installed / "zoo", "tune", "--trials", "1", "--epochs", "1", cwd=elsewhere, env=env)
    assert "1/1" in tuned.stdout
    run(python, "-c", "from zoo.bundle import load_bundle", cwd=elsewhere, env=env)
    listed = run(installed / "zoo", "pretrained", cwd=elsewhere, env=env).stdout
    assert "zoo-elastic-mp2024" in listed  # the shipped model travels in the wheel
    shipped = run(python, "-c", "import zoo.pretrained as p; print(p.model_path("
                  "'zoo-elastic-mp2024'))", cwd=elsewhere, env=env).stdout.strip()  # fmt: skip
    assert str(ROOT) not in shipped and Path(shipped).stat().st_size > 100_000


def test_building_the_package_gives_no_setuptools_warning(tmp_path):
    """Every package that holds files is declared (the search spaces once warned twice)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
               "-w", str(tmp_path), str(ROOT)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "is absent from the `packages` configuration" not in done.stdout + done.stderr
