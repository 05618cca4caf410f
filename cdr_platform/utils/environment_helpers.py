"""Which environment the code location runs in, and what follows from it.

LOCAL (the default): the project's own stack, PostgreSQL, dbt target `postgres`.
PROD: the production warehouse (SQL Server, dbt target `sqlserver`), secrets from the
environment. `CDR_ENV` chooses; `CDR_DBT_TARGET` overrides the dbt target alone.
"""

from __future__ import annotations

from enum import Enum

from cdr_platform.lib.settings import load_settings


class Environment(str, Enum):
    LOCAL = "local"
    PROD = "prod"


def get_environment() -> Environment:
    return Environment(load_settings().environment)  # load_settings rejects any other CDR_ENV


def get_dbt_target() -> str:
    """The dbt target: the warehouse kind of the environment (postgres / sqlserver)."""
    return load_settings().dbt_target_name
