"""A billing month is replaced whole or not at all, on real PostgreSQL.

A few rated CDRs written straight into a rating table of the test's own (no Kafka, no Spark),
November billed with dbt as the billing run does (the window's vars). Then the month's CDRs
change and its next build fails on purpose after each model's delete: a trigger refuses the
insert into the model's table, saying how many of the month's rows the delete had left. The
previous allowance rows, bills and invoice lines are found intact, row for row; a normal build
then replaces them with the new month.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.lib.rating.store import RATED_COLUMNS
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
    subscriber_period_rows,
    subscriber_rows,
)
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.lib.warehouse.columns import table_body
from cdr_platform.lib.warehouse.dialects import POSTGRES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
NOVEMBER = "2026-11-01"
WINDOW = {"billing_month_start": NOVEMBER, "billing_month_end": "2026-12-01"}
# in the order dbt builds them (each reads the one before)
MODELS = ("allowance_usage", "billing_cdrs", "invoice_lines")
ORDER_BY = {"allowance_usage": "msisdn", "billing_cdrs": "msisdn", "invoice_lines": "invoice_number, line_number"}


def rated(record_id: str, msisdn: str, day: str, record_type: str = "voice", **values) -> dict:
    """A rated CDR of `msisdn` on `day` (a national call at home by default)."""
    row = {
        "record_id": record_id,
        "rating_day": date.fromisoformat(day),
        "start_time": datetime.fromisoformat(f"{day}T10:00:00"),
        "record_type": record_type,
        "served_msisdn": msisdn,
        "served_operator_id": "IAM",
        "direction": "outgoing",
        "destination_class": "on_net" if record_type == "voice" else None,
        "technology": "4G",
        "duration_s": 600 if record_type == "voice" else None,
        "data_volume_bytes": None,
        "roaming": 0,
        "query_id": "test-query",
        "batch_id": 1,
        "usage_amount": 600 if record_type == "voice" else 1,
        "usage_unit": "s" if record_type == "voice" else "sms",
        "tenant": "cdr",
        "category": "call" if record_type == "voice" else "sms",
        "subject": "*any",
        "rating_plan_id": "RP_TEST",
        "destination_id": "MA_MOBILE",
        "cost": Decimal("3.00") if record_type == "voice" else Decimal("0.20"),
        "connect_fee": Decimal(0),
        "currency": "MAD",
        "rated_at": datetime(2026, 12, 1, 2),
        **values,
    }
    assert set(row) == {c.name for c in RATED_COLUMNS}
    return row


class Sandbox:
    """The test's rating and billing schemas, and dbt run on them for November."""

    def __init__(self, conninfo: str, tmp: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.conninfo, self.tmp = conninfo, tmp
        self.rating, self.billing, self.marts = f"rat_{tag}", f"bil_{tag}", f"mrt_{tag}"
        self.vars = {"rating_schema": self.rating, "billing_schema": self.billing, "marts_schema": self.marts}

    def execute(self, *statements: str, params=None) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement, params)

    def query(self, sql: str) -> list[tuple]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            return conn.execute(sql).fetchall()

    def columns(self, model: str) -> list[str]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cursor = conn.execute(f"select * from {self.billing}.{model} where 1 = 0")
            return [column.name for column in cursor.description]

    def insert_rated(self, *rows: dict) -> None:
        columns = [c.name for c in RATED_COLUMNS]
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.cursor().executemany(
                f"insert into {self.rating}.rating_cdrs ({', '.join(columns)})"
                f" values ({', '.join(['%s'] * len(columns))})",
                [[row[c] for c in columns] for row in rows],
            )

    def dbt(self, command: str, *args: str, window: bool = True) -> subprocess.CompletedProcess:
        dbt_vars = {**self.vars, **(WINDOW if window else {})}
        return subprocess.run(
            dbt_command(command, "--target", "postgres", "--vars", json.dumps(dbt_vars), *args, target_path=self.tmp),
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, "CDR_RATING_SCHEMA": self.rating, "CDR_BILLING_SCHEMA": self.billing},
            capture_output=True,
            text=True,
            timeout=240,
        )

    def month(self) -> dict[str, list[tuple]]:
        """November's rows of each billing model, in a fixed order."""
        return {
            model: self.query(
                f"select * from {self.billing}.{model} where billing_month = '{NOVEMBER}' order by {ORDER_BY[model]}"
            )
            for model in MODELS
        }


