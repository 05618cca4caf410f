"""Every statement the platform sends to SQL Server is T-SQL, proven statement by statement.

No SQL Server runs here, so the server alone is replaced (cdr_platform_tests/sqlserver_recorder.py):
the assets, checks, sensor, jobs and CLI commands that touch the warehouse run for real in SQL
Server mode (CDR_WAREHOUSE_KIND=sqlserver), through the project's own SQL Server session, and each
statement they send is parsed as T-SQL, linted for PostgreSQL-only constructs and checked for
named parameters. A new statement that is not T-SQL fails here. Kafka is the real local broker
(the sensor and one check read its offsets before the warehouse). dbt's SQL is proven by
`dbt compile --target sqlserver` (test_sqlserver_path.py); the Spark drivers' JDBC writes by
Spark's own dialect.
"""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform_tests.sqlserver_recorder import RecordingServer

STEPS_RUN: dict[str, int] = {}
WAREHOUSE_CHECKS = {
    "mediation_balances",
    "clean_cdrs_unique_record_id",
    "clean_cdrs_complete_and_typed",
    "rejection_rate",
    "mediation_source_offsets_consistent",
    "billing_reconciles_with_rating",
    "billing_cycles_reconcile",
}  # step -> statements it sent (printed at the end for the note)


@pytest.fixture(scope="module", autouse=True)
def statement_count_report(request):
    """One line at the end of the module: how many statements were held to T-SQL, from how many steps."""
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if capture is not None and STEPS_RUN:
        with capture.global_and_fixture_disabled():
            print(
                f"\nSQL Server mode: {sum(STEPS_RUN.values())} statements parsed as T-SQL, sent by "
                f"{len(STEPS_RUN)} assets, checks, sensors, jobs, CLI commands and driver steps"
            )


@pytest.fixture
def sqlserver(local_stack: Settings, monkeypatch, tmp_path) -> RecordingServer:
    """SQL Server mode with the recording stand-in behind mssql-python's connect."""
    import mssql_python

    server = RecordingServer()
    monkeypatch.setattr(mssql_python, "connect", server.connect)
    monkeypatch.setenv("CDR_WAREHOUSE_KIND", "sqlserver")
    monkeypatch.setenv("CDR_WAREHOUSE_PASSWORD", "not-a-real-password")
    monkeypatch.setenv("CDR_DATA_DIR", str(tmp_path / "data"))
    yield server
    assert server.problems() == []


def _resources():
    """The code location's resources as it builds them in SQL Server mode (dbt's included)."""
    from cdr_platform.defs.dbt.assets import dbt_resource
    from cdr_platform.defs.resources import resources_for
    from cdr_platform.utils.environment_helpers import Environment

    return {**resources_for(load_settings(), Environment.LOCAL), "dbt": dbt_resource()}


