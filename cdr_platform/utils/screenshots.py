"""`make screenshots` (`cdr screenshots`): the pictures in the README, taken by the project itself.

* the Dagster asset graph: a `dagster dev` of its own (a throwaway DAGSTER_HOME, a free port on
  127.0.0.1), its global lineage page in headless Chromium;
* the local dashboard: rendered from the warehouse's marts as they are (run `make demo` first).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cdr_platform.lib.settings import load_settings
from cdr_platform.utils import headless_browser
from cdr_platform.utils.dagster_dev import DagsterDev

GRAPH_PAGE = "/asset-groups"  # the global asset lineage


def default_out() -> Path:
    """The README's pictures, `docs/screenshots/` of the project; an installed package, which
    carries no docs, writes them under CDR_DATA_DIR instead."""
    settings = load_settings()
    docs = settings.project_dir / "docs"
    return docs / "screenshots" if docs.is_dir() else settings.data_dir / "screenshots"


def __getattr__(name: str) -> Path:
    """DEFAULT_OUT (the CLI's name) resolved when used, not when this module is imported."""
    if name == "DEFAULT_OUT":
        return default_out()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def asset_graph(path: Path) -> Path:
    """A screenshot of the asset graph, from a `dagster dev` started (and stopped) for it."""
    with tempfile.TemporaryDirectory(prefix="cdr-screenshots-") as home:
        dagster_home = Path(home) / "dagster_home"
        dagster_home.mkdir()  # DagsterDev writes the local instance there: no first-visit dialog, no telemetry
        with DagsterDev(dagster_home, Path(home) / "dagster-dev.log") as dev:
            dev.wait_until_loaded()
            # the graph lays itself out after the page loads: give its scripts time
            return headless_browser.screenshot(dev.url + GRAPH_PAGE, path, size=(1800, 1000), budget_ms=25_000)


def dashboard(path: Path) -> Path:
    """A screenshot of the dashboard rendered from the marts as they are."""
    from cdr_platform.lib.bi import dashboard as html_dashboard
    from cdr_platform.lib.warehouse import connect

    settings = load_settings()
    with connect(settings.warehouse) as conn:
        data = html_dashboard.collect(conn, settings.marts_schema)
    with tempfile.TemporaryDirectory(prefix="cdr-dashboard-") as folder:
        page = html_dashboard.render(data, Path(folder) / "cdr_dashboard.html")
        return headless_browser.screenshot(page.as_uri(), path, size=(1400, 1450))


def take_all(out: Path | None = None) -> list[Path]:
    out = out or default_out()
    return [asset_graph(out / "asset-graph.png"), dashboard(out / "dashboard.png")]
