"""The dbt project of the platform, prepared (parsed) once so Dagster can read its manifest."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform.utils.environment_helpers import get_dbt_target

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"


def dbt_executable() -> str:
    """dbt of this environment (the venv's), whether or not the venv is on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_command(command: str, *args: str, target_path: Path | None = None) -> list[str]:
    """`dbt <command> <args>` on this project with its profiles; `target_path` keeps a run's
    artifacts out of the shared target/ (a test's, a benchmark's)."""
    location = ["--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    return [dbt_executable(), command, *args, *location, *(["--target-path", str(target_path)] if target_path else [])]


@cache
def dbt_project() -> DbtProject:
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=get_dbt_target())
    # Parse when there is no manifest yet (a fresh clone) and on every `dagster dev` start, so
    # edits to the dbt project show up. Done here rather than by prepare_if_dev(), which looks
    # for `dbt` on PATH and fails when the venv is not activated.
    if not project.manifest_path.exists() or os.environ.get("DAGSTER_IS_DEV_CLI"):
        subprocess.run(dbt_command("parse", "--quiet", "--target", get_dbt_target()), check=True, cwd=DBT_PROJECT_DIR)
    return project