def _failure(result) -> str:
    """Why a run failed, in a line (the user code's error)."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error.cause is not None:
            error = error.cause
        return f"{event.step_key}: {error.message.strip()} at {error.stack[-1].strip() if error.stack else ''}"
    return "no evaluation and no step failure"


def _run_step(server: RecordingServer, step: str, action, must_send: bool = True) -> int:
    """Run `action` as `step`, attributing the statements it sends (it must send some, unless it
    may not touch the warehouse at all); their count."""
    server.step = step
    before = len(server.statements)
    action()
    sent = len(server.statements) - before
    STEPS_RUN[step] = sent
    assert sent > 0 or not must_send, f"{step} sent no statement: it did not reach the warehouse"
    return sent


def test_the_reference_assets_load_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.defs.ingest.assets import cell_catalogue, numbering_plan, subscribers

    def materialize():
        result = dg.materialize([numbering_plan, cell_catalogue, subscribers], resources=_resources())
        assert result.success

    _run_step(sqlserver, "reference assets", materialize)
    sent = sqlserver.sent_by("reference assets")
    assert any(s.startswith("insert into reference.subscribers") for s in sent), "the bulk insert"
    assert any("delete from reference.subscribers" in s for s in sent)


def test_every_asset_check_runs_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.definitions import defs

    assets = list(defs.assets)
    resources = _resources()
    reached: set[str] = set()
    for check in defs.asset_checks:
        (asset_key,) = {k.asset_key for k in check.check_keys}
        owner = next((a for a in assets if asset_key in getattr(a, "keys", ())), None)
        if owner is None or owner.is_executable is False:
            continue

        def run(check=check, owner=owner):
            result = dg.materialize(
                [owner, check], selection=dg.AssetSelection.checks(check), resources=resources, raise_on_error=False
            )
            assert result.get_asset_check_evaluations(), _failure(result)

        names = "/".join(sorted(k.name for k in check.check_keys))
        if _run_step(sqlserver, f"check {names}", run, must_send=False):
            reached.add(names)
    # the checks that read the warehouse all reached it (the others read Kafka or files)
    assert reached >= WAREHOUSE_CHECKS, WAREHOUSE_CHECKS - reached


def test_the_mediation_sensor_reads_its_ledger_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.defs.mediation.sensors import raw_cdrs_sensor

    resources = _resources()

    def tick():
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(instance=instance, resources=resources)
            outcome = raw_cdrs_sensor(context)
            assert outcome is not None

    _run_step(sqlserver, "sensor raw_cdrs_sensor", tick)


def test_the_reject_jobs_replay_and_discard_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.defs.mediation.rejects import discard_rejects, replay_rejects

    resources = _resources()

    def replay():
        config = {"ops": {"replay_rejects_op": {"config": {"reason": "UNKNOWN_CELL"}}}}
        result = replay_rejects.execute_in_process(run_config=config, resources=resources, raise_on_error=False)
        assert result.success, _failure(result)

    def discard():
        config = {"ops": {"discard_rejects_op": {"config": {"reason": "UNKNOWN_CELL", "note": "cell retired"}}}}
        result = discard_rejects.execute_in_process(run_config=config, resources=resources, raise_on_error=False)
        assert result.success, _failure(result)

    _run_step(sqlserver, "job replay_rejects", replay)
    _run_step(sqlserver, "job discard_rejects", discard)


def test_the_dashboard_and_the_billing_lock_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.defs.bi.assets import local_dashboard

    resources = _resources()

    def dashboard():
        result = dg.materialize([local_dashboard], resources=resources, raise_on_error=False)
        assert result.success, _failure(result)

    def billing_lock():  # what billing and rating hold around a month's build and a day's swap
        with dg.build_resources({"warehouse": resources["warehouse"]}) as built:
            with built.warehouse.exclusive("billing-2026-11"):
                pass

    _run_step(sqlserver, "asset bi/dashboard", dashboard)
    _run_step(sqlserver, "billing month lock", billing_lock)
    assert any("sp_getapplock" in s for s in sqlserver.sent_by("billing month lock"))


def test_the_bill_documents_read_the_months_bills_on_sqlserver_in_tsql(sqlserver):
    from cdr_platform.defs.billing.documents import bill_documents

    def render():
        result = dg.materialize(
            [bill_documents], resources=_resources(), partition_key="2026-11-01", raise_on_error=False
        )
        assert result.success, _failure(result)

    _run_step(sqlserver, "asset billing/bill_documents", render)
    assert any("invoice_lines" in s for s in sqlserver.sent_by("asset billing/bill_documents"))


@pytest.mark.parametrize(
    "command",
    [
        ["rejects", "list"],
        ["rejects", "show", "raw-cdrs:0:42"],
        ["rejects", "replay", "--reason", "UNKNOWN_CELL"],
        ["rejects", "discard", "--reason", "UNKNOWN_CELL", "--note", "cell retired"],
        ["reference", "versions"],
        ["billing", "reconcile"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_the_cli_commands_that_touch_the_warehouse_send_tsql(sqlserver, command):
    from cdr_platform.cli import cdr

    def invoke():
        result = CliRunner().invoke(cdr, command, catch_exceptions=False)
        assert result.exit_code in (0, 1), result.output  # 1: "no such reject" is an answer too

    _run_step(sqlserver, "cdr " + " ".join(command[:2]), invoke)


def test_closing_a_month_issues_its_bills_on_sqlserver_in_tsql(sqlserver):
    """`cdr billing close`: the checks before it, the numbered documents and their lines, the
    record of the close, in one transaction - every statement T-SQL."""
    import re
    from datetime import date
    from decimal import Decimal

    from cdr_platform.cli import cdr

    month, cost, rate = date(2026, 11, 1), Decimal("1.500000"), Decimal("0.2000")
    msisdn, number = "+212661000001", "INV-2026-000001"
    bill = (msisdn, "invoice", "IAM", "FORFAIT_100", "net", rate, "MAD")
    bill += ("INV-202611-212661000001", Decimal("100.00"), Decimal("20.00"), Decimal("120.00"), 3, cost)
    # October, closed before, owes 3.60 more (VAT 0.60): an adjustment line on this invoice
    pending = (date(2026, 10, 1), msisdn, "invoice", "INV-2026-000000", "IAM", "net", rate, "MAD")
    pending += (Decimal("3.00"), Decimal("0.60"), Decimal("3.60"), "invoice", 1)
    # what the check before the commit reads back: the document, its usage line, VAT, the adjustment
    header = (number, "invoice", date(2026, 12, 5), msisdn, "FORFAIT_100", "net", rate, "MAD")
    header += (Decimal("103.00"), Decimal("20.60"), Decimal("123.60"))
    issued = [
        (*header, 1, "usage_voice", "Voice calls", Decimal("10.00"), "min", Decimal("100.00"), None),
        (*header, 6, "vat", "VAT", Decimal("20.00"), "%", Decimal("20.00"), None),
        (*header, 101, "adjustment", "Adjustment to INV-2026-000000", None, None, Decimal("3.00"), Decimal("0.60")),
    ]
    sqlserver.answers += [
        (re.compile(r"select min\(billing_month\)"), [(None,)]),  # no earlier month open
        (re.compile(r"select max\(issue_date\)"), [(None,)]),  # the first close
        (re.compile(r"from \w+\.billing_cdrs where billing_month = "), [bill]),
        (re.compile(r"select rating_day, count\(\*\), sum\(cost\)"), [(date(2026, 11, 30), 3, cost)]),
        (re.compile(r"sum\(rated_cdrs\), sum\(rated_cost\)"), [(month, 3, cost)]),  # billed as rated
        (re.compile(r"from \w+\.billing_adjustments order by"), [pending]),
        (re.compile(r"from \w+\.issued_invoices i\s+join"), issued),
    ]

    def close():
        arguments = ["billing", "close", "--month", "2026-11", "--issue-date", "2026-12-05", "--no-documents"]
        result = CliRunner().invoke(cdr, arguments, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "INV-2026-000001" in result.output, result.output

    _run_step(sqlserver, "cdr billing close", close)
    sent = sqlserver.sent_by("cdr billing close")
    for table in ("issued_invoices", "issued_invoice_lines", "billing_closed_batches", "billing_closed_months"):
        assert any(s.startswith(f"insert into billing.{table}") for s in sent), table
    assert any(s.startswith("delete from billing.billing_adjustments") for s in sent)  # issued: no longer pending
    assert any("sp_getapplock" in s for s in sent)  # the billing lock


def test_the_cli_loads_an_operator_file_on_sqlserver_in_tsql(sqlserver, tmp_path):
    from cdr_platform.cli import cdr

    exported = tmp_path / "numbering_plan.csv"
    runner = CliRunner()

    def export_and_load():
        assert runner.invoke(cdr, ["reference", "export", "numbering-plan", str(exported)]).exit_code == 0
        result = runner.invoke(cdr, ["reference", "load", "numbering-plan", str(exported)], catch_exceptions=False)
        assert result.exit_code == 0, result.output

    _run_step(sqlserver, "cdr reference load", export_and_load)
    assert any(s.startswith("insert into reference.numbering_plan") for s in sqlserver.sent_by("cdr reference load"))


def test_the_mediation_drivers_warehouse_statements_on_sqlserver_are_tsql(sqlserver):
    """The SQL Server path of the mediation driver (CDR_MEDIATION_STAGING=jdbc): Spark's JDBC
    writer stages the rows, and the driver's own session prepares the tables, reads the cell
    catalogue, clears a batch's staging and commits the batch (merge, reject store, ledger) in one
    transaction. Spark reads the staged duplicates with a query of ours: checked as sent."""
    from datetime import UTC, date, datetime

    from cdr_platform.lib.mediation.job import load_known_cells
    from cdr_platform.lib.mediation.store import commit_batch, create_tables, tables_for
    from cdr_platform.lib.warehouse import connect
    from cdr_platform_tests.sqlserver_recorder import Statement

    settings = load_settings()
    tables = tables_for(settings)
    key = {"query_id": "q-1", "batch_id": 7}
    sqlserver.answer(r"count\(\*\) from information_schema\.tables", [(1,)])  # a catalogue is loaded
    sqlserver.answer(r"select cell_id from reference\.cell_catalogue", [("604-01-1-1",)])

    def driver_batch():
        with connect(settings.warehouse) as conn:
            create_tables(conn, tables)
            assert load_known_cells(conn) == frozenset({"604-01-1-1"})
            for sql in tables.clear_staging_sql():
                conn.execute(sql, key)
            conn.commit()
            outcome = commit_batch(
                conn,
                tables,
                **key,
                run_id="run-1",
                rejected=1,
                rejected_by_reason={"UNKNOWN_CELL": 1},
                offsets=[
                    {"topic": "raw-cdrs", "kafka_partition": 0, "from_offset": 0, "until_offset": 1, "messages": 1}
                ],
                committed_day=date(2026, 11, 30),
                topic="raw-cdrs",
                rejected_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
                rejected_day=date(2026, 11, 30),
            )
            assert outcome.rows_in == 1
        sqlserver.statements.append(Statement(tables.duplicates_sql().format(**key), None, sqlserver.step))

    _run_step(sqlserver, "mediation driver (jdbc staging)", driver_batch)
    sent = sqlserver.sent_by("mediation driver (jdbc staging)")
    assert any("merge" in s.lower() or "insert into mediation.rejects" in s for s in sent)


def test_the_rating_drivers_warehouse_statements_on_sqlserver_are_tsql(sqlserver):
    """The SQL Server path of the rating driver (JDBC IO): its session takes the day's lock, reads
    the tariff, brings the tables to shape, makes the work tables, plans the slices and swaps the
    day in under the month's lock; Spark reads the slices with queries of ours (checked as sent)
    and writes the work tables with its own JDBC dialect."""
    from datetime import date, datetime

    from cdr_platform.lib.rating import job
    from cdr_platform.lib.rating.plan import TariffPlanError
    from cdr_platform.lib.rating.store import RatingTables, load_tariff_from_warehouse
    from cdr_platform.lib.schema import CLEAN_CDRS_TABLE
    from cdr_platform.lib.tariff_clock import TariffClock
    from cdr_platform.lib.warehouse import connect
    from cdr_platform_tests.sqlserver_recorder import Statement

    settings = load_settings()
    tables = RatingTables.for_settings(settings)
    assert not tables.partitioned  # SQL Server: a day is deleted and inserted, not a partition swapped
    day = date(2026, 11, 30)
    load = tables.day_load(day, "load0001")
    clean_table = f"{settings.mediation_schema}.{CLEAN_CDRS_TABLE}"
    bounds = TariffClock(settings.tariff_timezone).day_bounds_naive(day)
    sqlserver.answer(r"select distinct src_partition", [(0,), (1,)])
    first_call = datetime(2026, 11, 30, 10, 0)
    sqlserver.answer(r"select min\(start_time\), max\(start_time\)", [(first_call, first_call)])
    sqlserver.answer(r"case when exists", [(0,)])  # ... yet none of that day (the probe's answer)

    def driver_day():
        assert job._rating_io(tables.dialect, settings.rating_io) == "jdbc"
        with connect(settings.warehouse) as lock_conn:
            lock_conn.execute(tables.lock_sql(day))
            with connect(settings.warehouse) as conn:
                with pytest.raises(TariffPlanError, match="no rating plans"):  # the stand-in holds no tariff
                    load_tariff_from_warehouse(conn, tables)
                job._upgrade_tables(conn, tables, clean_table, progress=lambda line: None)
                job._create_work_tables(conn, load, day, progress=lambda line: None)
                slices = job._plan_slices(conn, clean_table, bounds, "jdbc", settings)
                assert slices == ["c.src_partition = 0", "c.src_partition = 1"]
            for query in job.slice_queries(clean_table, bounds, slices):
                sqlserver.statements.append(Statement(query, None, sqlserver.step))
            with connect(settings.warehouse) as conn:
                job._swap_in(conn, lock_conn, tables, load, day)
            lock_conn.execute(tables.lock_sql(day, release=True))
            assert job.days_with_clean_cdrs(lock_conn, clean_table, TariffClock(settings.tariff_timezone)) == []

    _run_step(sqlserver, "rating driver (jdbc)", driver_day)
    sent = sqlserver.sent_by("rating driver (jdbc)")
    assert any(s.startswith(f"delete from {tables.rated} where rating_day") for s in sent), "the day's swap"