@pytest.fixture
def sandbox(local_stack, tmp_path):
    box = Sandbox(local_stack.warehouse.conninfo(), tmp_path / "target")
    with psycopg.connect(box.conninfo, autocommit=True) as conn:
        replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
        replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(generate_subscribers()))
    box.execute(
        f"create schema {box.rating}",
        f"create table {box.rating}.rating_cdrs (\n{table_body(RATED_COLUMNS, POSTGRES)}\n)",
    )
    seeded = box.dbt("seed", "--quiet", "--select", "plan_catalogue", "vat_rates", window=False)
    assert seeded.returncode == 0, seeded.stdout[-3000:]
    yield box
    box.execute(*(f"drop schema if exists {s} cascade" for s in (box.rating, box.billing, box.marts)))


def test_a_month_whose_build_fails_after_the_delete_keeps_its_previous_rows_then_a_build_replaces_them(sandbox):
    box = sandbox
    subscribers = generate_subscribers()
    postpaid = next(s.msisdn for s in subscribers if s.plan == "Forfait 100")  # 100 included minutes
    prepaid = next(s.msisdn for s in subscribers if s.plan == "Jawal Prepaid")
    box.insert_rated(
        rated("call-1", postpaid, "2026-11-05"),
        rated("sms-1", postpaid, "2026-11-06", "sms"),
        rated("sms-2", prepaid, "2026-11-07", "sms"),
    )
    built = box.dbt("run", "--select", "tag:billing")  # creates the three tables
    assert built.returncode == 0, built.stdout[-3000:]
    before = box.month()
    assert all(before.values()), before
    statement = f"STM-202611-{prepaid.removeprefix('+')}"  # the prepaid subscriber's usage statement
    assert statement in {line[1] for line in before["invoice_lines"]}

    # the month changes: the postpaid subscriber makes a second national call, the prepaid one's
    # SMS goes (a rebuild must drop that statement, not keep it)
    box.insert_rated(rated("call-2", postpaid, "2026-11-20", duration_s=300, usage_amount=300, cost=Decimal("1.50")))
    box.execute(f"delete from {box.rating}.rating_cdrs where record_id = 'sms-2'")

    # each model's next build fails after its delete: its insert is refused, saying how many of
    # November's rows the delete had left (none: the delete ran, in the same transaction)
    box.execute(
        f"""create function {box.billing}.fail_after_the_delete() returns trigger language plpgsql as $$
        declare left_over bigint;
        begin
            execute format('select count(*) from %I.%I where billing_month = %L',
                tg_table_schema, tg_table_name, '{NOVEMBER}') into left_over;
            raise exception 'refused after the delete: % rows of November left in %', left_over, tg_table_name;
        end $$"""
    )
    for model in MODELS:
        box.execute(
            f"create trigger fail_after_the_delete before insert on {box.billing}.{model}"
            f" for each statement execute function {box.billing}.fail_after_the_delete()"
        )
    for model in MODELS:  # one by one: a model that fails skips the models after it
        failed = box.dbt("run", "--select", model)
        assert failed.returncode != 0
        assert f"refused after the delete: 0 rows of November left in {model}" in failed.stdout, failed.stdout[-3000:]
        assert box.month() == before, model  # the delete rolled back with the failed insert

    box.execute(*(f"drop trigger fail_after_the_delete on {box.billing}.{model}" for model in MODELS))
    rebuilt = box.dbt("run", "--select", "tag:billing")
    assert rebuilt.returncode == 0, rebuilt.stdout[-3000:]
    after = box.month()
    assert after != before
    # the new month, whole: the second call on the postpaid bill and in its allowance, the prepaid
    # statement gone with its lines, every other bill as it was
    columns = box.columns("billing_cdrs")

    def bills(rows):
        return {row[columns.index("msisdn")]: dict(zip(columns, row, strict=True)) for row in rows}

    old, new = bills(before["billing_cdrs"]), bills(after["billing_cdrs"])
    assert set(old) - set(new) == {prepaid} and set(new) == set(old) - {prepaid}
    assert (new[postpaid]["voice_calls"], new[postpaid]["total_call_duration_s"]) == (2, 900)
    assert new[postpaid]["voice_amount"] == old[postpaid]["voice_amount"] + Decimal("1.50")
    assert {m: b for m, b in new.items() if m != postpaid} == {
        m: b for m, b in old.items() if m not in (postpaid, prepaid)
    }
    allowance = {msisdn: (calls, seconds) for _, msisdn, calls, seconds, _ in after["allowance_usage"]}
    assert allowance == {postpaid: (2, 900)}
    assert statement not in {line[1] for line in after["invoice_lines"]}
    assert len(after["invoice_lines"]) == len(before["invoice_lines"]) - 2  # its SMS and VAT lines
