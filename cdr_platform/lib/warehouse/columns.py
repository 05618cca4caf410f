"""A typed column, declared once and spelled for every engine that holds it.

A table's columns are declared once as `Column`s; its SQL types per dialect (the DDL), its Arrow
types (the tasks' batches, COPY) and its Spark types (the jobs' mapInArrow schemas) all derive
from that declaration, so the warehouse, the bulk code and the Spark jobs cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cdr_platform.lib.warehouse.dialects import POSTGRES, Dialect

# kind -> (Spark SQL type, portable SQL type or None when the dialect spells it)
_KINDS = {
    "varchar": ("string", None),
    "smallint": ("short", "smallint"),
    "int": ("int", "int"),
    "bigint": ("long", "bigint"),
    "date": ("date", "date"),
    "timestamp": ("timestamp", None),  # UTC wall time, no zone: datetime2 / timestamp
    "binary": ("binary", None),
    "decimal": ("decimal(18,6)", "decimal(18, 6)"),  # money: exact, 6 places as rated
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # a key of _KINDS
    length: int | None = None  # varchar only
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}; one of {sorted(_KINDS)}")
        if (self.kind == "varchar") != (self.length is not None):
            raise ValueError(f"column {self.name}: a length goes with varchar, and only with varchar")

    def sql_type(self, dialect: Dialect = POSTGRES) -> str:
        if self.kind == "varchar":
            return f"varchar({self.length})"
        if self.kind == "timestamp":
            return dialect.timestamp
        if self.kind == "binary":
            return dialect.binary
        return _KINDS[self.kind][1]

    def ddl(self, dialect: Dialect = POSTGRES) -> str:
        return f"{self.name} {self.sql_type(dialect)}{'' if self.nullable else ' not null'}"

    def spark_type(self) -> str:
        return _KINDS[self.kind][0]

    def arrow_type(self):
        import pyarrow as pa

        return {
            "varchar": pa.string(),
            "smallint": pa.int16(),
            "int": pa.int32(),
            "bigint": pa.int64(),
            "date": pa.date32(),
            "timestamp": pa.timestamp("us", tz="UTC"),
            "binary": pa.binary(),
            "decimal": pa.decimal128(18, 6),
        }[self.kind]


def names(columns: Iterable[Column]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)


def arrow_schema(columns: Iterable[Column]):
    import pyarrow as pa

    return pa.schema([(c.name, c.arrow_type()) for c in columns])


def spark_ddl(columns: Iterable[Column]) -> str:
    """A Spark DDL schema string ("a string, b long") of the columns."""
    return ", ".join(f"{c.name} {c.spark_type()}" for c in columns)


def table_body(columns: Iterable[Column], dialect: Dialect = POSTGRES, extra: Iterable[str] = ()) -> str:
    """The inside of a create table: one column per line, then `extra` lines (constraints...)."""
    return ",\n".join([f"    {c.ddl(dialect)}" for c in columns] + [f"    {e}" for e in extra])
