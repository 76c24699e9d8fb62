"""Approval as a person sees it: the MLflow UI (a React app, rendered by headless Debian Chromium) shows the
``champion`` alias on the approved version of the registered model, and follows it when it moves.

Chromium runs with ``--dump-dom`` and a virtual-time budget, so the page's JavaScript fetches the registry from the
real ``mlflow server`` on 127.0.0.1 and renders before the DOM is printed. Chromium must be installed
(``scripts/ensure_chromium.sh``); without it this test fails, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from facegen.cli import main
from tests.serve_fixtures import register_model
from tests.serve_fixtures import tiny_generators as _tiny_generators_fixture

tiny_generators = _tiny_generators_fixture  # the session fixture, used by this module's tests

ALIAS_TAG_MARKER = (
    "modelversionaliastag"  # data-component-id of MLflow's alias chips (model-registry/components/aliases)
)
BUDGETS_MS = (15000, 30000, 60000)  # virtual-time budgets tried in turn when the table has not rendered yet


VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class VersionTable(HTMLParser):
    """Rows of the registered model page's version table: {version: [aliases shown in that row]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._depth = 0
        self._row_depth: int | None = None
        self._version: str | None = None
        self._aliases: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag not in VOID_TAGS:  # void elements get no end tag: they must not count as depth
            self._depth += 1
        if attributes.get("role") == "row":
            self._row_depth, self._version, self._aliases = self._depth, None, []
        if self._row_depth is None:
            return
        href = attributes.get("href") or ""
        if "/versions/" in href and self._version is None:
            self._version = href.rsplit("/versions/", 1)[1].split("/")[0].split("?")[0]
        title = attributes.get("title")
        if ALIAS_TAG_MARKER in (attributes.get("data-component-id") or "") and title and title not in self._aliases:
            self._aliases.append(title)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        if self._row_depth is not None and self._depth == self._row_depth:
            if self._version is not None:
                self.rows[self._version] = self._aliases
            self._row_depth = None
        self._depth -= 1


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/ensure_chromium.sh (Debian package `chromium`)")
    return path


def rendered_dom(url: str, profile: Path, budget_ms: int) -> str:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        "--disable-default-apps",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={budget_ms}",
        "--dump-dom",
        url,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    if completed.returncode != 0:
        pytest.fail(f"chromium exited with {completed.returncode}: {completed.stderr[-2000:]}")
    return completed.stdout


def version_aliases(server: str, model_name: str, profile: Path, expect_versions: set[str]) -> dict[str, list[str]]:
    """The UI's version table of ``model_name`` once it shows every expected version row."""
    url = f"{server}/#/models/{quote(model_name)}"
    table = VersionTable()
    for budget in BUDGETS_MS:
        table = VersionTable()
        table.feed(rendered_dom(url, profile, budget))
        if expect_versions <= set(table.rows):
            return table.rows
    pytest.fail(f"the MLflow UI at {url} did not render versions {sorted(expect_versions)}; rows seen: {table.rows}")


def test_mlflow_ui_shows_champion_on_the_approved_version(mlflow_server: str, tiny_generators, tmp_path: Path) -> None:
    name = register_model(mlflow_server, tiny_generators, champion=None, prefix="ui")

    approve = CliRunner().invoke(
        main, ["approve", "2", "--by", "Ada", "--model-name", name, "--tracking-uri", mlflow_server]
    )
    assert approve.exit_code == 0, approve.output
    rows = version_aliases(mlflow_server, name, tmp_path / "profile", {"1", "2"})
    assert "champion" in rows["2"], rows
    assert "champion" not in rows["1"], rows

    # The alias moves (here from the command line, as a person would in the UI): the page follows it.
    approve = CliRunner().invoke(
        main, ["approve", "1", "--by", "Ada", "--model-name", name, "--tracking-uri", mlflow_server]
    )
    assert approve.exit_code == 0, approve.output
    rows = version_aliases(mlflow_server, name, tmp_path / "profile", {"1", "2"})
    assert "champion" in rows["1"] and "champion" not in rows["2"], rows
