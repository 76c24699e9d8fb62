"""The rater page as a rater uses it: headless Debian Chromium driven by Selenium clicks faces, downloads the
answers as CSV and JSON, and those files import to the rates the clicks imply.

Chromium and its driver must be installed (``scripts/ensure_chromium.sh``: Debian packages ``chromium`` and
``chromium-driver``); without them this test fails, it never skips. The driver is given by path, so Selenium
Manager never looks anything up or downloads anything.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from facegen.humaneval.export import CANDIDATE_VS_CHAMPION, REAL_VS_GENERATED, TEMPLATE_COLUMNS, export_pairwise_set
from facegen.humaneval.ratings import AnswerKey, load_answer_key, load_ratings
from facegen.humaneval.scoring import Rate, score_ratings
from tests.provenance_fixtures import pairwise_marking
from tests.test_human_eval_export import random_faces
from tests.test_mlflow_ui_alias import chromium

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1200,1000",
)
DOWNLOAD_TIMEOUT_S = 30.0
RATER = "rater-7"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[WebDriver, Path]]:
    """Headless Chromium that saves downloads into the returned folder without asking."""
    binary = chromium()
    if not CHROMEDRIVER.is_file():
        pytest.fail(f"{CHROMEDRIVER} is missing: run scripts/ensure_chromium.sh (Debian package `chromium-driver`)")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        yield driver, downloads
    finally:
        driver.quit()


def wait_for_file(path: Path) -> Path:
    """``path`` once Chromium has finished writing it (no ``.crdownload`` left beside it)."""
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.is_file() and not list(path.parent.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    pytest.fail(f"no download {path.name} after {DOWNLOAD_TIMEOUT_S:.0f} s; folder has {sorted(path.parent.iterdir())}")


def click(driver: WebDriver, pair_id: str, side: str) -> None:
    driver.find_element(By.CSS_SELECTOR, f'section#{pair_id} button[data-side="{side}"]').click()


def expected_rates(key: AnswerKey, clicks: dict[str, str]) -> tuple[Rate, Rate]:
    """(fool, win) that the final clicks imply, straight from the answer key."""

    def rate(task: str) -> Rate:
        chosen = {p: side for p, side in clicks.items() if key.pairs[p].task == task}
        return Rate(sum(side == key.pairs[p].key_side for p, side in chosen.items()), len(chosen))

    return rate(REAL_VS_GENERATED), rate(CANDIDATE_VS_CHAMPION)


def test_rater_page_downloads_the_clicked_answers(
    browser: tuple[WebDriver, Path], real_faces_32: np.ndarray, tmp_path: Path
) -> None:
    driver, downloads = browser
    paths = export_pairwise_set(
        random_faces(6, 1),
        real_faces_32[:6],
        tmp_path / "set",
        n_pairs=6,
        seed=2,
        champion=random_faces(6, 2),
        **pairwise_marking(random_faces(6, 1), random_faces(6, 2)),
    )
    key = load_answer_key(paths["answer_key"])
    by_task = {
        task: sorted(p for p, pair in key.pairs.items() if pair.task == task)
        for task in (REAL_VS_GENERATED, CANDIDATE_VS_CHAMPION)
    }
    # Both sides clicked in both tasks; some pairs left blank.
    clicks = dict(zip(by_task[REAL_VS_GENERATED][:4], ["left", "right", "left", "right"], strict=True))
    clicks |= dict(zip(by_task[CANDIDATE_VS_CHAMPION][:3], ["right", "left", "left"], strict=True))

    driver.get(paths["html"].as_uri())
    driver.find_element(By.ID, "download-csv").click()  # no rater id yet: the page asks for one, saves nothing
    alert = driver.switch_to.alert
    assert "rater id" in alert.text
    alert.accept()
    changed_mind = by_task[REAL_VS_GENERATED][0]
    click(driver, changed_mind, "right")  # a first choice the rater then changes
    for pair_id, side in clicks.items():
        click(driver, pair_id, side)
    assert driver.find_element(By.ID, "progress").text == "7 / 12 answered"
    driver.refresh()  # answers are kept in the browser
    assert driver.find_element(By.ID, "progress").text == "7 / 12 answered"
    driver.find_element(By.ID, "rater").send_keys(RATER)
    driver.find_element(By.ID, "download-csv").click()
    csv_path = wait_for_file(downloads / f"ratings_{RATER}.csv")
    driver.find_element(By.ID, "download-json").click()
    json_path = wait_for_file(downloads / f"ratings_{RATER}.json")

    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == TEMPLATE_COLUMNS
        rows = list(reader)
    with paths["ratings_template"].open(newline="", encoding="utf-8") as handle:
        template = list(csv.DictReader(handle))
    assert [row["pair_id"] for row in rows] == [row["pair_id"] for row in template]
    assert {row["pair_id"]: row["choice"] for row in rows if row["choice"]} == clicks
    assert {(row["rater"], row["set_id"]) for row in rows} == {(RATER, key.set_id)}
    assert json.loads(json_path.read_text(encoding="utf-8")) == rows

    fool, win = expected_rates(key, clicks)
    assert (fool.n, win.n) == (4, 3)
    for downloaded in (csv_path, json_path):
        results = score_ratings(key, load_ratings([downloaded], key))
        assert (results.fool, results.win, results.n_unanswered, results.n_raters) == (fool, win, 5, 1)
