"""Warehouse tables of the reference data: numbering plan, cell catalogue, subscribers.

Their generated rows come from the one definition in numbering_plan.py, network.py and
subscribers.py; an operator's own files (operator_files.py) fill the same tables, and each
accepted load is a version in reference.reference_loads (loads.py).
"""

from __future__ import annotations

from dataclasses import astuple
from datetime import date

from cdr_platform.lib.reference.network import CELL_CATALOGUE
from cdr_platform.lib.reference.numbering_plan import NUMBERING_PLAN, OPERATORS_BY_ID
from cdr_platform.lib.reference.subscribers import Subscriber
from cdr_platform.lib.warehouse import Column, TableSpec

NUMBERING_PLAN_TABLE = TableSpec(
    "reference",
    "numbering_plan",
    (
        Column("prefix", "varchar", 15, nullable=False),
        Column("country", "varchar", 2, nullable=False),
        Column("number_type", "varchar", 10, nullable=False),
        Column("operator_id", "varchar", 16),
        Column("operator_name", "varchar", 64),
        Column("zone", "varchar", 16, nullable=False),
        Column("number_length", "int", nullable=False),
    ),
    primary_key=("prefix",),
)

CELL_CATALOGUE_TABLE = TableSpec(
    "reference",
    "cell_catalogue",
    (
        Column("cell_id", "varchar", 32, nullable=False),
        Column("operator_id", "varchar", 16, nullable=False),
        Column("region", "varchar", 32, nullable=False),
        Column("lac", "int", nullable=False),
        Column("ci", "int", nullable=False),
        Column("max_technology", "varchar", 4, nullable=False),
        # added after the first six: nullable, so that an older table gets them by `alter table`
        Column("network", "varchar", 7),  # MCC-MNC, the CGI's first half
        Column("valid_from", "date"),
        Column("valid_to", "date"),  # null: open-ended
    ),
    primary_key=("cell_id",),
)
# The validity start of generated rows (cells, subscriber periods): they are in force throughout.
GENERATED_VALID_FROM = date(2000, 1, 1)

SUBSCRIBERS_TABLE = TableSpec(
    "reference",
    "subscribers",
    (
        Column("msisdn", "varchar", 16, nullable=False),
        Column("operator_id", "varchar", 16, nullable=False),
        Column("operator_name", "varchar", 64, nullable=False),
        Column("segment", "varchar", 32, nullable=False),
        Column("plan", "varchar", 64, nullable=False),
        Column("home_cell_id", "varchar", 32, nullable=False),
        Column("home_region", "varchar", 32, nullable=False),
    ),
    primary_key=("msisdn",),
)

# The dated rows of the subscribers (activation, plan change, termination): reference.subscribers
# holds, per subscriber, the period in force on the day of the load (else the latest).
SUBSCRIBER_PERIODS_TABLE = TableSpec(
    "reference",
    "subscriber_periods",
    (
        Column("msisdn", "varchar", 16, nullable=False),
        Column("operator_id", "varchar", 16, nullable=False),
        Column("segment", "varchar", 32, nullable=False),
        Column("plan", "varchar", 64, nullable=False),
        Column("home_cell_id", "varchar", 32, nullable=False),
        Column("valid_from", "date", nullable=False),
        Column("valid_to", "date"),  # the last day in force (inclusive); null: open-ended
        Column("version", "int", nullable=False),  # the load (reference_loads) that wrote it
    ),
    primary_key=("msisdn", "valid_from"),
)

# One row per accepted load of a dataset: its version (1, 2, ... per dataset), the file and its
# SHA-256; the highest version of a dataset is what its tables hold.
REFERENCE_LOADS_TABLE = TableSpec(
    "reference",
    "reference_loads",
    (
        Column("dataset", "varchar", 16, nullable=False),  # numbering-plan | cells | subscribers
        Column("version", "int", nullable=False),
        Column("file_name", "varchar", 255, nullable=False),  # "generated": the code's own data
        Column("sha256", "varchar", 64, nullable=False),  # of the file's bytes (generated: of its export)
        Column("row_count", "int", nullable=False),
        Column("loaded_at", "timestamp", nullable=False),  # UTC
        Column("loaded_by", "varchar", 64, nullable=False),  # the account that ran the load
        Column("source", "varchar", 128, nullable=False),  # `cdr reference load`, a Dagster run...
    ),
    primary_key=("dataset", "version"),
)


def numbering_plan_rows() -> list[tuple]:
    return [
        (
            r.prefix,
            r.country,
            r.number_type,
            r.operator_id,
            OPERATORS_BY_ID[r.operator_id].name if r.operator_id else None,
            r.zone,
            r.number_length,
        )
        for r in NUMBERING_PLAN
    ]


def cell_catalogue_rows() -> list[tuple]:
    """The generated catalogue, in CELL_CATALOGUE_TABLE's column order: in force throughout."""
    return [(*astuple(c), c.network, GENERATED_VALID_FROM, None) for c in CELL_CATALOGUE]


def subscriber_rows(subscribers: list[Subscriber]) -> list[tuple]:
    return [astuple(s) for s in subscribers]


def subscriber_period_rows(subscribers: list[Subscriber], version: int = 1) -> list[tuple]:
    """reference.subscriber_periods' rows of generated subscribers: one period each, in force from
    GENERATED_VALID_FROM, open-ended (what billing prices their days under)."""
    return [
        (s.msisdn, s.operator_id, s.segment, s.plan, s.home_cell_id, GENERATED_VALID_FROM, None, version)
        for s in subscribers
    ]
