"""Each setting is declared once (lib/settings.SETTINGS) and read nowhere else; what derives from
the declarations (Settings, the resources, the README's table) agrees with them; invalid values
fail at load, naming their variable."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from cdr_platform.lib import settings as settings_module
from cdr_platform.lib.settings import (
    REPO_ROOT,
    SECTIONS,
    SETTINGS,
    SETTINGS_BY_NAME,
    SettingError,
    Settings,
    load_settings,
    settings_table,
)

SETTINGS_MODULE = Path(settings_module.__file__).resolve()


def environment_reads(path: Path) -> list[str]:
    """Where a module reads the process environment: os.environ, os.getenv, `from os import environ`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append(f"{path.name}:{node.lineno} os.{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.module == "os":
            found += [f"{path.name}:{node.lineno} from os import {a.name}" for a in node.names if "env" in a.name]
    return found


def test_no_module_but_the_settings_reads_the_environment():
    modules = [*(REPO_ROOT / "cdr_platform").rglob("*.py"), *(REPO_ROOT / "benchmarks").rglob("*.py")]
    offenders = [read for m in modules if m.resolve() != SETTINGS_MODULE for read in environment_reads(m)]
    assert offenders == [], "read the setting through cdr_platform.lib.settings instead"


def test_the_rule_catches_each_way_of_reading_the_environment(tmp_path):
    module = tmp_path / "sneaky.py"
    module.write_text(
        "import os\nfrom os import environ, getenv\n"
        "a = os.environ.get('CDR_X')\nb = os.getenv('CDR_Y')\nc = environ['CDR_Z']\n"
    )
    reads = sorted(r.split(" ", 1)[1] for r in environment_reads(module))
    assert reads == ["from os import environ", "from os import getenv", "os.environ", "os.getenv"]


def test_each_setting_is_declared_once_and_lands_in_exactly_one_place_of_settings():
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names)), "a variable declared twice"
    targets = [path for s in SETTINGS for path in s.into]
    assert len(targets) == len(set(targets)), "two settings fill the same field"
    assert all(s.into for s in SETTINGS), "a setting nothing reads"
    fields = {f.name for f in dataclasses.fields(Settings) if f.name not in SECTIONS}
    for section, cls in SECTIONS.items():
        fields |= {f"{section}.{f.name}" for f in dataclasses.fields(cls)}
    assert set(targets) == fields


def test_each_resource_field_that_carries_a_setting_has_its_type_and_default():
    from cdr_platform.defs.resources import SettingsResource

    resources = SettingsResource.__subclasses__()
    assert {r.__name__ for r in resources} >= {"KafkaResource", "WarehouseResource", "MediationResource"}
    carried = []
    for resource in resources:
        hints = typing.get_type_hints(resource)
        for field_name, declared in resource.carried_settings().items():
            carried.append(declared.name)
            value = declared.default if not callable(declared.default) else None
            if value is not None and not isinstance(value, Path):
                assert isinstance(value, hints[field_name]), (resource.__name__, field_name)
                assert resource.model_fields[field_name].default == value
    assert len(carried) == len(set(carried)), "two resource fields carry the same setting"


def test_the_resources_hand_the_drivers_the_settings_they_carry_by_name(monkeypatch, tmp_path):
    from cdr_platform.defs.resources import resources_for
    from cdr_platform.utils.environment_helpers import Environment

    # no password at first (not the environment's, not the local stack's file): an unresolved
    # EnvVar cannot be read outside a Dagster run, and subprocess_env reads every field
    monkeypatch.delenv("CDR_WAREHOUSE_PASSWORD", raising=False)
    monkeypatch.setenv("CDR_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("CDR_MEDIATION_SCHEMA", "med_test")
    monkeypatch.setenv("CDR_MAX_DURATION_S", "3600")
    resources = resources_for(load_settings(), Environment.LOCAL)
    warehouse_env = resources["warehouse"].subprocess_env()
    assert warehouse_env["CDR_MEDIATION_SCHEMA"] == "med_test"
    assert resources["warehouse"].dbt_vars()["mediation_schema"] == "med_test"
    assert resources["mediation_settings"].subprocess_env()["CDR_MAX_DURATION_S"] == "3600"
    # a secret reaches the resource as an EnvVar, resolved by Dagster (never a literal in run config)
    import dagster as dg

    monkeypatch.setenv("CDR_WAREHOUSE_PASSWORD", "s3cret")
    password = resources_for(load_settings(), Environment.LOCAL)["warehouse"].__dict__["password"]
    assert isinstance(password, dg.EnvVar) and password.env_var_name == "CDR_WAREHOUSE_PASSWORD"
    assert "s3cret" not in repr(load_settings())  # repr leaves the password out


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CDR_MEDIATION_SCHEMA", "mediation; drop table x"),
        ("CDR_BI_ROLE", "1role"),
        ("CDR_TARIFF_TIMEZONE", "Mars/Olympus_Mons"),
        ("CDR_REJECT_ECHO_BYTES", "-1"),
        ("CDR_TOPIC_PARTITIONS", "0"),
        ("CDR_MAX_REJECTION_RATE", "1.5"),
        ("CDR_RUN_RETENTION_DAYS", "0"),
        ("CDR_WAREHOUSE_PORT", "http"),
        ("CDR_SPARK_CONF", "[1, 2]"),
        ("CDR_ENV", "staging"),
        ("CDR_RUN_WATCHDOG", "maybe"),
    ],
)
def test_an_invalid_value_fails_at_load_naming_its_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError, match=re.escape(variable)):
        load_settings()


def test_a_secret_is_taken_as_it_is_and_never_repeated_in_an_error(monkeypatch):
    monkeypatch.setenv("CDR_WAREHOUSE_PASSWORD", "  spaced secret  ")
    assert load_settings().warehouse.password == "  spaced secret  "  # not stripped
    secret = SETTINGS_BY_NAME["CDR_WAREHOUSE_PASSWORD"]
    refusing = dataclasses.replace(secret, type=dataclasses.replace(secret.type, parse=_refuse))
    monkeypatch.setattr(settings_module, "SETTINGS", tuple(refusing if s is secret else s for s in SETTINGS))
    with pytest.raises(SettingError) as refused:
        load_settings()
    assert secret.name in str(refused.value) and "spaced secret" not in str(refused.value)


def _refuse(raw: str):
    raise ValueError("must be something else")


def test_the_readme_settings_table_is_the_declarations():
    readme = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings table:[^\n]*-->\n(.*?)\n<!-- end of settings table -->", readme, re.S)
    assert match, "README.md lost its settings table markers"
    assert match.group(1) == settings_table(), "regenerate it: python scripts/update_readme_settings.py"
