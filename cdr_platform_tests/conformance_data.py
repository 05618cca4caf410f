"""Where the CGRateS conformance cases are: CDR_CONFORMANCE_DIR, else ../shared/conformance/cgrates
beside the checkout. Missing, the tests that need them skip on a developer's machine and fail
under CI (`CI` set), where the cases must be there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cdr_platform.lib.settings import REPO_ROOT


def conformance_dir() -> Path:
    return Path(os.environ.get("CDR_CONFORMANCE_DIR") or REPO_ROOT.parent / "shared" / "conformance" / "cgrates")


def require_conformance_data(subfolder: str = "") -> Path:
    folder = conformance_dir() / subfolder
    if not folder.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{folder} is missing: CI needs the shared conformance cases (or CDR_CONFORMANCE_DIR)")
        pytest.skip(f"{folder} is not on this machine")
    return folder
