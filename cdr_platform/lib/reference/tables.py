"""Warehouse tables of the reference data: numbering plan, cell catalogue, subscribers.

Their rows come from the one definition in numbering_plan.py, network.py and subscribers.py.
"""

from __future__ import annotations

from dataclasses import astuple

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
    ),
    primary_key=("cell_id",),
)

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
    return [astuple(c) for c in CELL_CATALOGUE]


def subscriber_rows(subscribers: list[Subscriber]) -> list[tuple]:
    return [astuple(s) for s in subscribers]
