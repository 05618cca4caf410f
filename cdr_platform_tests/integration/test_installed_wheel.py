"""Installed as a user installs it (`pip install .`, not editable, as deploy/Dockerfile does): the
package finds its project's files - the dbt project and its seeds, the Power BI project, the
stack files - in the copy the wheel carries, from any working folder, and writes nothing into it.

The wheel is built from the checkout's files as a clone has them (tracked, or new and not
ignored: no dbt target/, no .stack/), offline, with the project venv's setuptools. It goes into a
venv of its own outside the checkout, which reaches the project venv's dependencies through a
.pth file: a path in a .pth file is added to sys.path, but the .pth files in that folder are not
read, so the editable install's finder is not installed and cdr_platform comes from the wheel.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cdr_platform.lib.settings import REPO_ROOT, process_environment

pytestmark = [pytest.mark.integration, pytest.mark.standalone]  # no shared service: run beside the unit tests

PROJECT_BIN = Path(sys.executable).parent  # the project venv, which runs this test

# run in the installed package: where it found its files, and the code location's asset graph
PROBE = """
import json, sys
import cdr_platform
from cdr_platform.lib.settings import PACKAGE_DIR, checkout_root, load_settings
from cdr_platform.defs.dbt.project import dbt_project_dir, dbt_target_dir
from cdr_platform.lib.bi.powerbi_model import load_semantic_model, report_dir
from cdr_platform.lib.rating.default_plan import seeds_dir
from cdr_platform.definitions import defs

graph = defs.resolve_asset_graph()
print(json.dumps({
    "package": cdr_platform.__file__,
    "checkout": str(checkout_root()),
    "project_dir": str(load_settings().project_dir),
    "package_dir": str(PACKAGE_DIR),
    "dbt_project": str(dbt_project_dir()),
    "dbt_target": str(dbt_target_dir()),
    "seeds": sorted(p.name for p in seeds_dir().glob("*.csv")),
    "tables": len(load_semantic_model().tables),
    "report": str(report_dir()),
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
}))
"""


def _run(command: list, cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-5000:]}"
    )
    return result


def _clone_files(destination: Path) -> None:
    """The checkout's files as a clone (with today's edits) has them: tracked or new, not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


def _package_files(package: Path) -> set[str]:
    return {str(p.relative_to(package)) for p in package.rglob("*") if "__pycache__" not in p.parts}


def test_the_installed_wheel_finds_its_project_files_from_any_folder(tmp_path):
    source, dist, venv, work = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    _clone_files(source)
    env = process_environment(CDR_STACK_DIR=str(tmp_path / "stack"), CDR_DATA_DIR=str(tmp_path / "data"))
    for name in ("CDR_PROJECT_DIR", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)

    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source], work, env)
    (wheel,) = dist.glob("cdr_platform-*.whl")
    _run([sys.executable, "-m", "venv", "--without-pip", venv], work, env)
    python = venv / "bin" / "python"
    # installed before the .pth exists: pip sees only the new venv, never the editable install
    _run([*pip, "--python", python, "install", "--no-deps", "--no-index", wheel], work, env)
    site_packages = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], work, env).stdout.strip()
    )
    (site_packages / "project_venv_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    (venv / "bin" / "dbt").symlink_to(PROJECT_BIN / "dbt")  # dbt beside the venv's python, as pip would put it
    package = site_packages / "cdr_platform"
    shipped = _package_files(package)

    assert "Usage: cdr" in _run([venv / "bin" / "cdr", "--help"], work, env).stdout

    found = json.loads(_run([python, "-c", PROBE], work, env).stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(venv), found["package"]  # the wheel's, not the checkout's
    assert found["checkout"] == "None"
    bundled = package / "project"
    assert Path(found["project_dir"]) == bundled
    assert Path(found["dbt_project"]) == bundled / "dbt_project"
    assert (bundled / "dbt_project" / "dbt_project.yml").is_file()
    assert found["seeds"] == sorted(p.name for p in (REPO_ROOT / "dbt_project" / "seeds" / "tariff").glob("*.csv"))
    assert found["tables"] > 0 and (Path(found["report"]) / "definition" / "pages").is_dir()
    assert (bundled / "stack" / "maven" / "spark-jars.pom.xml").is_file()
    assert (bundled / "stack" / "kafka" / "log4j2.properties").is_file()
    # dbt's manifest went to the stack folder, and nothing was written into the package
    assert Path(found["dbt_target"]) == tmp_path / "stack" / "dbt" / "target"
    assert (tmp_path / "stack" / "dbt" / "target" / "manifest.json").is_file()
    assert not (bundled / "dbt_project" / "target").exists() and not (bundled / "dbt_project" / "logs").exists()
    assert _package_files(package) == shipped
    assets = set(found["assets"])
    assert {
        "billing/billing_cdrs",
        "billing/invoice_lines",
        "marts/fct_revenue_daily",
        "marts/dim_subscriber",
    } <= assets
    assert {"powerbi/semantic_model", "powerbi/report", "tariffs/tp_rating_profiles", "rating_cdrs"} <= assets

    # Dagster's own check of the code location, through the workspace file the package carries
    env["DAGSTER_HOME"] = str(tmp_path / "dagster_home")
    (tmp_path / "dagster_home").mkdir()
    validated = _run([python, "-m", "dagster", "definitions", "validate", "-w", bundled / "workspace.yaml"], work, env)
    assert "Validation successful for code location cdr_platform" in validated.stdout + validated.stderr
    assert _package_files(package) == shipped
