"""Warehouse side of rating: tables, the tariff read back from the seeds, a day replaced whole."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cdr_platform.lib.rating.plan import SEED_FILES, TariffPlan, build_tariff_plan
from cdr_platform.lib.rating.rerating import ReportRow
from cdr_platform.lib.schema import CLEAN_RECORD, MEDIATION_BATCH
from cdr_platform.lib.warehouse import TableSpec, bulk_insert
from cdr_platform.lib.warehouse.columns import Column, names, table_body
from cdr_platform.lib.warehouse.dialects import DIALECTS, POSTGRES, Dialect

_CLEAN = {c.name: c for c in CLEAN_RECORD}
# What billing and the marts read of the clean record, carried on the rated row (the rating job
# has it in hand): a month is then one scan of its rating partitions, with no join back to
# clean_cdrs by record_id (measured: that join was most of billing_cdrs' time at 10M rows),
# and its mediation batch, which revenue assurance counts by. The definitions are clean_cdrs' own.
CARRIED_CLEAN_COLUMNS: tuple[Column, ...] = (
    *(
        _CLEAN[name]
        for name in (
            "served_operator_id",
            "direction",
            "destination_class",
            "technology",
            "duration_s",
            "data_volume_bytes",
            "roaming",  # a plan's included minutes cover national calls made at home only
        )
    ),
    *MEDIATION_BATCH,
)
# A rated CDR: the clean record's identity and the columns above, its price and how it was
# priced. Its other attributes (numbers, cell, visited network...) stay in clean_cdrs, joined by record_id.
RATED_COLUMNS: tuple[Column, ...] = (
    Column("record_id", "varchar", 64, nullable=False),
    Column("rating_day", "date", nullable=False),
    Column("start_time", "timestamp", nullable=False),
    Column("record_type", "varchar", 8, nullable=False),
    Column("served_msisdn", "varchar", 16, nullable=False),
    *CARRIED_CLEAN_COLUMNS,
    Column("usage_amount", "bigint", nullable=False),
    Column("usage_unit", "varchar", 8, nullable=False),
    Column("tenant", "varchar", 64, nullable=False),
    Column("category", "varchar", 64, nullable=False),
    Column("subject", "varchar", 64, nullable=False),
    Column("rating_plan_id", "varchar", 64, nullable=False),
    Column("destination_id", "varchar", 64, nullable=False),
    Column("cost", "decimal", nullable=False),
    Column("connect_fee", "decimal", nullable=False),
    Column("currency", "varchar", 3, nullable=False),
    Column("rated_at", "timestamp", nullable=False),
)
SUSPENSE_COLUMNS: tuple[Column, ...] = (
    Column("record_id", "varchar", 64, nullable=False),
    Column("rating_day", "date", nullable=False),
    Column("start_time", "timestamp", nullable=False),
    Column("record_type", "varchar", 8, nullable=False),
    Column("served_msisdn", "varchar", 16, nullable=False),
    Column("reason", "varchar", 32, nullable=False),
    Column("detail", "varchar", 400, nullable=False),
    Column("suspended_at", "timestamp", nullable=False),
)
# The re-rating report (lib/rating/rerating.py): one row per subscriber whose rated CDRs or cost a
# run's re-rating changed, over the days it rated; a re-run of the same run id replaces its rows.
RERATING_REPORT_COLUMNS: tuple[Column, ...] = (
    Column("run_id", "varchar", 64, nullable=False),
    Column("rated_from", "date", nullable=False),
    Column("rated_to", "date", nullable=False),
    Column("msisdn", "varchar", 16, nullable=False),
    Column("old_cdrs", "bigint", nullable=False),
    Column("new_cdrs", "bigint", nullable=False),
    Column("old_cost", "decimal", nullable=False),
    Column("new_cost", "decimal", nullable=False),
    Column("delta", "decimal", nullable=False),
    Column("created_at", "timestamp", nullable=False),
)


@dataclass(frozen=True)
class RatingTables:
    """rating_cdrs and rating_suspense, and how one day of them is replaced whole.

    PostgreSQL: both tables are partitioned by rating_day. A run loads a day into fresh work
    tables (one COPY transaction per Spark task, recorded in a manifest so a retried task
    cannot load twice), then one short transaction swaps them in for the day's partitions.
    Readers see the old day or the new day, never a mix; no row is deleted or copied twice.
    SQL Server (staged, also runs on PostgreSQL): Spark's JDBC writer bulk-loads the work
    tables, and one transaction deletes the day and inserts the work tables' rows.
    """

    schema: str = "rating"
    dialect: Dialect = POSTGRES
    tariff_schema: str = "tariffs"

    @classmethod
    def for_settings(cls, settings) -> RatingTables:
        """The rating tables of the configured warehouse (kind and schemas)."""
        return cls(settings.rating_schema, DIALECTS[settings.warehouse.kind], settings.tariff_schema)

    @property
    def rated(self) -> str:
        return f"{self.schema}.rating_cdrs"

    @property
    def suspense(self) -> str:
        return f"{self.schema}.rating_suspense"

    @property
    def manifest(self) -> str:
        return f"{self.schema}.rating_load_manifest"

    @property
    def rerating_report(self) -> TableSpec:
        return TableSpec(self.schema, "rerating_report", RERATING_REPORT_COLUMNS, primary_key=("run_id", "msisdn"))

    @property
    def partitioned(self) -> bool:
        return self.dialect.name == "postgres"

    def _body(self, columns) -> str:
        return table_body(columns, self.dialect)

    def ddl(self) -> list[str]:
        d = self.dialect
        statements = [d.create_schema(self.schema)]
        for table, columns in ((self.rated, RATED_COLUMNS), (self.suspense, SUSPENSE_COLUMNS)):
            if self.partitioned:
                statements.append(
                    f"create table if not exists {table} (\n{self._body(columns)}\n) partition by range (rating_day)"
                )
            else:
                statements += [
                    d.create_table(table, self._body(columns)),
                    d.create_index(f"ix_{table.split('.')[-1]}_day", table, "rating_day, record_id"),
                ]
        statements.append(
            d.create_table(
                self.manifest,
                "    load_id varchar(64) not null,\n"
                "    task_partition int not null,\n    summary varchar(4000) not null,\n"
                "    constraint pk_rating_load_manifest"
                " primary key (load_id, task_partition)",
            )
        )
        statements.append(self.rerating_report.create_table_sql(d))
        return statements

    def day_totals_sql(self) -> str:
        """A day's rated CDRs and their cost per subscriber (%(day)s): what a re-rating compares."""
        return (
            f"select served_msisdn, count(*), sum(cost) from {self.rated}"
            " where rating_day = %(day)s group by served_msisdn"
        )

    def day_was_rated_sql(self) -> str:
        """1 if the day has a rated or a suspended row (%(day)s), else 0: 0 makes its rating a first one."""
        return (
            f"select case when exists (select 1 from {self.rated} where rating_day = %(day)s)"
            f" or exists (select 1 from {self.suspense} where rating_day = %(day)s) then 1 else 0 end"
        )

    def clear_rerating_report_sql(self) -> str:
        """The report rows of one run (%(run_id)s), to replace."""
        return f"delete from {self.rerating_report.qualified} where run_id = %(run_id)s"

    def write_rerating_report(
        self, conn, run_id: str, rated_from: date, rated_to: date, rows: Iterable[ReportRow], created_at: datetime
    ) -> int:
        """Replace the report rows of `run_id` by `rows`, in one transaction; their count."""
        spec = self.rerating_report
        with conn.transaction():
            conn.execute(self.clear_rerating_report_sql(), {"run_id": run_id})
            return bulk_insert(
                conn,
                self.dialect,
                spec,
                (
                    (
                        run_id,
                        rated_from,
                        rated_to,
                        r.msisdn,
                        r.old_cdrs,
                        r.new_cdrs,
                        r.old_cost,
                        r.new_cost,
                        r.delta,
                        created_at,
                    )
                    for r in rows
                ),
            )

    def rated_columns_sql(self) -> str:
        """The columns rating_cdrs has in the warehouse (a table an earlier version made may lack
        the carried clean columns)."""
        schema, table = self.rated.split(".")
        return (
            "select column_name from information_schema.columns"
            f" where table_schema = '{schema}' and table_name = '{table}'"
        )

    def carry_clean_columns_sql(self, clean_table: str, present: set[str]) -> list[str]:
        """Migrate a rating_cdrs made before it carried the clean columns: add the missing ones
        (nullable: rows are not rewritten to add them) and fill them from clean_cdrs by record_id.
        Run in one transaction with the rest of a run's DDL: done whole, or not at all."""
        missing = [c for c in CARRIED_CLEAN_COLUMNS if c.name not in present]
        if not missing:
            return []
        d = self.dialect
        # PostgreSQL adds a column to a partitioned table's every partition
        out = [d.add_column_if_missing(self.rated, c.name, c.sql_type(d)) for c in missing]
        assignments = ", ".join(f"{c.name} = c.{c.name}" for c in missing)
        out.append(d.update_from(self.rated, clean_table, assignments, "c.record_id = r.record_id"))
        return out

    def lock_sql(self, day: date, release: bool = False) -> str:
        """Serialise runs of one day (session-level lock, held by the driver for the run)."""
        return self.dialect.session_lock_sql(f"cdr-rating:{self.schema}:{day.isoformat()}", release)

    def month_lock_name(self, day: date) -> str:
        """The lock of the billing month of `day`: a rating run holds it while it swaps a day in, a
        billing run of the month for its whole dbt build, so the bills and their tests see one
        version of the month's rated CDRs (rating itself runs on meanwhile: only the swap waits)."""
        return f"cdr-rating-month:{self.schema}:{day:%Y-%m}"

    def month_lock_sql(self, day: date, release: bool = False) -> str:
        return self.dialect.session_lock_sql(self.month_lock_name(day), release)

    def day_load(self, day: date, load_id: str) -> DayLoad:
        return DayLoad(self, day, load_id)


