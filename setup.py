"""What pyproject.toml cannot say: the wheel carries the project's files.

At run time the package reads the dbt project (with its seeds), the Power BI project, the local
stack's config files and workspace.yaml, from `load_settings().project_dir` (CDR_PROJECT_DIR).
A checkout has them as its top-level folders; an installed package finds the copy that
`build_py` below puts at `cdr_platform/project/` in the wheel (`pip install .`,
`pip wheel .`, `python -m build`). Nothing of it is committed inside the package. An editable
install reads the checkout's own folders, so it gets no copy.

The wheel also carries `cdr_platform/dg.toml`, pyproject.toml's `[tool.dg]`: Dagster's
`load_from_defs_folder` (definitions.py) reads the project's configuration from the nearest
dg.toml or pyproject.toml above the package, and an installed package has no pyproject.toml.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
BUNDLE = Path("cdr_platform") / "project"  # lib/settings.py: PACKAGE_DIR / "project"
# every file of the project the package reads at run time
PROJECT_FILES = ("dbt_project", "powerbi", "stack", "workspace.yaml")
# what dbt writes into its project folder (git ignores them too): never shipped
DBT_ARTIFACTS = ("target", "target_*", "logs", "dbt_packages")
# anywhere: Python's caches, Power BI Desktop's per-user files (powerbi/.gitignore)
CACHES = ("__pycache__", "*.pyc", "localSettings.json", "cache.abf")


def _left_out(folder: str, names: list[str]) -> set[str]:
    patterns = CACHES + (DBT_ARTIFACTS if Path(folder) == HERE / "dbt_project" else ())
    return {n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)}


def _dg_toml() -> str:
    """pyproject.toml's [tool.dg] as a dg.toml (its settings at the top level)."""
    config = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dg"]
    lines = ["# written by setup.py from pyproject.toml's [tool.dg]"]
    tables = {k: v for k, v in config.items() if isinstance(v, dict)}
    lines += [f"{k} = {json.dumps(v)}" for k, v in config.items() if k not in tables]
    for name, table in tables.items():
        lines += ["", f"[{name}]", *(f"{k} = {json.dumps(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


class BuildPyWithProject(build_py):
    """build_py, then the project's files copied to cdr_platform/project/ of the build, and its dg.toml."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        bundle = Path(self.build_lib) / BUNDLE
        shutil.rmtree(bundle, ignore_errors=True)  # an earlier build's copy: files since deleted go too
        bundle.mkdir(parents=True)
        for name in PROJECT_FILES:
            source = HERE / name
            if source.is_dir():
                shutil.copytree(source, bundle / name, ignore=_left_out)
            elif source.is_file():
                shutil.copy2(source, bundle / name)
            else:
                # a wheel without them installs, then fails at run time: refuse to build it
                raise FileNotFoundError(f"{source} is missing: the wheel carries it as {BUNDLE / name}")
        (bundle.parent / "dg.toml").write_text(_dg_toml(), encoding="utf-8")


setup(cmdclass={"build_py": BuildPyWithProject})
