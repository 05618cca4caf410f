"""A stand-in for SQL Server, the one part of production that cannot run here.

`RecordingServer` replaces mssql-python's `connect`: the project's own SQL Server session
(`lib/warehouse/sqlserver.DbApiSession`) and everything above it run for real, and every
statement they send is recorded with its parameters. A select is answered with rows of the
shape it asks for (a row of zeros for an aggregate-only select, else no rows) unless the test
registered an answer for it. `problems()` then holds each statement to T-SQL: it must parse with
sqlglot's `tsql` dialect, pass the PostgreSQL-only lint, and bind named parameters (`%(name)s`)
that its parameters supply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp

from cdr_platform.lib.warehouse.sql_lint import postgres_only_constructs

NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")
AGGREGATES = (exp.Count, exp.Sum, exp.Max, exp.Min, exp.Avg)


def as_tsql(sql: str) -> str:
    """pyformat parameters as T-SQL variables, as the driver sends them (it binds `?` markers)."""
    return NAMED_PARAMETER.sub(r"@\1", sql)


def tsql_problems(sql: str) -> list[str]:
    """Why `sql` would not run on SQL Server: a PostgreSQL-only construct, or no T-SQL parse."""
    problems = postgres_only_constructs(sql)
    try:
        parsed = sqlglot.parse(as_tsql(sql), read="tsql", error_level=sqlglot.ErrorLevel.RAISE)
        if not parsed or any(p is None for p in parsed):
            problems.append("parses to nothing")
    except sqlglot.errors.SqlglotError as exc:
        problems.append(f"not T-SQL: {str(exc).splitlines()[0]}")
    return problems


@dataclass
class Statement:
    sql: str
    params: object
    caller: str  # the test step that sent it


@dataclass
class RecordingServer:
    statements: list[Statement] = field(default_factory=list)
    answers: list[tuple[re.Pattern, list[tuple]]] = field(default_factory=list)
    step: str = ""

    def answer(self, pattern: str, rows: list[tuple]) -> None:
        """Rows for the selects whose text matches `pattern` (first registered wins)."""
        self.answers.append((re.compile(pattern, re.I | re.S), rows))

    def connect(self, connection_string: str, *args, **kwargs) -> _Connection:
        assert "Server=" in connection_string and "Encrypt=yes" in connection_string, connection_string
        return _Connection(self)

    def rows_for(self, sql: str) -> list[tuple]:
        for pattern, rows in self.answers:
            if pattern.search(sql):
                return list(rows)
        try:
            parsed = sqlglot.parse_one(as_tsql(sql), read="tsql")
        except sqlglot.errors.ParseError:
            return []  # problems() reports it
        if isinstance(parsed, exp.Select) and _one_row(parsed, _ctes(parsed)):
            return [tuple(0 for _ in parsed.expressions)]
        return []

    def problems(self) -> list[str]:
        found = []
        for s in self.statements:
            where = f"[{s.caller}] {s.sql[:160]!r}"
            found += [f"{where}: {problem}" for problem in tsql_problems(s.sql)]
            if re.search(r"(?<!%)%s", s.sql):
                found.append(f"{where}: positional %s parameter (bind %(name)s with a dict)")
            names = set(NAMED_PARAMETER.findall(s.sql))
            if names and not (isinstance(s.params, dict) and names <= set(s.params)):
                found.append(f"{where}: parameters {sorted(names)} not all supplied by {s.params!r:.80}")
        return found

    def sent_by(self, step: str) -> list[str]:
        return [s.sql for s in self.statements if s.caller == step]


def _ctes(select: exp.Select) -> dict[str, exp.Select]:
    return {cte.alias: cte.this for cte in select.find_all(exp.CTE) if isinstance(cte.this, exp.Select)}


def _one_row(select: exp.Select, ctes: dict[str, exp.Select]) -> bool:
    """A select that returns exactly one row: no GROUP BY, and its columns are aggregates, or it
    reads a single CTE that returns one row (a measure over an aggregate)."""
    if select.args.get("group") or not select.expressions:
        return False
    if all(any(True for _ in e.find_all(*AGGREGATES)) for e in select.expressions):
        return True
    source = select.args.get("from") or select.args.get("from_")
    table = source.this if source is not None else None
    joins = select.args.get("joins")
    if isinstance(table, exp.Table) and not joins and table.name in ctes:
        return _one_row(ctes[table.name], ctes)
    return False


class _Connection:
    """mssql-python's connection, as far as the project uses it."""

    def __init__(self, server: RecordingServer) -> None:
        self.server = server
        self.autocommit = False

    def cursor(self) -> _Cursor:
        return _Cursor(self.server)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Cursor:
    def __init__(self, server: RecordingServer) -> None:
        self.server = server
        self.rows: list[tuple] = []
        self.rowcount = -1
        self.description = None

    def execute(self, sql: str, params=None):
        self.server.statements.append(Statement(sql, params, self.server.step))
        self.rows = self.server.rows_for(sql)
        self.rowcount = len(self.rows)
        return self

    def executemany(self, sql: str, seq_of_params) -> None:
        seq = list(seq_of_params)
        self.server.statements.append(Statement(sql, seq[0] if seq else {}, self.server.step))
        self.rowcount = len(seq)

    def fetchone(self):
        return self.rows.pop(0) if self.rows else None

    def fetchall(self):
        rows, self.rows = self.rows, []
        return rows

    def fetchval(self):
        row = self.fetchone()
        return row[0] if row else None

    def __iter__(self):
        return iter(self.fetchall())

    def close(self) -> None:
        pass
