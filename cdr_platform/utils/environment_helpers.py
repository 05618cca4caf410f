"""Which environment the code location runs in: LOCAL (the project's own stack) or PROD."""

from __future__ import annotations

import os
from enum import Enum


class Environment(str, Enum):
    LOCAL = "local"
    PROD = "prod"


def get_environment() -> Environment:
    value = os.environ.get("CDR_ENV", "local").strip().lower() or "local"
    try:
        return Environment(value)
    except ValueError:
        raise ValueError(f"CDR_ENV must be 'local' or 'prod', got {value!r}") from None
