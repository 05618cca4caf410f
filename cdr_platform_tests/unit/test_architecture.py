"""The layers hold: import-linter's contracts (pyproject.toml) pass, and a forbidden import fails them."""

import shutil
import subprocess
import sys
from pathlib import Path

from cdr_platform.lib.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    # the package is found on PYTHONPATH first: the copy under test, not the installed checkout
    return subprocess.run(
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold_for_the_code_as_it_is():
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def _copy_with(tmp_path: Path, module: str, line: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "cdr_platform", root / "cdr_platform", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    target = root / "cdr_platform" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return root


def test_lib_importing_dagster_breaks_a_contract(tmp_path):
    result = _lint_imports(_copy_with(tmp_path, "lib/markdown.py", "import dagster  # noqa"))
    assert result.returncode != 0
    assert "lib imports no Dagster, defs or utils BROKEN" in result.stdout


def test_a_domain_importing_another_breaks_a_contract(tmp_path):
    result = _lint_imports(_copy_with(tmp_path, "lib/rating/cdr.py", "import cdr_platform.lib.mediation.store  # noqa"))
    assert result.returncode != 0
    assert "lib domains are independent BROKEN" in result.stdout


def test_anything_but_definitions_importing_defs_breaks_a_contract(tmp_path):
    result = _lint_imports(_copy_with(tmp_path, "utils/local_stack.py", "import cdr_platform.defs.resources  # noqa"))
    assert result.returncode != 0
    assert "defs is imported by definitions.py only BROKEN" in result.stdout


def test_an_import_cycle_breaks_a_contract(tmp_path):
    # session imports jars: jars importing session closes a cycle
    result = _lint_imports(_copy_with(tmp_path, "lib/spark/jars.py", "import cdr_platform.lib.spark.session  # noqa"))
    assert result.returncode != 0
    assert "No import cycle between the modules and packages of any package BROKEN" in result.stdout
