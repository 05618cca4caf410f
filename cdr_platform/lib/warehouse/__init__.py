"""The warehouse, one interface over its two engines: PostgreSQL (local) and SQL Server (production).

`connect` gives a connection with psycopg's calls on either engine (`execute`, `executemany`,
`transaction()`, pyformat `%(name)s` parameters); a `Dialect` spells what the engines write
differently; the engine modules `postgres` and `sqlserver` hold every driver call, and
`driver_errors` / `is_undefined_table` let callers handle a warehouse error without naming a
driver. Tables are replaced whole inside one transaction (delete + bulk insert), so a re-run
leaves exactly one copy and readers never see a half-loaded table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cdr_platform.lib.settings import WarehouseSettings
from cdr_platform.lib.warehouse import postgres, sqlserver
from cdr_platform.lib.warehouse.columns import Column, table_body
from cdr_platform.lib.warehouse.dialects import POSTGRES, Dialect


@dataclass(frozen=True)
class TableSpec:
    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def create_table_sql(self, dialect: Dialect) -> str:
        """The table in `dialect`, created if missing (portable: SQL Server spells that its own way)."""
        constraint = f"constraint pk_{self.schema}_{self.name} primary key ({', '.join(self.primary_key)})"
        return dialect.create_table(
            self.qualified, table_body(self.columns, dialect, [constraint] if self.primary_key else [])
        )


def connect(settings: WarehouseSettings):
    """A psycopg connection to PostgreSQL, or a DbApiSession over mssql-python for SQL Server."""
    if settings.kind == "sqlserver":
        return sqlserver.connect(settings.odbc_connection_string())
    where = f"at {settings.host}:{settings.port} (database {settings.database})"
    return postgres.connect(settings.conninfo(), where=where)


def driver_errors() -> tuple[type[Exception], ...]:
    """The exceptions a warehouse driver raises (either engine's), for `except` clauses."""
    return (*postgres.DRIVER_ERRORS, *sqlserver.driver_errors())


def is_undefined_table(exc: BaseException) -> bool:
    """Whether `exc` says a table does not exist (yet), on either engine."""
    return postgres.is_undefined_table(exc) or sqlserver.is_undefined_table(exc)


def execute_many(conn, sql: str, rows: list[dict]) -> None:
    """One statement over many parameter sets, on either engine's connection."""
    if not rows:
        return
    if hasattr(conn, "executemany"):  # SQL Server's session
        conn.executemany(sql, rows)
        return
    with conn.cursor() as cursor:  # psycopg: executemany is the cursor's
        cursor.executemany(sql, rows)


# the columns a table has (PostgreSQL and SQL Server alike)
COLUMNS_SQL = (
    "select column_name from information_schema.columns where table_schema = %(schema)s and table_name = %(name)s"
)


def add_missing_columns(conn, table: TableSpec, dialect: Dialect = POSTGRES) -> list[str]:
    """Add the nullable columns of `table` that an older version of it lacks; their names. Looks
    first, so a table that has them all is not altered (an `alter table` locks it out for readers)."""
    present = {r[0].lower() for r in conn.execute(COLUMNS_SQL, {"schema": table.schema, "name": table.name}).fetchall()}
    missing = [c for c in table.columns if c.nullable and c.name not in present] if present else []
    for column in missing:
        conn.execute(dialect.add_column_if_missing(table.qualified, column.name, column.sql_type(dialect)))
    return [c.name for c in missing]


def bulk_insert(conn, dialect: Dialect, table: TableSpec, rows: Iterable[Sequence]) -> int:
    """Rows into `table` by the engine's bulk path, in the connection's transaction: COPY on
    PostgreSQL, array-bound executemany batches on SQL Server. Their count."""
    return bulk_insert_columns(conn, dialect, table.qualified, table.column_names, rows)


def bulk_insert_columns(
    conn, dialect: Dialect, qualified: str, columns: Sequence[str], rows: Iterable[Sequence]
) -> int:
    """bulk_insert into the named columns of a table another tool defines (dbt's)."""
    if dialect.name == "sqlserver":
        return sqlserver.insert_rows(conn, qualified, columns, rows)
    return postgres.copy_rows(conn, qualified, columns, rows)


def replace_table(conn, table: TableSpec, rows: Iterable[Sequence], dialect: Dialect = POSTGRES) -> int:
    """Create `table` if needed (with the nullable columns an older one lacks) and replace its rows
    in one transaction; return the row count."""
    with conn.transaction():
        conn.execute(dialect.create_schema(table.schema))
        conn.execute(table.create_table_sql(dialect))
        add_missing_columns(conn, table, dialect)
        conn.execute(f"delete from {table.qualified}")
        return bulk_insert(conn, dialect, table, rows)
