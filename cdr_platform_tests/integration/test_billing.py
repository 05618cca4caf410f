"""Billing and the marts on real PostgreSQL, run through Dagster as the code location runs them.

One module-wide pipeline in schemas of its own: CDRs over two local days that fall in two
months (30 November and 1 December, Africa/Casablanca), mediated, rated per day, billed per
month, the marts built. The tests then re-run, add a late CDR, break things on purpose, and
connect as the BI role.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import dagster as dg
import orjson
import psycopg
import pytest

from cdr_platform.defs.billing.assets import billing_dbt_assets
from cdr_platform.defs.billing.checks import BILLING_CDRS_KEY, billing_reconciles_with_rating
from cdr_platform.defs.dbt.assets import dbt_resource, warehouse_dbt_assets
from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.defs.rating.assets import RATING_CDRS_KEY, rating_cdrs
from cdr_platform.defs.resources import FilesResource, resources_for
from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    NUMBERING_PLAN_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
    numbering_plan_rows,
    subscriber_period_rows,
    subscriber_rows,
)
from cdr_platform.lib.settings import load_settings
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.utils.environment_helpers import Environment
from cdr_platform_tests import independent_bills
from cdr_platform_tests.integration.mediation_support import MediationSandbox

pytestmark = pytest.mark.timeout(900)
START = datetime(2026, 11, 30, 20, tzinfo=UTC)  # 21:00 local on 30 November, for 8 hours
NOVEMBER, DECEMBER = "2026-11-01", "2026-12-01"
MART_KEY = dg.AssetKey(["marts", "fct_revenue_daily"])
# the code location's own assets definitions, unbound: the tests give them the sandbox's resources
ASSETS = {RATING_CDRS_KEY: lambda: rating_cdrs, BILLING_CDRS_KEY: billing_dbt_assets, MART_KEY: warehouse_dbt_assets}


# two messages, each with two faults (an unknown technology and an invalid other number): two
# rejected messages, four reason rows
TWO_FAULT_MESSAGES = [
    (
        b"+212661000001",
        orjson.dumps(
            {
                "schema_version": 1,
                "record_id": f"two-faults-{i}",
                "record_type": "voice",
                "served_msisdn": "+212661000001",
                "other_msisdn": "not a number",
                "direction": "outgoing",
                "start_time": "2026-11-30T21:00:00Z",
                "duration_s": 60,
                "cell_id": "604-01-01000-00010",
                "technology": "6G",
            }
        ),
    )
    for i in range(2)
]
MESSAGES = 6_000 + len(TWO_FAULT_MESSAGES)


class Pipeline:
    """The sandbox's schemas, its Dagster instance, and how to run each stage as Dagster does."""

    def __init__(self, box: MediationSandbox, env: dict[str, str], instance: dg.DagsterInstance) -> None:
        from cdr_platform.definitions import defs

        self.box, self.env, self.instance, self.defs = box, env, instance, defs
        self.rating = env["CDR_RATING_SCHEMA"]
        self.billing = env["CDR_BILLING_SCHEMA"]
        self.marts = env["CDR_MARTS_SCHEMA"]

    def resources(self) -> dict:
        return {
            **resources_for(load_settings(), Environment.LOCAL),
            "dbt": dbt_resource(),
        }

    def materialize(self, key: dg.AssetKey, partition: str | None = None, **kwargs) -> dg.ExecuteInProcessResult:
        """The assets definition that holds `key` (its whole dbt selection, or the rating days)."""
        return dg.materialize(
            [ASSETS[key]()],
            instance=self.instance,
            partition_key=partition,
            resources=self.resources(),
            raise_on_error=False,
            **kwargs,
        )

    def rate(self, day: str) -> None:
        result = self.materialize(RATING_CDRS_KEY, day)
        assert result.success, [e.step_failure_data.error.message for e in result.get_step_failure_events()]

    def bill(self, month: str) -> dg.ExecuteInProcessResult:
        return self.materialize(BILLING_CDRS_KEY, month)

    def query(self, sql: str, params=None) -> list[tuple]:
        return self.box.query(sql, params)

    def bills(self, month: str | None = None) -> list[tuple]:
        where = f"where billing_month = '{month}'" if month else ""
        return self.query(f"select * from {self.billing}.billing_cdrs {where} order by billing_month, msisdn")

    def lines(self) -> list[tuple]:
        return self.query(f"select * from {self.billing}.invoice_lines order by invoice_number, line_number")


def failed_checks(result: dg.ExecuteInProcessResult) -> set[str]:
    return {c.check_name for c in result.get_asset_check_evaluations() if not c.passed}


