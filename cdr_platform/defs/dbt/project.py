"""The dbt project of the platform, prepared (parsed) once so Dagster can read its manifest."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
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


def _project_changed_since(manifest: Path) -> bool:
    """Whether a file of the dbt project is newer than the manifest."""
    built = manifest.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "seeds", "macros", "tests"):
        sources += [f for f in (DBT_PROJECT_DIR / folder).rglob("*") if f.is_file()]
    return any(f.stat().st_mtime > built for f in sources)


@cache
def dbt_project() -> DbtProject:
    """The project with a manifest Dagster can read.

    Parsed when there is no manifest yet (a fresh clone) or when the project changed since (so
    edits show up in `dagster dev`, the tests and the CLI alike; a manifest older than a model
    would give Dagster a graph without it). Every process that loads the code location gets here - each
    run's worker too - so the manifest is written whole into place: a reader never sees half of
    it, and an unchanged project is not parsed again. Done here rather than by prepare_if_dev(),
    which looks for `dbt` on PATH and fails when the venv is not activated.
    """
    project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target=get_dbt_target())
    manifest = Path(project.manifest_path)
    if not manifest.exists() or _project_changed_since(manifest):
        manifest.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no target/ yet
        with tempfile.TemporaryDirectory(prefix="parse-", dir=manifest.parent) as parsed:
            command = dbt_command("parse", "--quiet", "--target", get_dbt_target(), target_path=Path(parsed))
            subprocess.run(command, check=True, cwd=DBT_PROJECT_DIR)
            os.replace(Path(parsed) / "manifest.json", manifest)
    return project
