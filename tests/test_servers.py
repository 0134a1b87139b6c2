"""Beyond one machine, on real servers (issue 18): a PostgreSQL database holds an Optuna study
that two separately started ``zoo tune`` workers share (as on two machines: different host
names, no common parent), and Optuna's heartbeat takes back the trial of a worker that was
killed; an MLflow tracking server with the PostgreSQL backend store takes ``zoo train``,
``zoo tune --final`` and serves ``zoo predict --model models:/...``. The servers are started
on 127.0.0.1 in temporary folders (:mod:`tests.servers`) and stopped afterwards."""

from __future__ import annotations

import io
import os
import shlex
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import rocksalt, run_zoo, zoo_command
from tests.servers import create_database, mlflow_server, postgres_bin, postgres_cluster

try:
    import psycopg  # noqa: F401

    DRIVER = True
except ImportError:
    DRIVER = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL (Debian: postgresql) missing"),
    pytest.mark.skipif(not DRIVER, reason="psycopg missing (pip install -e '.[postgres]')"),
]


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_command(start: str, base_url: str, server: str = "") -> list[str]:
    """The README's "Across machines" command that begins with ``start``, with ``DBHOST`` made
    this test's servers (PostgreSQL at ``base_url``, MLflow at ``server``)."""
    text = README.read_text()
    section = text[text.index("**Across machines.**") : text.index("**MLflow.** Each study")]
    (line,) = [ln for ln in section.splitlines() if ln.startswith(start)]
    host = base_url.removeprefix("postgresql://zoo@")
    line = line.replace("http://DBHOST:5000", server).replace("DBHOST:5432", host)
    return shlex.split(line)


@pytest.fixture(scope="module")
def postgres():
    with postgres_cluster() as base:
        yield base


def test_two_workers_share_a_postgres_study_and_the_heartbeat_takes_back_a_killed_trial(
    postgres, isolated
):
    import optuna
    from optuna.trial import TrialState

    from zoo.tuning.storage import RESUME_ATTR

    url = create_database(postgres, "zoo_optuna")
    written = readme_command("zoo tune", postgres)
    assert written[written.index("--storage") + 1] == url
    args = (*written[1:], "--trials", "4", "--epochs", "8", "--heartbeat", "1", "--threads", "1")
    base = {**os.environ, "DGLBACKEND": "pytorch"}
    first = subprocess.Popen(  # "machine A", killed inside its first trial
        zoo_command(*args), cwd=isolated, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**base, "ZOO_HOST": "machine-a", "ZOO_FAILPOINT": "epoch-saved@3"},
    )  # fmt: skip
    second = subprocess.Popen(  # "machine B", started on its own
        zoo_command(*args), cwd=isolated, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**base, "ZOO_HOST": "machine-b"},
    )  # fmt: skip
    killed, _ = first.communicate(timeout=600)
    output, _ = second.communicate(timeout=900)
    assert first.returncode == -signal.SIGKILL, killed.decode()[-3000:]
    assert second.returncode == 0, output.decode()[-3000:]

    study = optuna.load_study(study_name="cgcnn-shear", storage=url)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(complete) == 4
    assert len(failed) == 1 and failed[0].user_attrs["zoo.owner"].startswith("machine-a:")
    (continued,) = [t for t in complete if t.user_attrs.get(RESUME_ATTR) == failed[0].number]
    assert continued.params == failed[0].params  # the same parameters, continued by B
    assert continued.user_attrs["zoo.owner"].startswith("machine-b:")


def test_train_tune_and_predict_through_an_mlflow_server_on_postgres(postgres, isolated):
    from mlflow import MlflowClient

    backend = create_database(postgres, "zoo_mlflow")
    written = readme_command("mlflow server", postgres)
    assert written[written.index("--backend-store-uri") + 1] == backend
    (isolated / "artifacts").mkdir()
    with mlflow_server(written, isolated / "artifacts") as server:
        env = {"MLFLOW_TRACKING_URI": server}
        trained = run_zoo("train", "--epochs", "3", "--register", "demo-shear", cwd=isolated,
                          env=env)  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "demo-shear version 1, champion" in trained.stdout
        optuna_url = create_database(postgres, "optuna_final")
        tuned = run_zoo("tune", "--trials", "2", "--epochs", "2", "--final", "--storage",
                        optuna_url, cwd=isolated, env=env)  # fmt: skip
        assert tuned.returncode == 0, tuned.stderr[-3000:]
        assert "champion: version 1" in tuned.stdout
        (isolated / "nacl.cif").write_text(rocksalt().to(fmt="cif"))
        for name in ("demo-shear", "cgcnn-shear"):
            predicted = run_zoo("predict", "--model", f"models:/{name}@champion", "--input",
                                "nacl.cif", cwd=isolated, env=env)  # fmt: skip
            assert predicted.returncode == 0, predicted.stderr[-3000:]
            table = pd.read_csv(io.StringIO(predicted.stdout))
            assert table.loc[0, "shear_gpa"] > 0 and "registry version 1" in predicted.stderr
        client = MlflowClient(server)
        runs = client.search_runs([client.get_experiment_by_name("zoo").experiment_id])
        assert runs[0].data.metrics["val_mae_log10"] > 0
        assert not (isolated / "mlruns" / "mlflow.db").exists()  # nothing went to a local store
