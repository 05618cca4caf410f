"""The dbt project of the platform, prepared (parsed) once so Dagster can read its manifest.

The project is `dbt_project/` of the project's files (CDR_PROJECT_DIR: the checkout, or the copy
an installed package carries at cdr_platform/project/). dbt writes its artifacts (target/, logs/)
into a checkout's project folder, as usual; the installed package's copy is never written to:
its artifacts go to `<CDR_STACK_DIR>/dbt/target` and `<CDR_STACK_DIR>/dbt/logs`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

from dagster_dbt import DbtProject

from cdr_platform.lib.settings import PACKAGE_DIR, load_settings
from cdr_platform.utils.environment_helpers import get_dbt_target


def dbt_project_dir() -> Path:
    """The dbt project: `dbt_project/` of CDR_PROJECT_DIR."""
    return load_settings().project_dir / "dbt_project"


def _artifacts_dir() -> Path:
    """Where dbt writes: the project folder, unless it is the installed package's copy."""
    settings = load_settings()
    project = settings.project_dir / "dbt_project"
    return settings.stack.directory / "dbt" if project.resolve().is_relative_to(PACKAGE_DIR) else project


def dbt_target_dir() -> Path:
    """dbt's target path: the manifest Dagster reads, and each invocation's artifacts in a folder of its own."""
    return _artifacts_dir() / "target"


def dbt_log_dir() -> Path:
    return _artifacts_dir() / "logs"


def __getattr__(name: str) -> Path:
    """DBT_PROJECT_DIR (the tests' and benchmarks' name) resolved when imported, not when this
    module is: the settings are read where a value is needed."""
    if name == "DBT_PROJECT_DIR":
        return dbt_project_dir()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dbt_executable() -> str:
    """dbt of this environment (the venv's), whether or not the venv is on PATH."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else "dbt"


def dbt_command(command: str, *args: str, target_path: Path | None = None) -> list[str]:
    """`dbt <command> <args>` on this project with its profiles, writing where dbt_target_dir() and
    dbt_log_dir() say; `target_path` keeps a run's artifacts out of the shared target (a test's, a
    benchmark's)."""
    project = dbt_project_dir()
    location = ["--project-dir", str(project), "--profiles-dir", str(project), "--log-path", str(dbt_log_dir())]
    return [dbt_executable(), command, *args, *location, "--target-path", str(target_path or dbt_target_dir())]


def _project_changed_since(manifest: Path) -> bool:
    """Whether a file of the dbt project is newer than the manifest."""
    built = manifest.stat().st_mtime
    project = dbt_project_dir()
    sources = [project / "dbt_project.yml", project / "profiles.yml"]
    for folder in ("models", "seeds", "macros", "tests"):
        sources += [f for f in (project / folder).rglob("*") if f.is_file()]
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
    folder = dbt_project_dir()
    project = DbtProject(project_dir=folder, profiles_dir=folder, target_path=dbt_target_dir(), target=get_dbt_target())
    manifest = Path(project.manifest_path)
    if not manifest.exists() or _project_changed_since(manifest):
        manifest.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no target/ yet
        with tempfile.TemporaryDirectory(prefix="parse-", dir=manifest.parent) as parsed:
            command = dbt_command("parse", "--quiet", "--target", get_dbt_target(), target_path=Path(parsed))
            subprocess.run(command, check=True, cwd=folder)
            os.replace(Path(parsed) / "manifest.json", manifest)
    return project
