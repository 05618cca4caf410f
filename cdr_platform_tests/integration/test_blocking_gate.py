"""A failed blocking check stops what reads its asset across runs, on real PostgreSQL and dbt.

Mediation's balance fails (a clean row the ledger does not account for), in a run of the checks
alone; then the code location's own bill_cdrs job, in a run of its own, does not bill the month:
it fails naming the check, and billing_cdrs is not built. Once the balance holds again, the month
is billed. Then a second break stops the marts and rating sensors and leaves the month's bills as
they were. Small tables seeded directly (no Kafka, no Spark): one dbt build in all.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import psycopg
import pytest

from cdr_platform.defs.billing.checks import BILLING_CDRS_KEY
from cdr_platform.defs.dbt.assets import dbt_resource
from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.defs.dbt.sensors import marts_sensor
from cdr_platform.defs.mediation.assets import CLEAN_CDRS_KEY, mediation
from cdr_platform.defs.mediation.checks import mediation_balances
from cdr_platform.defs.rating.sensors import clean_cdrs_days_sensor
from cdr_platform.defs.resources import resources_for
from cdr_platform.lib.mediation.store import MediationTables, create_tables
from cdr_platform.lib.rating.store import RATED_COLUMNS, SUSPENSE_COLUMNS
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
    subscriber_period_rows,
    subscriber_rows,
)
from cdr_platform.lib.settings import load_settings
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.lib.warehouse.columns import table_body
from cdr_platform.utils.environment_helpers import Environment

pytestmark = pytest.mark.timeout(300)
NOVEMBER = "2026-11-01"
DAY = date(2026, 11, 20)
CALLS = 3  # voice calls on 20 November, one batch of the ledger


class Sandbox:
    def __init__(self, conninfo: str, tag: str) -> None:
        self.conninfo = conninfo
        self.schemas = {
            "CDR_MEDIATION_SCHEMA": f"med_{tag}",
            "CDR_RATING_SCHEMA": f"rat_{tag}",
            "CDR_BILLING_SCHEMA": f"bil_{tag}",
            "CDR_MARTS_SCHEMA": f"mrt_{tag}",
            "CDR_TARIFF_SCHEMA": f"tar_{tag}",
        }
        self.tables = MediationTables(self.schemas["CDR_MEDIATION_SCHEMA"])
        self.billing = self.schemas["CDR_BILLING_SCHEMA"]

    def execute(self, sql: str, params=None) -> list[tuple]:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def bills(self) -> list[tuple]:
        if not self.execute("select to_regclass(%(t)s)", {"t": f"{self.billing}.billing_cdrs"})[0][0]:
            return []
        return self.execute(f"select * from {self.billing}.billing_cdrs order by billing_month, msisdn")


def seed(box: Sandbox) -> None:
    """One ledger batch of CALLS consumed, all clean; their rated rows; the subscribers; the
    billing seeds (plan catalogue, VAT)."""
    subscribers = [s for s in generate_subscribers() if s.segment == "consumer_postpaid"][:CALLS]
    started = datetime(2026, 11, 20, 10, tzinfo=UTC).replace(tzinfo=None)
    with psycopg.connect(box.conninfo, autocommit=True) as conn:
        conn.execute("create schema if not exists reference")
        replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
        replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(generate_subscribers()))
        create_tables(conn, box.tables)
        t = box.tables
        conn.execute(
            f"insert into {t.ledger} (query_id, batch_id, run_id, rows_in, clean, rejected, duplicates,"
            " rejected_by_reason, committed_at, committed_day) values ('q1', 1, null, %(n)s, %(n)s, 0, 0, '{}',"
            " %(at)s, %(day)s)",
            {"n": CALLS, "at": started, "day": DAY},
        )
        conn.execute(
            f"insert into {t.ledger_offsets} (query_id, batch_id, topic, kafka_partition, from_offset, until_offset,"
            " messages) values ('q1', 1, 'raw-cdrs', 0, 0, %(n)s, %(n)s)",
            {"n": CALLS},
        )
        rating = box.schemas["CDR_RATING_SCHEMA"]
        conn.execute(f"create schema {rating}")
        conn.execute(f"create table {rating}.rating_cdrs ({table_body(RATED_COLUMNS)})")
        conn.execute(f"create table {rating}.rating_suspense ({table_body(SUSPENSE_COLUMNS)})")
        for i, s in enumerate(subscribers):
            call = {
                "id": f"call-{i}",
                "msisdn": s.msisdn,
                "operator": s.operator_id,
                "cell": s.home_cell_id,
                "start": started,
                "offset": i,
            }
            conn.execute(
                f"insert into {t.clean} (record_id, record_type, served_msisdn, served_operator_id, other_msisdn,"
                " direction, destination_class, start_time, duration_s, cell_id, technology, roaming,"
                " schema_version, src_partition, src_offset, kafka_timestamp, query_id, batch_id, mediated_at)"
                " values (%(id)s, 'voice', %(msisdn)s, %(operator)s, '+212612345678', 'outgoing', 'off_net',"
                " %(start)s, 60, %(cell)s, '4G', 0, 1, 0, %(offset)s, %(start)s, 'q1', 1, %(start)s)",
                call,
            )
            conn.execute(
                f"insert into {rating}.rating_cdrs (record_id, rating_day, start_time, record_type, served_msisdn,"
                " served_operator_id, direction, destination_class, technology, duration_s, data_volume_bytes,"
                " roaming, query_id, batch_id, usage_amount, usage_unit, tenant, category, subject,"
                " rating_plan_id, destination_id, cost, connect_fee, currency, rated_at) values (%(id)s, %(day)s,"
                " %(start)s, 'voice', %(msisdn)s, %(operator)s, 'outgoing', 'off_net', '4G', 60, null, 0, 'q1', 1,"
                " 60, 's', 'cdr', 'call', '*any', 'RP_TEST', 'DST_TEST', %(cost)s, 0, 'MAD', %(start)s)",
                {**call, "day": DAY, "cost": Decimal("1.20")},
            )
    dbt_vars = json.dumps({"billing_schema": box.billing, "marts_schema": box.schemas["CDR_MARTS_SCHEMA"]})
    subprocess.run(
        dbt_command("seed", "--quiet", "--select", "plan_catalogue", "vat_rates", "--vars", dbt_vars),
        check=True,
        cwd=DBT_PROJECT_DIR,
        env={**os.environ, **box.schemas},
    )


@pytest.fixture
def box(local_stack, monkeypatch):
    sandbox = Sandbox(local_stack.warehouse.conninfo(), uuid.uuid4().hex[:8])
    for key, value in sandbox.schemas.items():  # the resources, dbt and its vars read these
        monkeypatch.setenv(key, value)
    try:
        seed(sandbox)
        yield sandbox
    finally:
        for schema in sandbox.schemas.values():
            sandbox.execute(f"drop schema if exists {schema} cascade")


def code_location(resources: dict) -> dg.Definitions:
    """The code location's assets, checks and jobs, with the sandbox's resources."""
    from cdr_platform.definitions import defs

    return dg.Definitions(
        assets=list(defs.assets or []),
        asset_checks=list(defs.asset_checks or []),
        jobs=list({job.name: job for job in defs.jobs or []}.values()),
        resources=resources,
    )


def test_a_failed_mediation_balance_stops_billing_and_the_marts_until_it_holds_again(box):
    resources = {**resources_for(load_settings(), Environment.LOCAL), "dbt": dbt_resource()}
    defs = code_location(resources)
    bill_cdrs = defs.resolve_job_def("bill_cdrs")

    with dg.instance_for_test() as instance:

        def check_balance() -> dg.AssetCheckEvaluation:
            """mediation_balances alone, as a run of the checks alone has it."""
            checked = dg.materialize(
                [mediation, mediation_balances],
                instance=instance,
                resources=resources,
                selection=dg.AssetSelection.checks(mediation_balances),
                raise_on_error=False,
            )
            (evaluation,) = checked.get_asset_check_evaluations()
            assert evaluation.passed == checked.success  # blocking: a failure fails its own run
            return evaluation

        def bill() -> dg.ExecuteInProcessResult:
            return bill_cdrs.execute_in_process(instance=instance, partition_key=NOVEMBER, raise_on_error=False)

        assert check_balance().passed
        # a clean row that no ledger batch accounts for: the balance fails
        stray = f"insert into {box.tables.clean} select 'stray-1', record_type, served_msisdn, served_operator_id,"
        stray += " other_msisdn, other_operator_id, other_country, destination_class, destination_zone, direction,"
        stray += " start_time, duration_s, data_volume_bytes, cell_id, technology, roaming, visited_network,"
        stray += " schema_version, src_partition, 99, kafka_timestamp, query_id, batch_id, mediated_at"
        stray += f" from {box.tables.clean} where record_id = 'call-0'"
        box.execute(stray)
        failed = check_balance()
        assert not failed.passed
        assert (
            failed.description
            == f"clean_cdrs holds {CALLS + 1} rows, the ledger counts {CALLS} clean and replays recovered 0"
        )
        balance = dg.AssetCheckKey(CLEAN_CDRS_KEY, "mediation_balances")
        failed_run = instance.event_log_storage.get_asset_check_execution_history(balance, limit=1)[0].run_id

        # billing, in a run of its own: stopped before dbt, naming the check; nothing built
        stopped = bill()
        assert not stopped.success
        messages = [e.step_failure_data.error.message for e in stopped.get_step_failure_events()]
        expected = (
            f"stopped by the blocking check mediation_balances on clean_cdrs (run {failed_run}): clean_cdrs holds"
        )
        assert any(expected in m for m in messages), messages
        assert stopped.get_asset_materialization_events() == []
        assert not stopped.get_asset_check_evaluations()  # the bills' checks did not run either
        assert box.bills() == []

        # the balance holds again (the stray row removed): the month is billed, its checks pass
        box.execute(f"delete from {box.tables.clean} where record_id = 'stray-1'")
        assert check_balance().passed
        billed = bill()
        assert billed.success, [e.step_failure_data.error.message for e in billed.get_step_failure_events()]
        assert BILLING_CDRS_KEY in {e.asset_key for e in billed.get_asset_materialization_events()}
        checks = {c.check_name: c.passed for c in billed.get_asset_check_evaluations()}
        assert checks["billing_reconciles_with_rating"] and all(checks.values()), checks
        bills = box.bills()
        assert len({row[3] for row in bills if str(row[0]) == NOVEMBER}) >= CALLS

        # broken again (a clean row lost): the marts and rating sensors skip naming the check, and
        # billing the month again changes nothing
        box.execute(f"delete from {box.tables.clean} where record_id = 'call-2'")
        assert not check_balance().passed
        instance.report_runless_asset_event(
            dg.AssetMaterialization(CLEAN_CDRS_KEY, metadata={"clean_by_day": dg.MetadataValue.json({str(DAY): 1})})
        )
        for sensor in (marts_sensor, clean_cdrs_days_sensor):
            said = sensor(dg.build_sensor_context(instance=instance, definitions=defs))
            assert isinstance(said, dg.SkipReason), said
            assert said.skip_message.startswith("stopped by the blocking check mediation_balances on clean_cdrs")
        assert not bill().success
        assert box.bills() == bills
