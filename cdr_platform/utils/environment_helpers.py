"""Which environment the code location runs in, and what follows from it.

LOCAL (the default): the project's own stack, PostgreSQL, dbt target `postgres`; synthetic traffic
(the generator, `cdr demo`, `cdr generate`) and generated reference data.
PROD: the production warehouse (SQL Server, dbt target `sqlserver`), secrets from the
environment, CDRs from the network only and the operator's reference files. `CDR_ENV` chooses;
`CDR_DBT_TARGET` overrides the dbt target alone.

Production refuses to start on unsafe settings: the code location (`cdr_platform.definitions`)
and every `cdr` command call `require_safe_production`, which lists every problem at once
(`lib.settings.production_problems`), naming each variable and never a secret's value.
"""

from __future__ import annotations

from enum import Enum

from cdr_platform.lib.settings import SettingError, Settings, load_settings, production_problems


class Environment(str, Enum):
    LOCAL = "local"
    PROD = "prod"


class ProductionSettingsError(SettingError):
    """Production (CDR_ENV=prod) with unsafe settings: the message lists every problem."""


def get_environment() -> Environment:
    return Environment(load_settings().environment)  # load_settings rejects any other CDR_ENV


def get_dbt_target() -> str:
    """The dbt target: the warehouse kind of the environment (postgres / sqlserver)."""
    return load_settings().dbt_target_name


def code_location_problems(settings: Settings) -> list[str]:
    """What the production code location needs beyond `production_problems`: the folder of the
    operator's reference files. Only the variable is checked here, when the code location loads (it
    is the same in every process); the files are data, delivered and replaced while the platform
    runs, so a missing one fails the reference asset that needs it, not the whole code location."""
    if settings.reference_dir is None:
        return [
            "CDR_REFERENCE_DIR is not set: production loads the operator's reference files "
            "(numbering_plan.csv, cells.csv, subscribers.csv) from it, never generated data"
        ]
    return []


def require_safe_production(settings: Settings | None = None, *, code_location: bool = False) -> None:
    """Raise ProductionSettingsError listing every problem when the settings are production's
    (CDR_ENV=prod) and unsafe; `code_location`: also what the code location needs. Nothing locally."""
    settings = settings or load_settings()
    if settings.environment != Environment.PROD.value:
        return
    problems = production_problems(settings) + (code_location_problems(settings) if code_location else [])
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise ProductionSettingsError(
            f"CDR_ENV=prod refuses to start with unsafe settings ({len(problems)} problem(s)):\n{listed}"
        )


def synthetic_traffic_refusal(command: str) -> str | None:
    """Why `command`, which writes synthetic CDRs, may not run here (one line); None locally."""
    if get_environment() is Environment.PROD:
        return (
            f"{command} refuses to run with CDR_ENV=prod: it writes synthetic CDRs, and production's raw-cdrs "
            "carries the network's only"
        )
    return None
