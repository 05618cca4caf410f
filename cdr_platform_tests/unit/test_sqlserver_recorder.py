"""The SQL Server stand-in of the statement capture refuses what SQL Server would refuse."""

from __future__ import annotations

import pytest

from cdr_platform.lib.settings import WarehouseSettings
from cdr_platform.lib.warehouse import connect
from cdr_platform_tests.sqlserver_recorder import RecordingServer


@pytest.fixture
def session(monkeypatch):
    """The project's own SQL Server session, over the stand-in."""
    import mssql_python

    server = RecordingServer()
    monkeypatch.setattr(mssql_python, "connect", server.connect)
    settings = WarehouseSettings("db.example", 1433, "cdr", "etl", "secret", kind="sqlserver")
    with connect(settings) as conn:
        yield server, conn


def test_tsql_with_named_parameters_passes(session):
    server, conn = session
    row = conn.execute(
        "select count(*), sum(rows_in) from mediation.mediation_ledger where run_id = %(run_id)s", {"run_id": "r"}
    ).fetchone()
    assert row == (0, 0)  # an aggregate-only select answers one row, as SQL Server would
    assert server.problems() == []


@pytest.mark.parametrize(
    ("sql", "params", "problem"),
    [
        ("select * from t limit 5", None, "limit"),
        ("select a::int from t", None, "cast"),
        ("insert into t values (1) on conflict do nothing", None, "on conflict"),
        ("select * from t where a = %s", ("x",), "positional %s"),
        ("select * from t where a = %(a)s and b = %(b)s", {"a": 1}, "not all supplied"),
        ("select * from t where", None, "T-SQL"),
    ],
)
def test_a_statement_sql_server_would_refuse_is_a_problem(session, sql, params, problem):
    server, conn = session
    conn.execute(sql, params)
    problems = server.problems()
    assert problems and any(problem in p for p in problems), problems


def test_registered_answers_win_and_executemany_is_recorded_once(session):
    server, conn = session
    server.answer(r"from reference\.cell_catalogue", [("cell-1",), ("cell-2",)])
    assert conn.execute("select cell_id from reference.cell_catalogue").fetchall() == [("cell-1",), ("cell-2",)]
    conn.executemany("insert into t (a) values (%(a)s)", [{"a": 1}, {"a": 2}])
    assert [s.sql for s in server.statements][-1] == "insert into t (a) values (%(a)s)"
    assert server.problems() == []
