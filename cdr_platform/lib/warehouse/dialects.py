"""SQL dialects of the warehouse: what PostgreSQL (local) and SQL Server (production) spell differently.

Every statement the pipeline runs is written once, in SQL both engines accept; the few things
that differ (DDL types, "create if missing", the UTC clock, index methods) come from a Dialect.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    text_4000: str
    timestamp: str
    utc_now: str
    binary: str
    utc_clock: str  # the wall clock now, not the transaction's start
    # an ordering that shuffles rows: a random sample is `order by <it> offset 0 rows fetch next
    # N rows only` (written the same on both engines)
    random_order: str
    # refresh planner statistics of a table just bulk-loaded (SQL Server does it by itself)
    analyze: str | None = None

    def create_table(self, qualified: str, body: str, scratch: bool = False) -> str:
        """`scratch`: a work table whose rows are rebuilt on replay, so needs no crash safety."""
        if self.name == "sqlserver":
            return f"if object_id(N'{qualified}', N'U') is null create table {qualified} (\n{body}\n)"
        unlogged = "unlogged " if scratch else ""  # no WAL for staging: COPY runs faster
        return f"create {unlogged}table if not exists {qualified} (\n{body}\n)"

    def create_index(self, name: str, qualified: str, columns: str) -> str:
        if self.name == "sqlserver":
            return (
                f"if not exists (select 1 from sys.indexes where name = N'{name}') "
                f"create index {name} on {qualified} ({columns})"
            )
        return f"create index if not exists {name} on {qualified} ({columns})"

    def create_time_index(self, name: str, qualified: str, column: str) -> list[str]:
        """The index of an append-mostly table's event time (rating finds a day's rows by it).

        PostgreSQL: BRIN, a summary per range of blocks. CDRs arrive in roughly time order, so
        it narrows a day to its band of the table as well as a B-tree, but costs next to nothing
        to maintain: a B-tree on start_time took a third of the backend's CPU in mediation's
        COPY. Earlier versions made a B-tree of the same name; it is replaced.
        """
        if self.name == "sqlserver":
            return [self.create_index(name, qualified, column)]
        schema = qualified.split(".")[0]
        return [
            f"drop index if exists {schema}.{name}",
            f"create index if not exists brin_{name.removeprefix('ix_')} on {qualified} using brin ({column})",
        ]

    def update_from(self, target: str, source: str, assignments: str, join: str) -> str:
        """Update `target` (aliased r) from the rows of `source` (aliased c) that `join` matches."""
        if self.name == "sqlserver":
            return f"update r set {assignments} from {target} r inner join {source} c on {join}"
        return f"update {target} r set {assignments} from {source} c where {join}"

    def add_column_if_missing(self, qualified: str, column: str, sql_type: str) -> str:
        if self.name == "sqlserver":
            return f"if col_length(N'{qualified}', N'{column}') is null alter table {qualified} add {column} {sql_type}"
        return f"alter table {qualified} add column if not exists {column} {sql_type}"

    def session_lock_sql(self, resource: str, release: bool = False) -> str:
        """Take (or release) an exclusive lock named `resource`, held by the session until released
        or closed: runs that must not overlap wait for each other."""
        if self.name == "sqlserver":
            return (
                f"exec sp_releaseapplock @Resource = N'{resource}', @LockOwner = 'Session'"
                if release
                else f"exec sp_getapplock @Resource = N'{resource}', @LockMode = 'Exclusive', @LockOwner = 'Session'"
            )
        return f"select pg_advisory_{'unlock' if release else 'lock'}(hashtext('{resource}'))"

    def create_schema(self, schema: str) -> str:
        if self.name == "sqlserver":
            return f"if schema_id(N'{schema}') is null exec(N'create schema {schema}')"
        return f"create schema if not exists {schema}"


POSTGRES = Dialect(
    "postgres",
    text_4000="varchar(4000)",
    timestamp="timestamp",
    utc_now="(current_timestamp at time zone 'UTC')",
    binary="bytea",
    utc_clock="(clock_timestamp() at time zone 'UTC')",
    random_order="random()",
    analyze="analyze {table}",
)
SQLSERVER = Dialect(
    "sqlserver",
    text_4000="nvarchar(4000)",
    timestamp="datetime2(6)",
    utc_now="sysutcdatetime()",
    binary="varbinary(max)",
    utc_clock="sysutcdatetime()",
    random_order="newid()",
)
DIALECTS = {d.name: d for d in (POSTGRES, SQLSERVER)}
