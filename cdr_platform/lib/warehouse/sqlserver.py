"""The SQL Server engine's driver calls (mssql-python): the connection and the bulk insert.

mssql-python takes the same pyformat parameters (`%(name)s`) as psycopg; it lacks psycopg's
`execute` on the connection and its `transaction()` block, which `DbApiSession` adds, so the
pipeline's code runs unchanged on either engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from itertools import islice

# Rows per executemany: mssql-python binds a batch column-wise and executes it in one call
# (its "fast executemany"), inside the caller's transaction (bulk copy would open its own).
INSERT_BATCH_ROWS = 10_000
# SQL Server's "Invalid object name" (a table or view that does not exist)
UNDEFINED_OBJECT_ERROR = 208


class DbApiSession:
    """The few psycopg-style calls the pipeline makes, over mssql-python's DB-API connection."""

    def __init__(self, connection) -> None:
        self._conn = connection

    def execute(self, sql: str, params=None):
        cursor = self._conn.cursor()
        cursor.execute(sql, params) if params is not None else cursor.execute(sql)
        return cursor

    def executemany(self, sql: str, params_seq) -> None:
        self._conn.cursor().executemany(sql, params_seq)

    @contextlib.contextmanager
    def transaction(self):
        try:
            yield self
        except BaseException:
            self._conn.rollback()
            raise
        self._conn.commit()

    def commit(self) -> None:
        self._conn.commit()

    def rollback(self) -> None:
        self._conn.rollback()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(connection_string: str) -> DbApiSession:
    import mssql_python

    return DbApiSession(mssql_python.connect(connection_string))


def driver_errors() -> tuple[type[Exception], ...]:
    try:
        import mssql_python
    except ImportError:  # the SQL Server extra is not installed: no error of it can occur
        return ()
    return (mssql_python.Error,)


def is_undefined_table(exc: BaseException) -> bool:
    return isinstance(exc, driver_errors()) and (
        str(UNDEFINED_OBJECT_ERROR) in str(exc) or "Invalid object name" in str(exc)
    )


def insert_statement(table: str, columns: Sequence[str]) -> str:
    """An insert of one row of `columns`, with a named parameter each."""
    return f"insert into {table} ({', '.join(columns)}) values ({', '.join(f'%({c})s' for c in columns)})"


def insert_rows(session, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Rows into `table` in batches of array-bound parameters, in the session's transaction."""
    sql = insert_statement(table, columns)
    count = 0
    iterator = iter(rows)
    while batch := list(islice(iterator, INSERT_BATCH_ROWS)):
        session.executemany(sql, [dict(zip(columns, row, strict=True)) for row in batch])
        count += len(batch)
    return count
