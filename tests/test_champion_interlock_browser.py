"""The gate interlock as a person would walk around it: in the real MLflow UI (headless Debian Chromium driven by
Selenium) the ``champion`` alias is moved to a version whose gates failed, and the running service refuses it, keeps
serving the previous champion and says why on ``/readyz`` and ``/metrics``; once the person records a forced approval
on that version in the same UI (``approved_by`` and ``approval_forced_reason`` tags), the service swaps it in.

Chromium and its driver must be installed (``scripts/ensure_chromium.sh``); without them this test fails, it never
skips. Elements are found by what a person sees (labels, button text, the dialog role) and MLflow's test ids, not by
generated CSS classes (written against the MLflow 3.17 UI, the version pyproject pins).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx
from mlflow import MlflowClient
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as shown
from selenium.webdriver.support.ui import WebDriverWait

from facegen.serve.app import create_app
from tests.serve_fixtures import register_model, serve_settings, uvicorn_in_thread
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture
from tests.test_human_eval_browser import browser as _browser_fixture
from tests.test_serve_app import REFUSED

tiny_generators, browser = _tiny_generators_fixture, _browser_fixture  # fixtures used by this module's test

#: The version page's "Aliases" field and the button that opens its alias editor ("Add", or the edit pencil).
ALIAS_EDITOR = '//*[@data-testid="descriptions-item"][.//*[normalize-space(text())="Aliases"]]//button'
#: The version page's form for a new tag (name and value inputs, an "Add" button).
TAG_FORM = '//form[.//input[@data-testid="tags-form-input-name"]]'
UI_TIMEOUT_S = 30
POLL_INTERVAL_S = 0.5  # the service's alias poll: the refusal must show within a few of these


def move_alias_in_the_ui(driver: WebDriver, server: str, name: str, version: str, alias: str) -> None:
    """What a person does on the model version page: open the alias editor, type the alias, save."""
    wait = WebDriverWait(driver, UI_TIMEOUT_S)
    driver.get(f"{server}/#/models/{quote(name)}/versions/{version}")
    wait.until(shown.element_to_be_clickable((By.XPATH, ALIAS_EDITOR))).click()
    dialog = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, '[role="dialog"]')))
    wait.until(lambda _: f"alias for model version {version}" in dialog.text)  # the dialog has opened on this version
    dialog.find_element(By.CSS_SELECTOR, 'input[role="combobox"]').send_keys(alias, Keys.ENTER)
    wait.until(lambda _: f'The "{alias}" alias is also being used on version' in dialog.text)  # the UI warns, no more
    dialog.find_element(By.XPATH, './/button[normalize-space(.)="Save aliases"]').click()
    wait.until(shown.invisibility_of_element_located(dialog))


def tag_version_in_the_ui(driver: WebDriver, key: str, value: str) -> None:
    """On the open model version page: type a tag's name and value into the tags form, add it, see it listed."""
    form = WebDriverWait(driver, UI_TIMEOUT_S).until(shown.visibility_of_element_located((By.XPATH, TAG_FORM)))
    form.find_element(By.CSS_SELECTOR, 'input[data-testid="tags-form-input-name"]').send_keys(key)
    form.find_element(By.CSS_SELECTOR, 'input[data-testid="tags-form-input-value"]').send_keys(value)
    form.find_element(By.XPATH, './/button[normalize-space(.)="Add"]').click()
    row = (By.CSS_SELECTOR, f'tr[data-row-key="{key}"]')
    WebDriverWait(driver, UI_TIMEOUT_S).until(lambda _: value in driver.find_element(*row).text)


def served_once(http: httpx.Client, condition) -> httpx.Response:
    """``/readyz`` as soon as its body meets ``condition`` (within a few alias polls of the service)."""

    def ready_when_met(_: httpx.Client) -> httpx.Response | None:
        response = http.get("/readyz")
        return response if condition(response.json()) else None

    return WebDriverWait(http, 20 * POLL_INTERVAL_S, poll_frequency=0.1).until(ready_when_met)


def test_moving_champion_to_a_failed_version_in_the_mlflow_ui_is_refused_by_the_service(
    mlflow_server: str, tiny_generators, browser, tmp_path: Path
) -> None:
    driver, _ = browser
    name = register_model(mlflow_server, tiny_generators, champion="1", failed=("2",), prefix="interlock")
    registry = MlflowClient(tracking_uri=mlflow_server)
    settings = serve_settings(mlflow_server, name, tmp_path, poll_interval_s=POLL_INTERVAL_S)
    with uvicorn_in_thread(create_app(settings)) as service, httpx.Client(base_url=service, timeout=10) as http:
        assert http.get("/readyz").json()["model_version"] == "1"

        move_alias_in_the_ui(driver, mlflow_server, name, "2", "champion")
        assert registry.get_registered_model(name).aliases["champion"] == "2"  # the UI moved it past the gate

        ready = served_once(http, lambda body: body["refused"] is not None)
        assert ready.status_code == 200 and ready.json() == {
            "status": "ready",
            "model_name": name,
            "alias": "champion",
            "model_version": "1",
            "reason": None,
            "refused": {"version": "2", "reason": REFUSED},
        }
        face = http.get("/generate", params={"seed": 3})
        assert face.status_code == 200 and face.headers["x-facegen-model-version"] == "1"
        metrics = http.get("/metrics").text
        assert f'facegen_champion_refused{{reason="{REFUSED}",version="2"}} 1.0' in metrics
        assert "facegen_model_version 1.0" in metrics

        tag_version_in_the_ui(driver, "approved_by", "ada")  # who, but not why: still refused, the reason follows
        why_missing = "gate_status is 'failed' and no forced approval (approval_forced_reason not set)"
        ready = served_once(http, lambda body: body["refused"] == {"version": "2", "reason": why_missing})
        assert ready.json()["model_version"] == "1"
        tag_version_in_the_ui(driver, "approval_forced_reason", "raters prefer it")
        ready = served_once(http, lambda body: body["model_version"] == "2")
        assert ready.status_code == 200 and ready.json()["refused"] is None
        face = http.get("/generate", params={"seed": 3})
        assert face.status_code == 200 and face.headers["x-facegen-model-version"] == "2"
