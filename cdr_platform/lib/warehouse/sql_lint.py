"""A lint for SQL meant for SQL Server: constructs that only PostgreSQL accepts.

No SQL Server runs on the build machines, so every statement and dbt model that production
runs is checked here (and parsed as T-SQL by sqlglot in the tests).
"""

from __future__ import annotations

import re

POSTGRES_ONLY: dict[str, re.Pattern] = {
    "'::' cast (use cast())": re.compile(r"::\s*\w"),
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
