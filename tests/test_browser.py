"""What a user sees in the MLflow UI after ``zoo tune --final``, checked in a real browser
(headless Chromium driven by Selenium with the system's ``chromedriver``). Screenshots of both
pages are kept in the test's folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from zoo.cli import main

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="needs the Debian packages chromium and chromium-driver (.ci/run installs them)",
    ),
]


@pytest.fixture(scope="module")
def served_study(tmp_path_factory):
    """A finished 3-trial study with a registered champion, and ``zoo ui`` serving it: made
    once for the module, whose tests only read it. Yields (its folder, the UI's URL)."""
    from tests.servers import zoo_ui_server

    folder = tmp_path_factory.mktemp("served-study")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("ZOO_CACHE_DIR", str(folder / "graph-cache"))
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["tune", "--trials", "3", "--epochs", "3", "--final"]) == 0
    with zoo_ui_server(folder, 120) as base:
        yield folder, base


@pytest.fixture
def study(served_study, monkeypatch) -> Path:
    """The served study's folder, as the test's working folder (screenshots are kept there)."""
    monkeypatch.chdir(served_study[0])
    return served_study[0]


@pytest.fixture
def ui(served_study, study) -> str:
    """The UI's URL; the test runs in the study's folder."""
    return served_study[1]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=2400,1200")
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def wait_for_text(driver, texts: list[str], seconds: float = 60) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def seen(d):
        body = d.find_element(By.TAG_NAME, "body").text
        return body if all(t in body for t in texts) else False

    return WebDriverWait(driver, seconds, poll_frequency=0.5).until(seen)


def test_trial_runs_with_metrics_and_the_champion_alias_are_visible(ui, browser, study):
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    from zoo import tracking
    from zoo.commands.ui import runs_page

    client = MlflowClient(tracking.tracking_uri())
    experiment = client.get_experiment_by_name("tune-cgcnn-shear")

    # the link zoo ui prints opens the model-training view (not MLflow's GenAI view)
    browser.get(runs_page(ui, experiment.experiment_id))
    body = wait_for_text(browser, ["study-cgcnn-shear", "Model registry", "Runs"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    for genai in ("Prompts", "Judges", "Sessions", "Evaluation runs"):
        assert genai not in body.split("Run Name")[0], genai  # the side bar before the table
    # the study run, expanded, lists its trials (their objective in the name, at first look,
    # every one with its model in the Models column) and the refit
    browser.find_element(
        By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']"
    ).click()
    body = wait_for_text(browser, ["trial-0000", "trial-0001", "trial-0002", "final-trial-"])
    browser.save_screenshot(str(study / "runs.png"))
    trials = client.search_runs(
        [experiment.experiment_id], "tags.`optuna.state` = 'COMPLETE'", max_results=10
    )
    assert len(trials) == 3
    for run in trials:
        value = run.data.metrics["objective_val_mae_log10"]
        assert run.info.run_name.endswith(f" · {value:.4f}"), run.info.run_name
        assert run.info.run_name in body, (run.info.run_name, body)
        assert not run.outputs.model_outputs, run.info.run_name  # a trial keeps its bundle
    assert re.search(r"cgcnn-shear\s+v1", body), body  # the refit's model, registered

    # the registered model page shows version 1 with the champion alias
    browser.get(f"{ui}/#/models/cgcnn-shear")
    body = wait_for_text(browser, ["cgcnn-shear", "champion"])
    browser.save_screenshot(str(study / "model.png"))
    assert "Version 1" in body or "v1" in body


def test_a_run_page_shows_its_name_description_and_headline_metrics(ui, browser, study):
    from mlflow import MlflowClient

    from zoo import tracking

    client = MlflowClient(tracking.tracking_uri())
    experiment = client.get_experiment_by_name("tune-cgcnn-shear")
    (final,) = client.search_runs([experiment.experiment_id], "tags.`zoo.kind` = 'final'")
    browser.get(f"{ui}/#/experiments/{experiment.experiment_id}/runs/{final.info.run_id}")
    value = final.data.metrics["test_mae_log10"]
    body = wait_for_text(browser, ["cgcnn trained on shear", "Kept epoch", "test_mae_log10"])
    browser.save_screenshot(str(study / "run.png"))
    assert re.fullmatch(r"final-trial-\d{4}", final.info.run_name)
    assert final.info.run_name in body
    assert f"{value:.4f}"[:5] in body  # the headline number, as MLflow rounds it


def test_the_study_plots_render_offline(ui, browser, study):
    """Optuna's HTML plots carry plotly.js inside the file: they draw from a file:// URL with
    no network (no script is loaded from elsewhere), and name the objective with its unit."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    (page,) = (study / "mlruns").rglob("study/optimization_history.html")
    html = page.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", html)  # every script is inside the file
    assert len(html) > 1_000_000  # plotly.js itself
    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.main-svg"))
    labels = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, "text"))
    browser.save_screenshot(str(study / "optimization_history.png"))
    assert "validation MAE (log10 GPa)" in labels
    assert browser.execute_script("return typeof window.Plotly") == "object"
