"""Least privilege on the local warehouse (cdr_platform.utils.local_postgres): the application's role
owns the project's schemas and nothing more, every login proves its password, and the BI role reads
the marts, a mart rebuilt after the grant included, and nothing else."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from cdr_platform.utils import local_postgres
from cdr_platform.utils.local_stack import postgres_root

# no ~/.pgpass, no PGPASSWORD: a login proves exactly the password given
NO_PASSWORD_SOURCES = " passfile=/nonexistent"


@pytest.fixture(autouse=True)
def _no_libpq_password(monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)


@pytest.fixture(scope="module")
def stack(local_stack):
    if local_stack.warehouse.kind != "postgres" or local_stack.environment != "local":
        pytest.skip("the local stack's PostgreSQL only")
    return local_stack


def connect(warehouse, database: str | None = None, **changes):
    conninfo = dataclasses.replace(warehouse, **changes).conninfo(database) + NO_PASSWORD_SOURCES
    return psycopg.connect(conninfo, autocommit=True)


def bi_login(stack):
    return connect(stack.warehouse, user=stack.bi_role, password=stack.bi_password)


def test_the_application_role_is_no_superuser_and_can_create_no_role_database_or_program(stack):
    with connect(stack.warehouse) as app:
        attributes = app.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
            " from pg_roles where rolname = current_user"
        ).fetchone()
        assert attributes == (False, False, False, False, False)
        for role in local_postgres.SERVER_ACCESS_ROLES:
            assert not app.execute("select pg_has_role(current_user, %(r)s, 'member')", {"r": role}).fetchone()[0]
        for refused in (
            "create role lp_intruder login",
            "create database lp_intruder",
            "copy (select 1) to program 'true'",
            "copy (select 1) to '/tmp/lp_intruder.txt'",
            "select pg_read_file('pg_hba.conf')",
            f"alter role {stack.warehouse.user} superuser",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(refused)


def test_the_application_owns_the_project_schemas_and_may_create_throwaway_ones(stack):
    with connect(stack.warehouse) as app:
        owners = dict(
            app.execute(
                "select nspname, nspowner::regrole::text from pg_namespace where nspname = any(%(s)s)",
                {"s": local_postgres.project_schemas(stack)},
            ).fetchall()
        )
        assert owners == dict.fromkeys(local_postgres.project_schemas(stack), stack.warehouse.user)
        throwaway = f"lp_{uuid.uuid4().hex[:10]}"  # what the tests' sandboxes and dbt do: CREATE on the database
        app.execute(f"create schema {throwaway}")
        app.execute(f"drop schema {throwaway}")
        database_owner = app.execute(
            "select datdba::regrole::text from pg_database where datname = current_database()"
        ).fetchone()[0]
        assert database_owner == local_postgres.ADMIN_ROLE


@pytest.mark.parametrize("password", ["", "not-the-password"], ids=["no_password", "wrong_password"])
@pytest.mark.parametrize("who", ["application", "bi", "admin"])
def test_a_login_without_its_password_is_refused_over_tcp_and_the_socket(stack, who, password):
    user = {
        "application": stack.warehouse.user,
        "bi": stack.bi_role,
        "admin": local_postgres.ADMIN_ROLE,
    }[who]
    sockets = postgres_root(stack) / "run"
    for host in ("127.0.0.1", str(sockets)):
        with pytest.raises(psycopg.OperationalError) as caught:
            connect(stack.warehouse, host=host, user=user, password=password)
        message = str(caught.value)
        assert "password authentication failed" in message or "no password supplied" in message, message


def test_every_rule_of_pg_hba_is_scram_and_the_password_files_are_the_owners_only(stack):
    with psycopg.connect(local_postgres.admin_conninfo(stack, "postgres") + NO_PASSWORD_SOURCES) as admin:
        rules = admin.execute("select type, auth_method, error from pg_hba_file_rules").fetchall()
    assert rules and all(method == "scram-sha-256" and error is None for _, method, error in rules), rules
    for role in (local_postgres.ADMIN_ROLE, stack.warehouse.user, stack.bi_role):
        path = local_postgres.password_file(stack, role)
        if role == stack.warehouse.user and os.environ.get("CDR_WAREHOUSE_PASSWORD_FILE"):
            continue  # the developer's own file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert path.stat().st_uid == os.geteuid()
    assert stat.S_IMODE(local_postgres.password_file(stack, "x").parent.stat().st_mode) == 0o700


def test_the_bi_role_reads_a_mart_rebuilt_after_the_grant_and_nothing_else(stack, tmp_path):
    from cdr_platform.defs.dbt.project import dbt_command

    marts = f"lp_marts_{uuid.uuid4().hex[:10]}"
    with connect(stack.warehouse) as app:
        app.execute(f"create schema {marts}")
        app.execute(f"create table {marts}.fct_probe as select 1 as version")  # a mart from before the grant
    try:
        # the project's grant, as dbt's on-run-end runs it, on a marts schema of this test's own
        variables = json.dumps({"marts_schema": marts, "bi_role": stack.bi_role})
        result = subprocess.run(
            dbt_command("run-operation", "apply_bi_access", "--vars", variables, target_path=tmp_path / "target"),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        with bi_login(stack) as bi:
            assert bi.execute(f"select version from {marts}.fct_probe").fetchone() == (1,)

            # BI polls the mart while the application rebuilds it as dbt's table materialization does
            # (a new table under a temporary name, swapped in, the old one dropped): never refused
            problems: list[BaseException] = []
            seen: set[int] = set()
            stop = threading.Event()

            def poll():
                with bi_login(stack) as reader:
                    while not stop.is_set():
                        try:
                            seen.add(reader.execute(f"select version from {marts}.fct_probe").fetchone()[0])
                        except psycopg.Error as exc:
                            problems.append(exc)
                            return

            poller = threading.Thread(target=poll)
            poller.start()
            try:
                with connect(stack.warehouse) as app:
                    for version in range(2, 7):
                        with app.transaction():
                            app.execute(f"create table {marts}.fct_probe__dbt_tmp as select {version} as version")
                            app.execute(f"alter table {marts}.fct_probe rename to fct_probe__dbt_backup")
                            app.execute(f"alter table {marts}.fct_probe__dbt_tmp rename to fct_probe")
                            app.execute(f"drop table {marts}.fct_probe__dbt_backup")
                        time.sleep(0.05)
            finally:
                stop.set()
                poller.join(timeout=30)
            assert problems == []
            assert bi.execute(f"select version from {marts}.fct_probe").fetchone() == (6,)
            assert 6 in seen or len(seen) >= 1

            # and nothing else: no write, no other schema
            for forbidden in (
                f"insert into {marts}.fct_probe values (7)",
                f"create table {marts}.bi_table (x int)",
                f"select count(*) from {stack.mediation_schema}.clean_cdrs",
                "create schema lp_bi_schema",
            ):
                with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable)):
                    bi.execute(forbidden)
    finally:
        with connect(stack.warehouse) as app:
            app.execute(f"drop schema if exists {marts} cascade")


def test_the_stacks_marts_schema_grants_the_bi_role_every_future_table(stack):
    with connect(stack.warehouse) as app:
        acl = app.execute(
            "select defaclacl::text from pg_default_acl where defaclrole = current_user::regrole"
            " and defaclnamespace = %(s)s::regnamespace and defaclobjtype = 'r'",
            {"s": stack.marts_schema},
        ).fetchone()
    assert acl is not None and f"{stack.bi_role}=r/" in acl[0], acl