@pytest.fixture(scope="module")
def pipeline(local_stack, tmp_path_factory):
    tag = uuid.uuid4().hex[:8]
    box = MediationSandbox.create(local_stack, tmp_path_factory.mktemp("billing"))
    env = {
        **{k: v for k, v in box.env().items() if k.startswith("CDR_")},
        "CDR_RATING_SCHEMA": f"rat_{tag}",
        "CDR_TARIFF_SCHEMA": f"tar_{tag}",
        "CDR_BILLING_SCHEMA": f"bil_{tag}",
        "CDR_MARTS_SCHEMA": f"mrt_{tag}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
            conn.execute("create schema if not exists reference")
            replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
            replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(generate_subscribers()))
            replace_table(conn, NUMBERING_PLAN_TABLE, numbering_plan_rows())
        dbt_vars = json.dumps({"tariff_schema": env["CDR_TARIFF_SCHEMA"], "billing_schema": env["CDR_BILLING_SCHEMA"]})
        subprocess.run(
            dbt_command("seed", "--quiet", "--vars", dbt_vars),
            check=True,
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, **env},
        )
        box.produce(GeneratorConfig(count=6_000, seed=61, error_rate=0.05, start_time=START, span_hours=8))
        box.produce_raw(TWO_FAULT_MESSAGES)  # messages rejected for two reasons each (Rejection Rate)
        mediated = box.run()
        assert mediated.returncode == 0, mediated.stderr[-3000:]
        with dg.instance_for_test() as instance:
            run = Pipeline(box, env, instance)
            run.days = sorted(mediated.summary["clean_by_day"])
            assert run.days == ["2026-11-30", "2026-12-01"]
            for day in run.days:
                run.rate(day)
            for month in (NOVEMBER, DECEMBER):
                billed = run.bill(month)
                assert billed.success and not failed_checks(billed), failed_checks(billed)
                evaluated = {c.check_name for c in billed.get_asset_check_evaluations()}
                assert {"billing_usage_lines_match_rating", "billing_totals_are_the_sum_of_their_lines"} <= evaluated
            marts = run.materialize(MART_KEY)
            assert marts.success and not failed_checks(marts), failed_checks(marts)
            yield run
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        for schema in ("CDR_RATING_SCHEMA", "CDR_TARIFF_SCHEMA", "CDR_BILLING_SCHEMA", "CDR_MARTS_SCHEMA"):
            conn.execute(f"drop schema if exists {env[schema]} cascade")
    box.drop()


