"""The local PostgreSQL's roles, passwords and authentication: least privilege on a developer's cluster.

Three roles, each with a password generated once into CDR_STACK_DIR/postgres/secrets/<role>.password
(mode 0600, in a 0700 folder; CDR_STACK_DIR is ignored by git):

- `cdr_admin` (ADMIN_ROLE), the cluster's superuser (its bootstrap role). Only `cdr stack up` logs
  in as it, to create the database, the schemas and the other roles.
- the application's role (CDR_WAREHOUSE_USER, `cdr`): NOSUPERUSER NOCREATEDB NOCREATEROLE, no
  membership of pg_execute_server_program / pg_read_server_files / pg_write_server_files. It owns
  the project's schemas and may create schemas in the warehouse database (CREATE on the database:
  dbt creates its schemas, the tests throwaway ones); the database itself is the admin's.
- the BI role (CDR_BI_ROLE, `cdr_bi`): a login that may select the marts (present and future:
  default privileges of the application's role in the marts schema) and nothing else.

Every connection proves its password with SCRAM-SHA-256, the unix socket included (pg_hba.conf is
written by the stack). The application reads its password from the file when CDR_WAREHOUSE_PASSWORD
is unset (`cdr_platform.lib.settings`: the setting's default file); a password set in the
environment is the one the stack gives the role.

A cluster made before this (initdb -U cdr --auth=trust: the application's role its bootstrap
superuser, trust on loopback) is upgraded in place by `up`, its data kept: the bootstrap role is
renamed to cdr_admin (a bootstrap superuser cannot safely be demoted: it owns the system
catalogs), a new application role takes over the schemas and everything in them, the passwords
are set, then pg_hba.conf is rewritten and reloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from cdr_platform.lib.settings import WAREHOUSE_SCHEMAS, Settings, local_password_file
from cdr_platform.lib.warehouse import postgres

ADMIN_ROLE = "cdr_admin"  # the cluster's superuser: only the stack tool logs in as it
_UPGRADE_ROLE = "cdr_stack_upgrade"  # lives a few statements, while an old cluster is upgraded
HBA_MARKER = "# written by cdr_platform.utils.local_stack"
# predefined roles that reach the server's files and programs: the application has none of them
SERVER_ACCESS_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")


class SecurityError(RuntimeError):
    """The cluster could not be reached as its administrator, or left in the expected state."""


def _say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


# -- passwords -----------------------------------------------------------------------------------


def password_file(settings: Settings, role: str) -> Path:
    return local_password_file(settings.stack.directory, role)


def ensure_password(path: Path) -> str:
    """The password in `path`, generated (secrets.token_urlsafe) if the file does not exist: written
    whole under a temporary name and linked into place, so two processes starting at once agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(temporary, path)  # fails if another process linked its file first: theirs stands
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path.read_text().rstrip("\r\n")


def local_passwords(settings: Settings) -> dict[str, str]:
    """Role -> password: the admin's from its file, the application's and the BI role's as the
    settings have them (the environment, or the file), generated into their files when unset."""
    wh = settings.warehouse
    return {
        ADMIN_ROLE: ensure_password(password_file(settings, ADMIN_ROLE)),
        wh.user: wh.password or ensure_password(password_file(settings, wh.user)),
        settings.bi_role: settings.bi_password or ensure_password(password_file(settings, settings.bi_role)),
    }


def admin_conninfo(settings: Settings, database: str | None = None) -> str:
    """A libpq connection string of the admin role (for the stack, and tests that need a superuser)."""
    password = ensure_password(password_file(settings, ADMIN_ROLE))
    return dataclasses.replace(settings.warehouse, user=ADMIN_ROLE, password=password).conninfo(database)


@contextlib.contextmanager
def initdb_password_file(settings: Settings, root: Path, chown: Callable[[Path], None]):
    """The admin's password as a file initdb (run as the cluster's account: `chown` hands it over)
    can read: a copy in the cluster's folder, readable by that account only, removed after initdb."""
    copy = root / ".initdb-password"
    descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(ensure_password(password_file(settings, ADMIN_ROLE)) + "\n")
    chown(copy)
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)


# -- pg_hba.conf -----------------------------------------------------------------------------------


def hba_conf(settings: Settings) -> str:
    secrets_dir = password_file(settings, ADMIN_ROLE).parent
    return "\n".join(
        [
            f"{HBA_MARKER}; edits are overwritten on `up`",
            "# Every connection proves its role's password (SCRAM-SHA-256): the unix socket, 127.0.0.1",
            f"# and ::1 alike. The generated passwords are in {secrets_dir} (mode 0600).",
            "# TYPE  DATABASE  USER  ADDRESS        METHOD",
            "local   all       all                  scram-sha-256",
            "host    all       all   127.0.0.1/32   scram-sha-256",
            "host    all       all   ::1/128        scram-sha-256",
            "",
        ]
    )


def hba_is_ours(data: Path) -> bool:
    try:
        return (data / "pg_hba.conf").read_text().startswith(HBA_MARKER)
    except FileNotFoundError:
        return False


