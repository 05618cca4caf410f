"""Secrets from files: `<NAME>_FILE` (the Docker secrets convention), the local stack's generated
passwords as the warehouse passwords' default files, and their export into the environment
(Dagster reads secrets as EnvVar; dbt and the Spark drivers inherit the environment)."""

from __future__ import annotations

import shutil
import stat
import subprocess

import psycopg.conninfo
import pytest

from cdr_platform.lib.settings import (
    REPO_ROOT,
    SETTINGS,
    SettingError,
    export_file_secrets,
    load_settings,
    local_password_file,
)


def test_a_secret_is_read_from_the_file_its_FILE_variable_names_without_the_line_end(tmp_path):
    secret = tmp_path / "warehouse_password"
    secret.write_text("s3cret with spaces\n")
    environ = {"CDR_STACK_DIR": str(tmp_path), "CDR_WAREHOUSE_PASSWORD_FILE": str(secret)}
    assert load_settings(environ).warehouse.password == "s3cret with spaces"
    # the variable itself, when set, wins (an exported secret keeps working where _FILE is set too)
    assert load_settings({**environ, "CDR_WAREHOUSE_PASSWORD": "direct"}).warehouse.password == "direct"


def test_every_secret_setting_takes_the_FILE_convention(tmp_path):
    for declared in (s for s in SETTINGS if s.secret):
        secret = tmp_path / declared.name
        secret.write_text("from-a-file\n")
        environ = {"CDR_STACK_DIR": str(tmp_path), f"{declared.name}_FILE": str(secret)}
        assert export_file_secrets(environ) == [declared.name]
        assert environ[declared.name] == "from-a-file"


def test_a_FILE_variable_naming_a_missing_file_fails_naming_the_setting(tmp_path):
    environ = {"CDR_STACK_DIR": str(tmp_path), "CDR_WAREHOUSE_PASSWORD_FILE": str(tmp_path / "nowhere")}
    with pytest.raises(SettingError, match="CDR_WAREHOUSE_PASSWORD") as caught:
        load_settings(environ)
    assert "nowhere" in str(caught.value)


def test_locally_the_warehouse_passwords_default_to_the_stacks_generated_files(tmp_path):
    app_file = local_password_file(tmp_path, "cdr")
    bi_file = local_password_file(tmp_path, "cdr_bi")
    assert app_file == tmp_path / "postgres" / "secrets" / "cdr.password"
    environ = {"CDR_STACK_DIR": str(tmp_path)}
    assert load_settings(environ).warehouse.password == ""  # no file yet: no password
    app_file.parent.mkdir(parents=True)
    app_file.write_text("app-password\n")
    bi_file.write_text("bi-password\n")
    settings = load_settings(environ)
    assert (settings.warehouse.password, settings.bi_password) == ("app-password", "bi-password")
    # the file of the role the settings name
    renamed = load_settings({**environ, "CDR_WAREHOUSE_USER": "someone_else"})
    assert renamed.warehouse.password == ""
    # production (SQL Server) never reads the local stack's files
    prod = load_settings({**environ, "CDR_ENV": "prod"})
    assert (prod.warehouse.password, prod.bi_password) == ("", "")
    # nor a local environment whose warehouse is not the stack's PostgreSQL
    assert load_settings({**environ, "CDR_WAREHOUSE_KIND": "sqlserver"}).warehouse.password == ""
    assert "password" not in repr(settings.warehouse) and "bi-password" not in repr(settings)


def test_export_sets_only_unset_secrets_read_from_files_and_names_them(tmp_path):
    app_file = local_password_file(tmp_path, "cdr")
    app_file.parent.mkdir(parents=True)
    app_file.write_text("app-password\n")
    environ = {"CDR_STACK_DIR": str(tmp_path)}
    assert export_file_secrets(environ) == ["CDR_WAREHOUSE_PASSWORD"]
    assert environ["CDR_WAREHOUSE_PASSWORD"] == "app-password" and "CDR_BI_PASSWORD" not in environ
    assert export_file_secrets(environ) == []  # set now: left alone
    explicit = {"CDR_STACK_DIR": str(tmp_path), "CDR_WAREHOUSE_PASSWORD": "from-the-environment"}
    assert export_file_secrets(explicit) == [] and explicit["CDR_WAREHOUSE_PASSWORD"] == "from-the-environment"
    # settings that do not load: nothing exported here, the process reports them when it loads them
    assert export_file_secrets({**environ, "CDR_WAREHOUSE_PORT": "not-a-port"}) == []


@pytest.mark.parametrize("password", ["plain", "with space", "it's", "back\\slash", "a'b c\\d"])
def test_the_connection_string_carries_any_password_and_user(password):
    settings = load_settings({"CDR_WAREHOUSE_PASSWORD": password, "CDR_WAREHOUSE_USER": "odd user"})
    parsed = psycopg.conninfo.conninfo_to_dict(settings.warehouse.conninfo())
    assert (parsed["password"], parsed["user"]) == (password, "odd user")


def test_the_generated_password_files_are_the_owners_only_and_stable(tmp_path):
    from cdr_platform.utils.local_postgres import ensure_password

    path = local_password_file(tmp_path, "cdr")
    first = ensure_password(path)
    assert len(first) >= 40 and ensure_password(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    path.chmod(0o644)  # loosened by hand: tightened again
    assert ensure_password(path) == first and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["cdr.password"]  # no temporary file left


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_default_stack_folder_and_so_its_password_files_are_ignored_by_git():
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    path = local_password_file(REPO_ROOT / ".stack", "cdr")
    result = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO_ROOT)
    assert result.returncode == 0, f"{path} is not ignored by git"


def test_a_resource_built_from_a_secret_read_from_a_file_resolves_it_though_its_variable_was_never_exported(
    tmp_path, monkeypatch
):
    """The unit tests run beside the integration tests, whose stack writes its password file after
    this process started (and exported what existed then): the resource still resolves the password."""
    import dagster as dg

    from cdr_platform.defs.resources import WarehouseResource
    from cdr_platform.lib.settings import load_settings

    # set, then removed: monkeypatch restores the environment as it was, whatever the resource exports
    monkeypatch.setenv("CDR_WAREHOUSE_PASSWORD", "restored-afterwards")
    monkeypatch.delenv("CDR_WAREHOUSE_PASSWORD")
    password_file = tmp_path / "warehouse.password"
    password_file.write_text("from-a-file-later\n")
    monkeypatch.setenv("CDR_WAREHOUSE_PASSWORD_FILE", str(password_file))
    resource = WarehouseResource.for_settings(load_settings())
    with dg.build_resources({"warehouse": resource}) as built:
        assert built.warehouse.password == "from-a-file-later"
