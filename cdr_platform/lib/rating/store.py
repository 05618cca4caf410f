"""Warehouse side of rating: tables, the tariff read back from the seeds, a day replaced whole."""

from __future__ import annotations

from dataclasses import dataclass

from cdr_platform.lib.mediation_store import POSTGRES, Dialect
from cdr_platform.lib.rating.tariff_plan import SEED_FILES
from cdr_platform.lib.rating.tariff_plan import TariffPlan, build_tariff_plan

RATED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("record_id", "varchar(64) not null"),
    ("rating_day", "date not null"),
    ("start_time", "{ts} not null"),
    ("record_type", "varchar(8) not null"),
    ("direction", "varchar(8)"),
    ("served_msisdn", "varchar(16) not null"),
    ("served_operator_id", "varchar(16) not null"),
    ("segment", "varchar(32)"),
    ("other_msisdn", "varchar(16)"),
    ("destination_class", "varchar(16)"),
    ("technology", "varchar(4) not null"),
    ("usage_amount", "bigint not null"),
    ("usage_unit", "varchar(8) not null"),
    ("tenant", "varchar(64) not null"),
    ("category", "varchar(64) not null"),
    ("subject", "varchar(64) not null"),
    ("rating_plan_id", "varchar(64) not null"),
    ("destination_id", "varchar(64) not null"),
    ("cost", "decimal(18, 6) not null"),
    ("connect_fee", "decimal(18, 6) not null"),
    ("currency", "varchar(3) not null"),
    ("rated_at", "{ts} not null"),
)
SUSPENSE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("record_id", "varchar(64) not null"),
    ("rating_day", "date not null"),
    ("start_time", "{ts} not null"),
    ("record_type", "varchar(8) not null"),
    ("served_msisdn", "varchar(16) not null"),
    ("reason", "varchar(32) not null"),
    ("detail", "varchar(400) not null"),
    ("suspended_at", "{ts} not null"),
)


@dataclass(frozen=True)
class RatingTables:
    schema: str = "rating"
    dialect: Dialect = POSTGRES
    tariff_schema: str = "tariffs"

    @property
    def rated(self) -> str:
        return f"{self.schema}.rating_cdrs"

    @property
    def suspense(self) -> str:
        return f"{self.schema}.rating_suspense"

    def _body(self, columns, key: str) -> str:
        lines = [f"    {n} {t.format(ts=self.dialect.timestamp)}" for n, t in columns]
        return ",\n".join(lines + [f"    constraint pk_{key} primary key (record_id)"])

    def ddl(self) -> list[str]:
        d = self.dialect
        return [d.create_schema(self.schema),
                d.create_table(self.rated, self._body(RATED_COLUMNS, "rating_cdrs")),
                d.create_index("ix_rating_cdrs_day", self.rated, "rating_day"),
                d.create_table(self.suspense, self._body(SUSPENSE_COLUMNS, "rating_suspense")),
                d.create_index("ix_rating_suspense_day", self.suspense, "rating_day")]

    def clear_day_sql(self) -> list[str]:
        return [f"delete from {t} where rating_day = %(day)s" for t in (self.rated, self.suspense)]


def load_tariff_from_warehouse(conn, tables: RatingTables = RatingTables()) -> TariffPlan:
    """The tariff as dbt seeded it, checked by the same loader as a TP folder."""
    rows_by_file = {}
    for seed, (tp_file, columns) in SEED_FILES.items():
        table = f"{tables.tariff_schema}.{seed.removesuffix('.csv')}"
        order = ", ".join(columns)
        fetched = conn.execute(f"select {', '.join(columns)} from {table} order by {order}").fetchall()
        # line numbers as in the seed file sorted this way (line 1 is the header)
        rows_by_file[tp_file] = [(i + 2, ["" if v is None else str(v) for v in row]) for i, row in enumerate(fetched)]
    return build_tariff_plan(f"warehouse:{tables.tariff_schema}", rows_by_file)
