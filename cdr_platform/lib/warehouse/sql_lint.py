"""A lint for SQL meant for SQL Server: constructs that only PostgreSQL accepts.

No SQL Server runs on the build machines, so every statement and dbt model that production
runs is checked here (and parsed as T-SQL by sqlglot in the tests).
"""

from __future__ import annotations

import re

POSTGRES_ONLY: dict[str, re.Pattern] = {
    # (T-SQL's own schema::name, object::name and type::name in a grant are not casts)
    "'::' cast (use cast())": re.compile(r"(?<!schema)(?<!object)(?<!type)::\s*\w", re.I),
    "ilike": re.compile(r"\bilike\b", re.I),
    "on conflict (use MERGE or not exists)": re.compile(r"\bon\s+conflict\b", re.I),
    "create ... if not exists": re.compile(
        r"\bcreate\s+(unlogged\s+)?(table|index|schema)\s+if\s+not\s+exists\b", re.I
    ),
    "limit (use top / fetch first)": re.compile(r"\blimit\s+\d", re.I),
    "unlogged table": re.compile(r"\bunlogged\b", re.I),
    "analyze": re.compile(r"^\s*analyze\b", re.I | re.M),
    "returning": re.compile(r"\breturning\b", re.I),
    "group by ordinal": re.compile(r"\bgroup\s+by\s+\d", re.I),
    "boolean type": re.compile(r"\bboolean\b", re.I),
    "bytea / jsonb / serial types": re.compile(r"\b(bytea|jsonb|serial|bigserial)\b", re.I),
    "at time zone": re.compile(r"\bat\s+time\s+zone\b", re.I),
    "distinct on": re.compile(r"\bdistinct\s+on\b", re.I),
    "index method other than B-tree": re.compile(r"\busing\s+(brin|gin|gist|spgist|hash)\b", re.I),
    "drop ... if exists schema.name": re.compile(r"\bdrop\s+index\s+if\s+exists\s+\w+\.\w+\s*$", re.I | re.M),
    "double-quoted string concatenation ||": re.compile(r"\|\|"),
}


def postgres_only_constructs(sql: str) -> list[str]:
    """Names of the PostgreSQL-only constructs found in `sql` (empty: portable)."""
    without_comments = re.sub(r"--[^\n]*", "", sql)
    return [name for name, pattern in POSTGRES_ONLY.items() if pattern.search(without_comments)]


_VARCHAR_MAX = re.compile(r"\bn?varchar\s*\(\s*max\s*\)", re.I)
# What T-SQL refuses in a model that PostgreSQL takes, found in the parsed statement.
_PREDICATES = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "And", "Or", "Not", "In", "Is", "Like", "Between", "Exists")


def tsql_model_problems(sql: str) -> list[str]:
    """Problems of a compiled dbt model or test meant for SQL Server: the PostgreSQL-only
    constructs above, and what only the parsed statement shows: a boolean expression as a
    column (use case when ... then 1 else 0 end), true/false literals, order by without top or
    fetch (T-SQL refuses it in views, subqueries and CTEs), a WITH inside a CTE."""
    import sqlglot
    from sqlglot import exp

    problems = postgres_only_constructs(sql)
    if _VARCHAR_MAX.search(sql):
        problems.append("varchar(max) in a model (a columnstore index cannot hold it)")
    try:
        statements = [s for s in sqlglot.parse(sql, read="tsql") if s is not None]
    except sqlglot.errors.ParseError as exc:
        return [*problems, f"does not parse as T-SQL: {str(exc).splitlines()[0]}"]
    predicates = tuple(getattr(exp, name) for name in _PREDICATES)
    for statement in statements:
        for select in statement.find_all(exp.Select):
            for column in select.expressions:
                value = column.this if isinstance(column, exp.Alias) else column
                if isinstance(value, predicates):
                    problems.append(f"boolean expression as a column: {column.sql(dialect='tsql')[:80]}")
            if select.args.get("order") and not (select.args.get("limit") or select.args.get("offset")):
                problems.append("order by without top or offset/fetch")
        if any(True for _ in statement.find_all(exp.Boolean)):
            problems.append("true/false literal (use 1/0)")
        for cte in statement.find_all(exp.CTE):
            if cte.this.args.get("with") or cte.this.args.get("with_"):  # the key differs by sqlglot version
                problems.append(f"a WITH inside the CTE {cte.alias}")
    return problems
