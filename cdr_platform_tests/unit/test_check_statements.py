"""The asset checks' SQL: named parameters only, each check reading the partition or batch it
checks, and every statement valid T-SQL as well as PostgreSQL (no SQL Server runs here)."""

import re
from pathlib import Path

import pytest

from cdr_platform.defs.mediation.checks import previous_offset_sql, violations_sql
from cdr_platform.defs.rating.checks import day_clean_sql, day_counts_sql, every_rated_day_sql, sample_sql
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.rating.store import RatingTables
from cdr_platform.lib.warehouse.dialects import POSTGRES, SQLSERVER
from cdr_platform_tests.sqlserver_recorder import tsql_problems

DEFS = Path(__file__).resolve().parents[2] / "cdr_platform" / "defs"


def statements(dialect) -> list[str]:
    rating, mediation = RatingTables("rating", dialect), MediationTables("mediation", dialect)
    return [
        day_counts_sql(rating),
        day_clean_sql(mediation),
        every_rated_day_sql(rating),
        sample_sql(rating, mediation.clean, dialect),
        previous_offset_sql(mediation),
        *(f"select count(*) from {mediation.clean} where {p}" for p in violations_sql().values()),
    ]


@pytest.mark.parametrize("sql", statements(SQLSERVER))
def test_every_check_statement_parses_as_tsql_and_is_portable(sql):
    assert tsql_problems(sql) == [], sql


def test_no_check_binds_positional_parameters():
    """The stores take pyformat %(name)s with a dict, on both engines: a positional %s is refused
    by SQL Server's session."""
    for path in sorted(DEFS.glob("*/checks.py")):
        positional = [line for line in path.read_text().splitlines() if re.search(r"(?<![)%])%s", line)]
        assert positional == [], (path.name, positional)


def test_the_rerate_sample_is_drawn_at_random_from_the_days_checked_only():
    for dialect, shuffle in ((POSTGRES, "random()"), (SQLSERVER, "newid()")):
        sql = sample_sql(RatingTables("rating", dialect), "mediation.clean_cdrs", dialect)
        inner = sql[sql.index("(select") : sql.index(") r join")]
        assert "rating_day >= %(first)s and rating_day <= %(last)s" in inner
        assert f"order by {shuffle} offset 0 rows fetch next 300 rows only" in inner
        assert "random()" not in sql.replace(shuffle, "") and "fetch first" not in sql