def write_hba(settings: Settings, data: Path) -> bool:
    """pg_hba.conf as the stack wants it; whether it changed (the server must then reload it)."""
    hba = data / "pg_hba.conf"
    wanted = hba_conf(settings)
    try:
        if hba.read_text() == wanted:
            return False
    except FileNotFoundError:
        pass
    hba.write_text(wanted)  # an existing file keeps its owner (the cluster's account) and mode
    return True


# -- SQL -----------------------------------------------------------------------------------------


def _role(name: str) -> str:
    """A role name as an SQL identifier, exactly as spelled (the login name is case-sensitive)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def project_schemas(settings: Settings) -> list[str]:
    """The schemas the application owns: WAREHOUSE_SCHEMAS and the schema settings, each once."""
    named = (
        settings.mediation_schema,
        settings.rating_schema,
        settings.tariff_schema,
        settings.billing_schema,
        settings.marts_schema,
    )
    return list(dict.fromkeys((*WAREHOUSE_SCHEMAS, *named)))


def _connect(conninfo: str):
    return postgres.connect(conninfo, autocommit=True)


# what the server answers a login it refuses (any other error: it is not up, or not yet)
_LOGIN_REFUSED = ("authentication failed", "does not exist", "no password supplied")
STARTUP_WAIT_S = 30


def _try_connect(conninfo: str):
    """A connection, or None if this login is refused (or the role does not exist). A server that
    is not accepting connections yet (starting up, another `up` racing this one) is waited for,
    STARTUP_WAIT_S at most: that is no refusal."""
    deadline = time.monotonic() + STARTUP_WAIT_S
    while True:
        try:
            return _connect(conninfo)
        except RuntimeError as exc:
            if any(refused in str(exc) for refused in _LOGIN_REFUSED):
                return None
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def _admin_connection(settings: Settings, passwords: dict[str, str]):
    """A connection as ADMIN_ROLE to the maintenance database, upgrading a cluster from before
    the roles and passwords first (it trusts loopback; the application's role is its superuser)."""
    wh = settings.warehouse
    admin = dataclasses.replace(wh, user=ADMIN_ROLE, password=passwords[ADMIN_ROLE])
    conn = _try_connect(admin.conninfo("postgres"))
    if conn is not None:
        return conn
    # Not with its password: a cluster from before (trust), perhaps half-upgraded by an `up` that
    # was interrupted. Under trust, any password is accepted.
    legacy = _try_connect(dataclasses.replace(wh, password="").conninfo("postgres"))
    if legacy is None:
        raise SecurityError(
            f"cannot log in to the local PostgreSQL on {wh.host}:{wh.port} as {ADMIN_ROLE} with the password in "
            f"{password_file(settings, ADMIN_ROLE)}, nor (a cluster from before the passwords) as {wh.user} "
            "without one. If that file was lost, the cluster's data can only be kept by resetting the password "
            "by hand (pg_hba.conf); otherwise `cdr stack down` and remove the cluster's data folder."
        )
    with legacy:
        _upgrade_trust_cluster(legacy, settings, passwords)
    conn = _try_connect(admin.conninfo("postgres"))
    if conn is None:
        raise SecurityError(f"the upgraded cluster refuses {ADMIN_ROLE}'s password; see the PostgreSQL log")
    return conn


def _upgrade_trust_cluster(conn, settings: Settings, passwords: dict[str, str]) -> None:
    """Give a trust cluster its ADMIN_ROLE (with its password), on a connection trusted without one."""
    wh = settings.warehouse
    me, superuser, bootstrap = conn.execute(
        "select rolname, rolsuper, oid = 10 from pg_roles where rolname = current_user"
    ).fetchone()
    _say(f"upgrading the local PostgreSQL in place: an admin role {ADMIN_ROLE}, {wh.user} without superuser, passwords")
    if not superuser:
        raise SecurityError(f"{me} is not a superuser of the local PostgreSQL: it cannot be upgraded from there")
    if not bootstrap:  # another superuser: the admin is created, the common path demotes `me`
        conn.execute(f"create role {ADMIN_ROLE} with superuser login password {_verifier(conn, ADMIN_ROLE, passwords)}")
        return
    # The application's role is the bootstrap superuser (initdb -U cdr): it owns the system catalogs,
    # so it must stay a superuser. It becomes the admin (renamed by another session: a role cannot
    # rename itself), and a new application role takes over the project's objects (common path).
    conn.execute(
        f"do $$ begin if not exists (select 1 from pg_roles where rolname = {_literal(_UPGRADE_ROLE)}) then "
        f"create role {_UPGRADE_ROLE} with superuser login; end if; end $$"
    )
    with _connect(dataclasses.replace(wh, user=_UPGRADE_ROLE, password="").conninfo("postgres")) as upgrade:
        upgrade.execute(f"alter role {_role(me)} rename to {ADMIN_ROLE}")
        upgrade.execute(f"alter role {ADMIN_ROLE} with password {_verifier(upgrade, ADMIN_ROLE, passwords)}")


def _verifier(conn, role: str, passwords: dict[str, str]) -> str:
    return _literal(postgres.scram_verifier(conn, role, passwords[role]))


def _ensure_roles(admin, settings: Settings, passwords: dict[str, str]) -> None:
    """The application's and the BI role: logins with their passwords and no more."""
    app, bi = settings.warehouse.user, settings.bi_role
    admin.execute(f"drop role if exists {_UPGRADE_ROLE}")
    admin.execute(f"alter role {ADMIN_ROLE} with password {_verifier(admin, ADMIN_ROLE, passwords)}")
    for role, extra in ((app, ""), (bi, " noinherit")):
        if not admin.execute("select 1 from pg_roles where rolname = %(r)s", {"r": role}).fetchone():
            admin.execute(f"create role {_role(role)} with login")
        admin.execute(
            f"alter role {_role(role)} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls{extra}"
            f" password {_verifier(admin, role, passwords)}"
        )
    granted = admin.execute(
        "select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
        "join pg_roles u on u.oid = m.member where u.rolname = %(app)s and r.rolname = any(%(roles)s)",
        {"app": app, "roles": list(SERVER_ACCESS_ROLES)},
    ).fetchall()
    for (role,) in granted:
        admin.execute(f"revoke {role} from {_role(app)}")


def _ensure_database(admin, settings: Settings) -> None:
    """The warehouse database, the admin's; the application may connect and create schemas in it,
    the BI role only connect. Nobody else (PUBLIC) gets anything."""
    wh = settings.warehouse
    database = _role(wh.database)
    if not admin.execute("select 1 from pg_database where datname = %(d)s", {"d": wh.database}).fetchone():
        admin.execute(f"create database {database} owner {ADMIN_ROLE}")
    admin.execute(f"alter database {database} owner to {ADMIN_ROLE}")
    admin.execute(f"revoke all on database {database} from public")
    admin.execute(f"grant connect, create, temporary on database {database} to {_role(wh.user)}")
    admin.execute(f"grant connect on database {database} to {_role(settings.bi_role)}")


# A cluster from before: the application's objects now belong to the admin (the renamed bootstrap
# role). Every schema and relation of the database outside the system's goes to the application
# (an owned sequence and the indexes follow their table).
_HAND_OVER = """
do $$
declare r record;
begin
    for r in select n.nspname from pg_namespace n
             where n.nspowner = '{admin}'::regrole and n.nspname not like 'pg\\_%'
               and n.nspname not in ('information_schema', 'public') loop
        execute format('alter schema %I owner to %s', r.nspname, '{app}');
    end loop;
    for r in select c.oid::regclass as rel, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
             where c.relowner = '{admin}'::regrole and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
               and n.nspname not like 'pg\\_%' and n.nspname <> 'information_schema'
               and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                               and d.objid = c.oid and d.deptype in ('a', 'i')) loop
        execute format('alter %s %s owner to %s',
                       case r.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                      when 'S' then 'sequence' when 'f' then 'foreign table' else 'table' end,
                       r.rel, '{app}');
    end loop;
end $$
"""


def _ensure_schemas(settings: Settings) -> None:
    """In the warehouse database, as the admin: the project's schemas, the application's; what an
    old cluster's application created, handed back to it; the BI role's select on the marts,
    present and future."""
    app, bi, marts = _role(settings.warehouse.user), _role(settings.bi_role), settings.marts_schema
    with _connect(admin_conninfo(settings)) as conn:
        conn.execute(_HAND_OVER.format(admin=ADMIN_ROLE, app=app.replace("'", "''")))
        for schema in project_schemas(settings):
            conn.execute(f"create schema if not exists {schema} authorization {app}")
            conn.execute(f"alter schema {schema} owner to {app}")
        conn.execute(f"grant usage on schema {marts} to {bi}")
        conn.execute(f"grant select on all tables in schema {marts} to {bi}")
        conn.execute(f"alter default privileges for role {app} in schema {marts} grant select on tables to {bi}")


def secure(settings: Settings, data: Path) -> None:
    """Roles, passwords, database, schemas and pg_hba.conf of the running local cluster whose data
    folder is `data`, as the module's docstring says; idempotent. Raises SecurityError."""
    wh = settings.warehouse
    if {wh.user, settings.bi_role} & {ADMIN_ROLE, _UPGRADE_ROLE} or wh.user == settings.bi_role:
        raise SecurityError(
            f"CDR_WAREHOUSE_USER ({wh.user}) and CDR_BI_ROLE ({settings.bi_role}) must differ from each other "
            f"and from the stack's admin role {ADMIN_ROLE}"
        )
    passwords = local_passwords(settings)
    with _admin_connection(settings, passwords) as admin:
        _ensure_roles(admin, settings, passwords)
        _ensure_database(admin, settings)
        _ensure_schemas(settings)
        if write_hba(settings, data):
            admin.execute("select pg_reload_conf()")
            _say("pg_hba.conf: scram-sha-256 for every connection (socket and loopback), reloaded")
    app = dataclasses.replace(wh, password=passwords[wh.user])
    conn = _try_connect(app.conninfo())
    if conn is None:
        raise SecurityError(f"{wh.user} cannot log in to the local PostgreSQL with its password; see its log")
    conn.close()