@dataclass(frozen=True)
class DayLoad:
    """One run's load of one day: its work tables and the statements that swap them in."""

    tables: RatingTables
    day: date
    load_id: str  # [0-9a-z_] only: part of table names

    def _name(self, table: str, work: bool) -> str:
        base = f"{table}_d{self.day:%Y%m%d}"
        return f"{base}_w{self.load_id}" if work else base

    @property
    def work_rated(self) -> str:
        return self._name(self.tables.rated, True)

    @property
    def work_suspense(self) -> str:
        return self._name(self.tables.suspense, True)

    def work_tables(self) -> list[tuple[str, tuple, str, str]]:
        """(parent, its columns, work table, day partition) for rating_cdrs and rating_suspense."""
        t = self.tables
        return [
            (parent, columns, self._name(parent, True), self._name(parent, False))
            for parent, columns in ((t.rated, RATED_COLUMNS), (t.suspense, SUSPENSE_COLUMNS))
        ]

    def stale_work_sql(self) -> str:
        """Work tables of this day left by runs that died (the caller holds the day's lock)."""
        return (
            "select concat(table_schema, '.', table_name) from information_schema.tables"
            f" where table_schema = '{self.tables.schema}' and (table_name like"
            f" 'rating_cdrs_d{self.day:%Y%m%d}_w%' or table_name like 'rating_suspense_d{self.day:%Y%m%d}_w%')"
        )

    def create_work_sql(self, run_constants: dict[str, str]) -> list[str]:
        """Create the work tables; `run_constants` (column -> value, the same for every row of the
        run) become column defaults, so the rows need not carry them."""
        d, next_day = self.day.isoformat(), (self.day + timedelta(days=1)).isoformat()
        out = []
        for _, columns, work, _ in self.work_tables():
            out.append(self.tables.dialect.create_table(work, self.tables._body(columns)))
            for name in (c.name for c in columns):
                if name in run_constants:
                    value = run_constants[name].replace("'", "''")
                    partitioned = self.tables.partitioned  # PostgreSQL / SQL Server spelling
                    out.append(
                        f"alter table {work} alter column {name} set default '{value}'"
                        if partitioned
                        else f"alter table {work} add default '{value}' for {name}"
                    )
            if self.tables.partitioned:  # lets ATTACH PARTITION skip its validation scan
                out.append(
                    f"alter table {work} add constraint ck_{work.split('.')[-1]}_day"
                    f" check (rating_day >= '{d}' and rating_day < '{next_day}')"
                )
                # Autovacuum would otherwise VACUUM ANALYZE the table while the tasks still COPY
                # into it (measured: a core's worth for most of a 10M-row load); it runs once
                # the day is attached instead.
                out.append(f"alter table {work} set (autovacuum_enabled = false)")
        return out

    def swap_sql(self, attached: set[str]) -> list[str]:
        """One transaction: the day's rows become exactly the work tables' rows."""
        d, next_day = self.day.isoformat(), (self.day + timedelta(days=1)).isoformat()
        out = []
        for parent, columns, work, partition in self.work_tables():
            if self.tables.partitioned:
                if partition in attached:
                    out += [f"alter table {parent} detach partition {partition}", f"drop table {partition}"]
                out += [f"alter table {work} alter column {c.name} drop default" for c in columns]
                out += [
                    f"alter table {work} rename to {partition.split('.')[-1]}",
                    f"alter table {parent} attach partition {partition} for values from ('{d}') to ('{next_day}')",
                    f"alter table {partition} reset (autovacuum_enabled)",
                ]
            else:
                out += [
                    f"delete from {parent} where rating_day = '{d}'",
                    # by name: a migrated table has the carried columns last
                    f"insert into {parent} ({', '.join(names(columns))})"
                    f" select {', '.join(names(columns))} from {work}",
                    f"drop table {work}",
                ]
        out.append(f"delete from {self.tables.manifest} where load_id = '{self.load_id}'")
        return out


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