def test_months_are_billed_from_their_rated_cdrs_to_the_cent_and_a_rerun_changes_nothing(pipeline):
    run = pipeline
    rated = dict(
        run.query(
            f"select cast(date_trunc('month', rating_day) as date), sum(cost) from {run.rating}.rating_cdrs group by 1"
        )
    )
    billed_usage = dict(
        run.query(f"select billing_month, sum(usage_amount) from {run.billing}.billing_cdrs group by 1")
    )
    assert set(rated) == set(billed_usage) and len(rated) == 2
    for month, total in rated.items():  # the demo tariff prices in cents: the sums agree exactly
        assert billed_usage[month] == total.quantize(Decimal("0.01")), month
    # every bill, recomputed from its own lines' rules: a net plan's before tax = usage - allowance + fee,
    # total = before tax + VAT, VAT 20% of it to the cent; a VAT-inclusive (prepaid) statement's total is
    # what it charged, of which VAT = total x 0.2 / 1.2 to the cent
    bases = set()
    for basis, usage, allowance, fee, before_tax, vat, total in run.query(
        f"select price_basis, usage_amount, allowance_amount, monthly_fee, amount_before_tax, vat_amount, total_amount"
        f" from {run.billing}.billing_cdrs"
    ):
        bases.add(basis)
        charged = usage - allowance + fee
        if basis == "gross":
            assert total == charged and vat == (total * Decimal("0.2") / Decimal("1.2")).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            assert before_tax == total - vat
        else:
            assert before_tax == charged and total == before_tax + vat
            assert vat == (before_tax * Decimal("0.2")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert bases == {"net", "gross"}
    postpaid = run.query(
        f"select count(*) from {run.billing}.billing_cdrs where document_type = 'invoice' and allowance_amount > 0"
    )[0][0]
    assert postpaid > 0  # included minutes were consumed

    before_bills, before_lines = run.bills(), run.lines()
    again = run.bill(NOVEMBER)
    assert again.success and not failed_checks(again)
    assert (run.bills(), run.lines()) == (before_bills, before_lines)


def test_the_marts_add_up_to_the_ledger_the_ratings_and_the_bills(pipeline):
    run = pipeline
    (revenue,) = run.query(f"select sum(revenue) from {run.marts}.fct_revenue_daily")[0]
    (rated,) = run.query(f"select sum(cost) from {run.rating}.rating_cdrs")[0]
    assert revenue == rated
    assurance = run.query(
        f"select sum(messages_received), sum(clean), sum(rejected), sum(duplicates), sum(rated), sum(in_suspense),"
        f" sum(unrated), sum(billed), sum(rated_amount), sum(billed_amount)"
        f" from {run.marts}.fct_revenue_assurance_daily"
    )[0]
    messages, clean, rejected, duplicates, rated_n, suspense, unrated, billed, rated_amount, billed_amount = assurance
    assert messages == MESSAGES == clean + rejected + duplicates
    assert (clean, unrated, billed) == (rated_n + suspense, 0, rated_n)  # both months billed: no gap
    assert rated_amount == billed_amount == rated
    (usage_total,) = run.query(f"select sum(usage_amount) from {run.marts}.fct_subscriber_usage_monthly")[0]
    (billed_usage,) = run.query(f"select sum(usage_amount) from {run.billing}.billing_cdrs")[0]
    assert usage_total == billed_usage
    (rejections,) = run.query(f"select sum(records) from {run.marts}.fct_rejections_daily")[0]
    assert rejections >= rejected + len(TWO_FAULT_MESSAGES) > 0  # a message with two reasons counts under each
    # Rejection Rate (its SQL twin, on these marts) counts messages, not reason rows: by hand from the ledger
    from cdr_platform.lib.bi.measure_twins import twins_for

    with run.box.connect() as conn:
        rate = conn.execute(twins_for(run.marts)["Rejection Rate"]).fetchone()[0]
        by_hand = conn.execute(f"select sum(rejected), sum(rows_in) from {run.box.tables.ledger}").fetchone()
    exact = (Decimal(by_hand[0]) / Decimal(by_hand[1])).quantize(Decimal("0.000001"), ROUND_HALF_UP)
    assert rate == exact < Decimal(rejections) / MESSAGES  # the twin keeps 6 decimals
    days = {d for (d,) in run.query(f"select date_key from {run.marts}.fct_revenue_daily")}
    assert days == {20261130, 20261201}


def _close(month: str, issue_date: str) -> subprocess.CompletedProcess:
    """`cdr billing close`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "cdr_platform.cli", "billing", "close", "--month", month, "--issue-date", issue_date],
        capture_output=True,
        text=True,
        timeout=180,
    )


def _close_in_process(month: str, issue_date: str):
    """The same command in this process (no interpreter to start): for the closes that issue nothing."""
    from click.testing import CliRunner

    from cdr_platform.cli import cdr

    result = CliRunner().invoke(cdr, ["billing", "close", "--month", month, "--issue-date", issue_date])
    return result.exit_code, result.output + (result.stderr or "")


def _issued(run: Pipeline) -> tuple[list[tuple], list[tuple]]:
    """The issued record, every column, in a fixed order."""
    return (
        run.query(f"select * from {run.billing}.issued_invoices order by invoice_number"),
        run.query(f"select * from {run.billing}.issued_invoice_lines order by invoice_number, line_number"),
    )


def _pdf_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.pdf"))}


def _issued_columns(run: Pipeline) -> dict[str, int]:
    with run.box.connect() as conn:
        names = [d[0] for d in conn.execute(f"select * from {run.billing}.issued_invoices limit 0").description]
    return {name: i for i, name in enumerate(names)}


def test_a_closed_month_is_issued_once_under_gapless_numbers(pipeline, tmp_path, monkeypatch):
    """December refused while November is open; November closed: each bill issued as billed, under
    gapless numbers per type from 1, its PDF written once and the provisional ones gone; closed
    again: nothing changes. (The late CDR test after this one adds a CDR to the closed month; the
    last test of the module closes December with the adjustment.)"""
    run = pipeline
    monkeypatch.setenv("CDR_DATA_DIR", str(tmp_path))
    november_folder = tmp_path / "bills" / "2026-11"

    code, output = _close_in_process("2026-12", "2027-01-05")
    assert code == 1 and "2026-11 has bills and is still open" in output, output

    closed = _close("2026-11", "2026-12-05")
    assert closed.returncode == 0, closed.stderr[-3000:]
    assert "closed 2026-11 on 2026-12-05" in closed.stdout, closed.stdout
    bills = {
        row[0]: row
        for row in run.query(
            f"select invoice_number, document_type, amount_before_tax, vat_amount, total_amount, msisdn"
            f" from {run.billing}.billing_cdrs where billing_month = '{NOVEMBER}'"
        )
    }
    issued, issued_lines = _issued(run)
    at = _issued_columns(run)
    assert len(issued) == len(bills) > 0
    for kind, prefix in (("invoice", "INV"), ("statement", "STM")):
        series = sorted(r[at["sequence_number"]] for r in issued if r[at["document_type"]] == kind)
        assert series == list(range(1, len(series) + 1)), kind  # gapless, from 1 in the year of issue
        assert all(
            r[at["invoice_number"]] == f"{prefix}-2026-{r[at['sequence_number']]:06d}"
            for r in issued
            if r[at["document_type"]] == kind
        )
    for row in issued:  # each bill issued as it was billed, nothing added
        bill = bills[row[at["provisional_number"]]]
        issued_amounts = (row[at["bill_amount_before_tax"]], row[at["bill_vat_amount"]], row[at["bill_total_amount"]])
        assert issued_amounts == bill[2:5]
        assert (row[at["amount_before_tax"]], row[at["vat_amount"]], row[at["total_amount"]]) == bill[2:5]
    (billed_lines,) = run.query(f"select count(*) from {run.billing}.invoice_lines where billing_month = '{NOVEMBER}'")
    assert len(issued_lines) == billed_lines[0]
    pdfs = _pdf_digests(november_folder)
    assert set(pdfs) == {f"{r[at['invoice_number']]}.pdf" for r in issued}  # and no provisional document left
    first_invoice = next(r for r in issued if r[at["document_type"]] == "invoice")
    text = subprocess.run(
        ["pdftotext", "-layout", str(november_folder / f"{first_invoice[at['invoice_number']]}.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert first_invoice[at["invoice_number"]] in text and "INVOICE" in text and "PROVISIONAL" not in text
    assert f"{first_invoice[at['total_amount']]:,.2f}" in text

    code, output = _close_in_process("2026-11", "2026-12-06")
    assert code == 0 and "already closed" in output, output
    assert _issued(run) == (issued, issued_lines) and _pdf_digests(november_folder) == pdfs
    run.november_issued = (tmp_path, issued, issued_lines, pdfs)  # for the last test of the module


def test_a_late_cdr_in_a_billed_month_rebills_exactly_that_month(pipeline):
    run = pipeline
    # the automation sensor's view before the late CDR: a first tick, nothing new since
    first = dg.evaluate_automation_conditions(defs=run.defs, instance=run.instance)
    subscriber = next(s for s in generate_subscribers() if s.segment == "consumer_postpaid")
    late = {
        "schema_version": 1,
        "record_id": "late-call-1",
        "record_type": "voice",
        "served_msisdn": subscriber.msisdn,
        "other_msisdn": "+33612345678",  # international: outside the included minutes
        "direction": "outgoing",
        "start_time": "2026-11-30T21:30:00Z",  # 22:30 local: still November
        "duration_s": 300,
        "cell_id": subscriber.home_cell_id,
        "technology": "4G",
        "roaming": False,
    }
    before = {r[3]: r for r in run.bills(NOVEMBER)}[subscriber.msisdn]
    december = run.bills(DECEMBER)
    run.box.produce_raw([(subscriber.msisdn.encode(), orjson.dumps(late))])
    mediated = run.box.run()
    assert mediated.returncode == 0 and mediated.summary["clean_by_day"] == {"2026-11-30": 1}
    run.rate("2026-11-30")

    ticked = dg.evaluate_automation_conditions(defs=run.defs, instance=run.instance, cursor=first.cursor)
    assert ticked.get_requested_partitions(BILLING_CDRS_KEY) == {NOVEMBER}  # not December

    # before the month is billed again its bill is stale: it took in one rated CDR fewer than rating
    # holds now. The reconciliation check fails on it, and revenue assurance shows the gap.
    stale = billing_reconciles_with_rating(warehouse=run.resources()["warehouse"])
    assert not stale.passed and stale.metadata["stale_bills"].value == 1, stale.metadata["months"].value
    marts = run.materialize(MART_KEY)
    assert marts.success
    (rated_n, billed_n) = run.query(f"select sum(rated), sum(billed) from {run.marts}.fct_revenue_assurance_daily")[0]
    (on_the_stale_bill,) = run.query(
        f"select count(*) from {run.rating}.rating_cdrs where served_msisdn = %s"
        f" and rating_day >= '2026-11-01' and rating_day < '2026-12-01'",
        (subscriber.msisdn,),
    )[0]
    assert rated_n - billed_n == on_the_stale_bill > 0  # its CDRs are rated, not (completely) billed

    rebilled = run.bill(NOVEMBER)
    assert rebilled.success and not failed_checks(rebilled)
    assert billing_reconciles_with_rating(warehouse=run.resources()["warehouse"]).passed
    (price,) = run.query(f"select cost from {run.rating}.rating_cdrs where record_id = 'late-call-1'")[0]
    after = {r[3]: r for r in run.bills(NOVEMBER)}[subscriber.msisdn]
    columns = [d[0] for d in run.box.connect().execute(f"select * from {run.billing}.billing_cdrs limit 0").description]
    usage = columns.index("usage_amount")
    assert after[usage] == before[usage] + price.quantize(Decimal("0.01")) and price > 0
    assert run.bills(DECEMBER) == december
    marts = run.materialize(MART_KEY)  # no gap again, for the tests after this one
    assert marts.success
    (rated_n, billed_n) = run.query(f"select sum(rated), sum(billed) from {run.marts}.fct_revenue_assurance_daily")[0]
    assert rated_n == billed_n


def test_a_month_with_no_vat_rate_in_force_fails_its_build_naming_the_month_and_keeps_its_bills(pipeline):
    run = pipeline
    before = run.bills(NOVEMBER)
    with run.box.connect() as conn:
        conn.execute(f"update {run.billing}.vat_rates set valid_from = '2026-12-01'")  # nothing in force in November
    try:
        failed = run.bill(NOVEMBER)
        assert not failed.success
        messages = " ".join(e.step_failure_data.error.message for e in failed.get_step_failure_events())
        assert "no VAT rate in force for billing month 2026-11-01" in messages, messages[-2000:]
        assert run.bills(NOVEMBER) == before  # nothing lost: the failed build replaced nothing
    finally:
        with run.box.connect() as conn:
            conn.execute(f"update {run.billing}.vat_rates set valid_from = '2026-01-01'")


def allowance_by_the_rule(run: Pipeline, month: str) -> dict[str, tuple[int, Decimal]]:
    """The allowance rule applied call by call in Python (independent_bills): {msisdn: (seconds
    used, credit exact to 12 decimals a call)} for the subscribers who used some."""
    with run.box.connect() as conn:
        return independent_bills.allowance_by_the_rule(conn, f"{run.rating}.rating_cdrs", run.billing, month)


def test_every_bill_recomputed_independently_from_rating_the_plans_and_vat_agrees_to_the_cent(pipeline):
    """From rating_cdrs, the plan periods, the plan catalogue and the VAT seed alone, in Python with
    Decimal (cdr_platform_tests/independent_bills.py), by the README's rules: each day's usage on the
    document of the plan in force that day, each type's exact rated total rounded once; the allowance
    call by call per plan period (exact, rounded once); the prorated fee of every postpaid and business
    period in force in the month; VAT added to a net plan's amount, included in a VAT-inclusive one's.
    Every amount column of every bill of both months, and the set of bills, agree to the cent."""
    run = pipeline
    bills = []
    with run.box.connect() as conn:
        for month in (NOVEMBER, DECEMBER):
            expected = independent_bills.recompute_bills(conn, f"{run.rating}.rating_cdrs", run.billing, month)
            assert independent_bills.compare(conn, run.billing, month, expected) == []
            assert {document for _, document in expected} == {"invoice", "usage_statement"}, month
            bills += expected.values()
    # what the recomputation had to get right: fees, VAT both ways, a consumed allowance
    assert {b.price_basis for b in bills} == {"net", "gross"}
    assert any(b.monthly_fee > 0 for b in bills) and any(b.allowance_amount > 0 for b in bills)


def test_the_allowance_is_the_rule_applied_call_by_call_also_when_it_runs_out(pipeline):
    run = pipeline

    def billed_allowance(month):
        return {
            msisdn: (seconds, credit)
            for msisdn, seconds, credit in run.query(
                f"select msisdn, allowance_seconds_used, allowance_credit from {run.billing}.allowance_usage"
                " where billing_month = %s",
                (month,),
            )
        }

    assert billed_allowance(NOVEMBER) == allowance_by_the_rule(run, NOVEMBER) != {}

    def rebuild_allowance():  # the allowance model alone (the bills are not the point here)
        window = {"billing_month_start": NOVEMBER, "billing_month_end": DECEMBER}
        subprocess.run(
            dbt_command("run", "--quiet", "--select", "allowance_usage", "--vars", json.dumps(window)),
            check=True,
            cwd=DBT_PROJECT_DIR,
            env={**os.environ, **run.env},
        )

    # a plan of 3 included minutes: most postpaid subscribers exhaust it within the month, in mid-call
    plans = f"{run.billing}.plan_catalogue"
    with run.box.connect() as conn:
        conn.execute(f"update {plans} set included_national_minutes = 3 where plan_id = 'FORFAIT_100'")
    try:
        rebuild_allowance()
        by_the_rule = allowance_by_the_rule(run, NOVEMBER)
        exhausted = [m for m, (seconds, _) in by_the_rule.items() if seconds == 180]
        assert len(exhausted) >= 5, by_the_rule
        assert billed_allowance(NOVEMBER) == by_the_rule
        # a credit with more than cents: exact here, rounded once on the bill
        assert any(credit != credit.quantize(Decimal("0.01")) for _, credit in by_the_rule.values()), by_the_rule
    finally:
        with run.box.connect() as conn:
            conn.execute(f"update {plans} set included_national_minutes = 100 where plan_id = 'FORFAIT_100'")
        rebuild_allowance()


@contextlib.contextmanager
def _bills_put_back(run: Pipeline):
    """The bills as they were after the block, whatever it broke (rows, the primary key): cheaper
    than billing both months again."""
    tables = ("billing_cdrs", "invoice_lines")
    with run.box.connect() as conn:
        for table in tables:
            conn.execute(f"create table {run.billing}._saved_{table} as select * from {run.billing}.{table}")
    try:
        yield
    finally:
        with run.box.connect() as conn:
            for table in tables:
                conn.execute(f"delete from {run.billing}.{table}")
                conn.execute(f"insert into {run.billing}.{table} select * from {run.billing}._saved_{table}")
                conn.execute(f"drop table {run.billing}._saved_{table}")
            keyed = conn.execute(
                "select 1 from pg_constraint where conname = 'billing_cdrs_pkey' and contype = 'p'"
                " and conrelid = %s::regclass",
                (f"{run.billing}.billing_cdrs",),
            ).fetchone()
            if not keyed:
                conn.execute(
                    f"alter table {run.billing}.billing_cdrs add constraint billing_cdrs_pkey"
                    " primary key (billing_month, msisdn, document_type)"
                )


@pytest.mark.parametrize(
    "break_it, caught_by",
    [
        (
            "update {billing}.invoice_lines set amount = amount + 0.01 where line_type = 'usage_sms' and"
            " invoice_number = (select min(invoice_number) from {billing}.invoice_lines where line_type = 'usage_sms')",
            {"billing_usage_lines_match_rating", "billing_reconciles_with_rating"},
        ),
        (
            "update {billing}.billing_cdrs set total_amount = total_amount + 1"
            " where invoice_number = (select min(invoice_number) from {billing}.billing_cdrs)",
            {"billing_totals_are_the_sum_of_their_lines"},
        ),
        (
            "delete from {billing}.invoice_lines where invoice_number in (select invoice_number from"
            " {billing}.billing_cdrs where voice_calls > 0 and msisdn = (select min(msisdn) from {billing}.billing_cdrs"
            " where voice_calls > 0)); delete from {billing}.billing_cdrs where voice_calls > 0 and msisdn ="
            " (select min(msisdn) from {billing}.billing_cdrs where voice_calls > 0)",
            {"billing_every_subscriber_with_usage_has_a_bill", "billing_reconciles_with_rating"},
        ),
        (
            "alter table {billing}.billing_cdrs drop constraint if exists billing_cdrs_pkey;"
            " insert into {billing}.billing_cdrs select * from {billing}.billing_cdrs"
            " where msisdn = (select min(msisdn) from {billing}.billing_cdrs) and billing_month = '2026-11-01'",
            {"billing_one_bill_per_subscriber_month", "unique_billing_cdrs_invoice_number"},
        ),
    ],
    ids=["a_line_off_by_a_cent", "a_total_not_its_lines", "a_subscriber_with_usage_unbilled", "a_bill_twice"],
)
def test_each_billing_check_fails_on_the_break_it_guards(pipeline, break_it, caught_by):
    run = pipeline
    before = run.bills(), run.lines()
    with _bills_put_back(run):
        with run.box.connect() as conn:
            for statement in break_it.format(billing=run.billing).split(";"):
                conn.execute(statement)
        # the billing models' dbt tests alone, as Dagster runs them (no model is rebuilt)
        dbt_checks = run.materialize(
            BILLING_CDRS_KEY, selection=dg.AssetSelection.checks(*billing_dbt_assets().check_keys)
        )
        reconciled = billing_reconciles_with_rating(warehouse=run.resources()["warehouse"])
        failed = failed_checks(dbt_checks) | ({"billing_reconciles_with_rating"} if not reconciled.passed else set())
        assert caught_by <= failed, failed
    assert (run.bills(), run.lines()) == before


def test_the_bi_role_reads_the_marts_and_nothing_else(pipeline):
    run = pipeline
    settings = load_settings()
    role = settings.bi_role
    conninfo = dataclasses.replace(settings.warehouse, user=role, password=settings.bi_password).conninfo()
    with psycopg.connect(conninfo, autocommit=True) as bi:
        assert bi.execute(f"select count(*) from {run.marts}.fct_revenue_daily").fetchone()[0] > 0
        assert bi.execute(f"select count(*) from {run.marts}.dim_subscriber").fetchone()[0] == 300
        for forbidden in (
            f"select count(*) from {run.box.tables.clean}",
            f"select count(*) from {run.billing}.billing_cdrs",
            f"insert into {run.marts}.dim_operator values (99, 'X', 'x')",
            f"delete from {run.marts}.fct_revenue_daily",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                bi.execute(forbidden)


def test_the_dashboard_shows_the_twins_values_and_every_chart_renders_with_data_in_chromium(pipeline, tmp_path):
    from html.parser import HTMLParser

    from PIL import Image

    from cdr_platform.defs.bi.assets import local_dashboard
    from cdr_platform.lib.bi.measure_twins import twins_for
    from cdr_platform.utils.headless_browser import dom, screenshot

    run = pipeline
    resources = {**run.resources(), "files": FilesResource(data_dir=str(tmp_path))}
    result = dg.materialize([local_dashboard], instance=run.instance, resources=resources)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    path = Path(event.event_specific_data.materialization.metadata["path"].value)
    assert path.is_file() and "<script src=" not in path.read_text()  # plotly.js is inside: no network

    class Page(HTMLParser):
        """KPI cards (measure -> exact value) and, per chart section, its svg and data points."""

        def __init__(self) -> None:
            super().__init__()
            self.kpis: dict[str, str] = {}
            self.charts: dict[str, dict[str, int]] = {}
            self._chart: str | None = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if "kpi" in (a.get("class") or "").split() and "data-measure" in a:
                self.kpis[a["data-measure"]] = a["data-value"]
            if tag == "section" and "data-chart" in a:
                self._chart = a["data-chart"]
                self.charts[self._chart] = {"svg": 0, "points": 0}
            if self._chart and tag == "svg" and "main-svg" in (a.get("class") or ""):
                self.charts[self._chart]["svg"] += 1
            if self._chart and "point" in (a.get("class") or "").split():
                self.charts[self._chart]["points"] += 1

    page = Page()
    page.feed(dom(path.as_uri()))
    # every card shows exactly what its measure's SQL twin says, over the same marts
    with run.box.connect() as conn:
        twins = {name: conn.execute(sql).fetchone()[0] for name, sql in twins_for(run.marts).items()}
    assert page.kpis and set(page.kpis) <= set(twins)
    for name, shown in page.kpis.items():
        # a blank measure is a card with data-value "" (Revenue vs Previous Month here: 1 December has no
        # 1 November to compare with)
        assert (Decimal(shown) if shown else None) == twins[name], name
    # every chart was drawn by plotly, with at least one data point
    assert set(page.charts) == {
        "revenue_by_day_and_operator",
        "top_customers",
        "call_distribution",
        "average_call_duration",
        "rejections_by_reason",
        "revenue_assurance",
    }
    for name, drawn in page.charts.items():
        assert drawn["svg"] >= 1 and drawn["points"] >= 1, (name, drawn)
    # and the screenshot is a page of charts, not a blank one
    picture = Image.open(screenshot(path.as_uri(), tmp_path / "dashboard.png")).convert("RGB")
    colours = picture.resize((140, 200)).getcolors(maxcolors=140 * 200)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) blank"


def test_the_months_bills_render_as_pdf_documents_whose_text_is_the_bill(pipeline, tmp_path, monkeypatch):
    """Every bill of an open month (December: November is closed by now) becomes one provisional
    PDF; pdftotext finds in each its customer, the title, every non-VAT line's amount and the
    bill's net, VAT and total, to the cent."""
    import shutil

    from cdr_platform.defs.billing.documents import bill_documents

    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is missing: make setup installs it")
    run = pipeline
    monkeypatch.setenv("CDR_DATA_DIR", str(tmp_path))
    result = dg.materialize([bill_documents], instance=run.instance, partition_key=DECEMBER, resources=run.resources())
    (event,) = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    bills = run.query(
        f"select msisdn, document_type, amount_before_tax, vat_amount, total_amount, invoice_number"
        f" from {run.billing}.billing_cdrs where billing_month = '{DECEMBER}'"
    )
    folder = tmp_path / "bills" / DECEMBER[:7]
    assert metadata["documents"].value == len(bills) == len(list(folder.glob("provisional-*.pdf"))) > 0
    lines = {}
    for number, line_type, amount in run.query(
        f"select invoice_number, line_type, amount from {run.billing}.invoice_lines where billing_month = '{DECEMBER}'"
    ):
        lines.setdefault(number, []).append((line_type, amount))
    for msisdn, document_type, before_tax, vat, total, number in bills[:25]:
        kind = "invoice" if document_type == "invoice" else "statement"
        pdf = folder / f"provisional-{kind}-{msisdn.removeprefix('+')}-{DECEMBER[:7]}.pdf"
        text = subprocess.run(
            ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert msisdn in text and "PROVISIONAL" in text
        assert ("INVOICE" if document_type == "invoice" else "STATEMENT") in text
        for amount in (before_tax, vat, total):
            assert f"{amount:,.2f}" in text, (number, amount)
        for line_type, amount in lines[number]:
            if line_type not in ("vat", "vat_included"):
                assert f"{amount:,.2f}" in text, (number, line_type, amount)
    # rendered again with the same bills: the same documents, nothing removed
    again = dg.materialize([bill_documents], instance=run.instance, partition_key=DECEMBER, resources=run.resources())
    (event,) = again.get_asset_materialization_events()
    assert event.event_specific_data.materialization.metadata["removed"].value == 0


def test_after_a_late_cdr_the_closed_month_stays_as_issued_and_the_next_close_adjusts_it(pipeline, monkeypatch):
    """November was closed, then a late November CDR came (test_a_late_cdr_in_a_billed_month...:
    an international call of a postpaid subscriber). Billed again with `cdr billing bill`:
    November's issued bills and PDFs are byte-identical, and the difference waits in
    billing_adjustments, naming the November invoice and the one CDR behind it. December then closes
    in the next year's series with that adjustment as line 101 of the subscriber's invoice; every
    month reconciles, and the mart lists every document with its PDF."""
    from cdr_platform.defs.billing.cycles import billing_cycles_reconcile
    from cdr_platform.lib.billing.cycles import reconcile

    run = pipeline
    data_dir, issued, issued_lines, pdfs = run.november_issued
    monkeypatch.setenv("CDR_DATA_DIR", str(data_dir))
    november_folder, december_folder = data_dir / "bills" / "2026-11", data_dir / "bills" / "2026-12"
    at = _issued_columns(run)
    ((msisdn,),) = run.query(f"select served_msisdn from {run.rating}.rating_cdrs where record_id = 'late-call-1'")
    owner = next(r for r in issued if r[at["msisdn"]] == msisdn and r[at["document_type"]] == "invoice")

    # billed again as the README shows it: `cdr billing bill` runs the bill_cdrs job (dbt's tests
    # included, the reconciliation of the closed months among them)
    from click.testing import CliRunner

    from cdr_platform.cli import cdr

    monkeypatch.setenv("DAGSTER_HOME", str(data_dir / "dagster_home"))  # the command's instance, this test's
    rebilled = CliRunner().invoke(cdr, ["billing", "bill", "--month", "2026-11"])
    assert rebilled.exit_code == 0 and "billed 2026-11: run" in rebilled.output, rebilled.output
    assert " 0 failed" in rebilled.output, rebilled.output

    # the closed month is never rewritten: its issued rows and PDFs are as they were, byte for byte
    assert _issued(run) == (issued, issued_lines) and _pdf_digests(november_folder) == pdfs
    ((valued_now,),) = run.query(
        f"select total_amount from {run.billing}.billing_cdrs where billing_month = '{NOVEMBER}' and msisdn = %s"
        " and document_type = 'invoice'",
        (msisdn,),
    )
    pending = run.query(
        f"select msisdn, adjusts_invoice_number, total_amount, adjustment_document_type, late_cdrs"
        f" from {run.billing}.billing_adjustments"
    )
    delta = valued_now - owner[at["bill_total_amount"]]
    assert delta > 0
    assert pending == [(msisdn, owner[at["invoice_number"]], delta, "invoice", 1)]
    with run.box.connect() as conn:
        assert all(m.difference == 0 for m in reconcile(conn, run.billing))
    assert billing_cycles_reconcile(warehouse=run.resources()["warehouse"]).passed

    # December closes in the next year's series, with the adjustment on the subscriber's invoice
    december = _close("2026-12", "2027-01-05")
    assert december.returncode == 0, december.stderr[-3000:]
    assert "1 adjustment line of earlier months" in december.stdout, december.stdout
    (number, bill_total, adjustment_total, total) = run.query(
        f"select invoice_number, bill_total_amount, adjustment_total, total_amount from {run.billing}.issued_invoices"
        f" where billing_month = '{DECEMBER}' and msisdn = %s and document_type = 'invoice'",
        (msisdn,),
    )[0]
    assert number.startswith("INV-2027-") and adjustment_total == delta and total == bill_total + delta
    (line,) = run.query(
        f"select line_number, line_type, total_amount, adjusts_invoice_number, adjusts_month, adjusts_cdrs"
        f" from {run.billing}.issued_invoice_lines where invoice_number = %s and adjusts_month is not null",
        (number,),
    )
    assert line[:4] == (101, "adjustment", delta, owner[at["invoice_number"]])
    assert f"{line[4]:%Y-%m-%d}" == NOVEMBER and line[5] == 1
    assert run.query(f"select count(*) from {run.billing}.billing_adjustments") == [(0,)]
    text = subprocess.run(
        ["pdftotext", "-layout", str(december_folder / f"{number}.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"Adjustment to {owner[at['invoice_number']]}" in text and f"{total:,.2f}" in text
    with run.box.connect() as conn:
        months = reconcile(conn, run.billing)
    assert [m.difference for m in months] == [0, 0] and all(m.closed for m in months)
    still = [r for r in _issued(run)[0] if f"{r[at['billing_month']]:%Y-%m-%d}" == NOVEMBER]
    assert still == issued and _pdf_digests(november_folder) == pdfs  # November, as issued

    # the documents are listed in a mart, each with the path of its PDF under the data folder
    marts = run.materialize(MART_KEY)
    assert marts.success and not failed_checks(marts), failed_checks(marts)
    listed = run.query(f"select invoice_number, document_path, total_amount from {run.marts}.fct_issued_documents")
    everything = _issued(run)[0]
    assert sorted(r[0] for r in listed) == sorted(r[at["invoice_number"]] for r in everything)
    assert all((data_dir / path).is_file() for _, path, _ in listed)
    assert sum(r[2] for r in listed) == sum(r[at["total_amount"]] for r in everything)
