"""Rating on real Spark and PostgreSQL: a day replaced on re-run, midnight crossings, suspense."""

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import psycopg
import pyarrow as pa
import pytest

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.defs.rating.assets import RATING_CDRS_KEY, RERATING_REPORT_KEY, rating_cdrs
from cdr_platform.defs.rating.checks import (
    rating_covers_every_clean_cdr,
    rating_no_negative_cost,
    rating_rerate_sample_matches,
)
from cdr_platform.defs.resources import resources_for
from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.mediation.store import CLEAN_COLUMN_NAMES as CLEAN_CDRS_COLUMN_NAMES
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.job import SUMMARY_PREFIX, _carry_clean_columns, _read_slices, slice_queries
from cdr_platform.lib.rating.store import CARRIED_CLEAN_COLUMNS, RATED_COLUMNS, RatingTables, load_tariff_from_warehouse
from cdr_platform.lib.rating.tasks import rate_and_load
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import SUBSCRIBERS_TABLE, subscriber_rows
from cdr_platform.lib.settings import REPO_ROOT, load_settings
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import postgres, replace_table
from cdr_platform.lib.warehouse.columns import names
from cdr_platform.utils.environment_helpers import Environment
from cdr_platform_tests.integration.mediation_support import MediationSandbox

pytestmark = pytest.mark.timeout(900)
EVENING = datetime(2026, 11, 20, 22, tzinfo=UTC)  # 22:00 -> 02:00 UTC: calls cross local midnight (23:00 UTC)
CLOCK = TariffClock(load_settings().tariff_timezone)  # the operator's: days are local days
LOCAL_MIDNIGHT = CLOCK.day_bounds_naive(date(2026, 11, 21))[0]
UTC_DAY = TariffClock("UTC").day_bounds_naive


@pytest.fixture(scope="module")
def seeded(local_stack):
    subprocess.run(
        dbt_command("seed", "--quiet", "--full-refresh"),  # a seed whose columns changed since the last run
        check=True,
        cwd=DBT_PROJECT_DIR,
    )
    # rating reads each subscriber's segment: the reference table, as the subscribers asset writes it
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute("create schema if not exists reference")
        replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
    return local_stack


@pytest.fixture
def mediated(seeded, tmp_path, monkeypatch):
    """CDRs over midnight, mediated into a sandbox schema; rating into its own schema."""
    box = MediationSandbox.create(seeded, tmp_path)
    rating_schema, tariff_schema = f"rat_{uuid.uuid4().hex[:8]}", f"tar_{uuid.uuid4().hex[:8]}"
    env = {**box.env(), "CDR_RATING_SCHEMA": rating_schema, "CDR_TARIFF_SCHEMA": tariff_schema}
    for key, value in env.items():
        if key.startswith("CDR_"):
            monkeypatch.setenv(key, value)
    with box.connect() as conn:  # the seeded tariff, less the Americas: those calls must go to suspense
        conn.execute(f"create schema {tariff_schema}")
        for table in ("tp_destinations", "tp_timings", "tp_rates", "tp_rating_plans", "tp_rating_profiles"):
            conn.execute(f"create table {tariff_schema}.{table} as select * from tariffs.{table}")
        conn.execute(
            f"create table {tariff_schema}.tp_destination_rates as select * from"
            " tariffs.tp_destination_rates where destination_id <> 'INTL_AMERICAS'"
        )
    box.produce(GeneratorConfig(count=8_000, seed=51, error_rate=0.0, start_time=EVENING, span_hours=4))
    result = box.run()
    assert result.returncode == 0, result.stderr[-2000:]
    yield box, env, RatingTables(rating_schema, tariff_schema=tariff_schema)
    with box.connect() as conn:
        conn.execute(f"drop schema if exists {rating_schema} cascade")
        conn.execute(f"drop schema if exists {tariff_schema} cascade")
    box.drop()


def rate(env, day: str, to: str | None = None):
    """`cdr rate --day day`, or `cdr rate --from day --to to`."""
    days = ["--day", day] if to is None else ["--from", day, "--to", to]
    return subprocess.run(
        [sys.executable, "-m", "cdr_platform.cli", "rate", *days],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def summary_of(done) -> dict:
    """The summary line `cdr rate` ends with."""
    line = next(line for line in done.stdout.splitlines() if line.startswith(SUMMARY_PREFIX))
    return json.loads(line[len(SUMMARY_PREFIX) :])


def per_subscriber(rows) -> dict[str, tuple[int, Decimal]]:
    """(served_msisdn, cost) rows of rated CDRs as each subscriber's count and total cost."""
    out: dict[str, tuple[int, Decimal]] = {}
    for msisdn, cost in rows:
        n, total = out.get(msisdn, (0, Decimal(0)))
        out[msisdn] = (n + 1, total + cost)
    return out


def test_days_are_rated_replaced_on_rerun_and_uncovered_calls_go_to_suspense(mediated):
    """...and a re-rating reports per subscriber what it changed: nothing for an identical re-run,
    exactly the cost differences of the rated CDRs after a tariff correction."""
    box, env, tables = mediated
    for day in ("2026-11-20", "2026-11-21"):
        done = rate(env, day)
        assert done.returncode == 0, done.stderr[-3000:]
        # Spark's Python workers keep their rater and warehouse connection from slice to slice
        # (local[2]: two of each, however many slices)
        summary = summary_of(done)
        assert summary["slices"] >= 4 and 1 <= summary["warehouse_connections"] <= 2, summary
        # a day's first rating is no re-rating: named, and nothing in the report
        assert summary["rerating"]["first_rated_days"] == [day] and summary["rerating"]["subscribers_changed"] == 0
    local_day = f"cast(start_time at time zone 'UTC' at time zone '{CLOCK.tz.key}' as date)"
    clean_by_day = dict(box.query(f"select {local_day}, count(*) from {box.tables.clean} group by 1"))
    assert set(clean_by_day) == {date(2026, 11, 20), date(2026, 11, 21)}
    rated_by_day = dict(box.query(f"select rating_day, count(*) from {tables.rated} group by 1"))
    suspense_by_day = dict(box.query(f"select rating_day, count(*) from {tables.suspense} group by 1"))
    for day, n in clean_by_day.items():
        assert rated_by_day.get(day, 0) + suspense_by_day.get(day, 0) == n
    reasons = {r[0] for r in box.query(f"select distinct reason from {tables.suspense}")}
    assert reasons == {"NO_DESTINATION"}
    assert all(
        o.startswith("+1")
        for (o,) in box.query(
            f"select c.other_msisdn from {tables.suspense} s join {box.tables.clean} c using (record_id)"
        )
    )
    # each rated row carries what billing reads of its clean record, as mediation wrote it
    carried = ", ".join(names(CARRIED_CLEAN_COLUMNS))
    assert box.query(f"select record_id, {carried} from {tables.rated} order by 1") == box.query(
        f"select record_id, {carried} from {box.tables.clean}"
        f" where record_id in (select record_id from {tables.rated}) order by 1"
    )
    before = box.query(f"select record_id, cost from {tables.rated} order by record_id")

    empty = rate(env, "2026-11-25")  # a day without a single clean CDR rates to nothing, not an error
    assert empty.returncode == 0, empty.stderr[-3000:]
    assert '"input": 0' in empty.stdout and '"revenue_total": "0"' in empty.stdout

    again = rate(env, "2026-11-20")  # re-running a day replaces it
    assert again.returncode == 0, again.stderr[-3000:]
    assert box.query(f"select record_id, cost from {tables.rated} order by record_id") == before
    rerun = summary_of(again)["rerating"]  # ...and, at the same tariff, changes nobody's bill
    assert (rerun["rerated_days"], rerun["first_rated_days"], rerun["subscribers_changed"]) == (["2026-11-20"], [], 0)
    assert Decimal(rerun["delta"]) == 0 and rerun["report_rows"] == 0

    # A tariff correction: off-net calls on weekday evenings cost 0.95 a minute, not 0.80. The
    # evening of Friday 20 November uses that rate, Saturday's calls the weekend one.
    with box.connect() as conn:
        conn.execute(f"update {tables.tariff_schema}.tp_rates set rate = '0.95' where id = 'RT_VOICE_OFFNET_OFFPEAK'")
    rated_sql = f"select record_id, served_msisdn, rating_day, cost from {tables.rated} where rating_day in" + (
        " ('2026-11-20', '2026-11-21')"
    )
    old = {r[0]: r[1:] for r in box.query(rated_sql)}
    corrected = rate(env, "2026-11-20", to="2026-11-21")
    assert corrected.returncode == 0, corrected.stderr[-3000:]
    assert "[1/2] 2026-11-20: " in corrected.stderr and "[2/2] 2026-11-21: " in corrected.stderr
    new = {r[0]: r[1:] for r in box.query(rated_sql)}
    assert new.keys() == old.keys()  # the same CDRs, repriced
    changed = {k for k in new if new[k][2] != old[k][2]}
    # only the Friday evening's CDRs, and all of them dearer
    assert changed and {new[k][1] for k in changed} == {date(2026, 11, 20)}
    assert all(new[k][2] > old[k][2] for k in changed)
    # the report, computed here from the CDRs before and after
    before_by, after_by = (per_subscriber((m, c) for m, _, c in rows.values()) for rows in (old, new))
    expected = {
        m: (*before_by[m], *after_by[m]) for m in after_by if before_by[m] != after_by[m]
    }  # msisdn -> old CDRs, old cost, new CDRs, new cost
    report = summary_of(corrected)["rerating"]
    assert report["rerated_days"] == ["2026-11-20", "2026-11-21"] and report["changed_days"] == ["2026-11-20"]
    assert report["subscribers_changed"] == len(expected) == len({new[k][0] for k in changed})
    assert Decimal(report["delta"]) == sum(new[k][2] - old[k][2] for k in changed) > 0
    stored = box.query(
        f"select msisdn, old_cdrs, old_cost, new_cdrs, new_cost, delta from {tables.rerating_report.qualified}"
        " where run_id = %s",
        (report["report_id"],),
    )
    assert {m: (oc, ocost, nc, ncost) for m, oc, ocost, nc, ncost, _ in stored} == expected
    assert all(delta == ncost - ocost for _, _, ocost, _, ncost, delta in stored)
    largest = max(expected.values(), key=lambda v: v[3] - v[1])
    assert Decimal(report["top"][0]["delta"]) == largest[3] - largest[1]

    # a call that starts before local midnight and ends after it: rated on its start day, split at midnight
    crossing = box.query(
        f"select r.record_id, r.cost, c.duration_s, c.start_time from {tables.rated} r join {box.tables.clean} c"
        f" using (record_id) where c.record_type = 'voice' and r.rating_day = '2026-11-20' and c.direction ="
        f" 'outgoing' and c.start_time + c.duration_s * interval '1 second' > %s"
        f" order by c.duration_s desc fetch first 1 rows only",
        (LOCAL_MIDNIGHT,),
    )
    assert crossing, "the generator made no call across midnight"
    with box.connect() as conn:
        engine = RatingEngine(load_tariff_from_warehouse(conn, tables), clock=CLOCK)
    record_id, cost, duration, start = crossing[0]
    row = box.query(
        f"select other_msisdn, served_operator_id from {box.tables.clean} where record_id = %s", (record_id,)
    )[0]
    rating = engine.rate(
        tor="*voice",
        tenant=row[1],
        category="call",
        subject="*any",
        destination=row[0].lstrip("+"),
        setup_time=start.replace(tzinfo=UTC),
        usage_ns=duration * 1_000_000_000,
    )
    assert any(CLOCK.local_date(s.start) == date(2026, 11, 21) for s in rating.spans)


def test_a_day_is_read_from_its_own_band_of_a_table_that_keeps_every_day(local_stack):
    """clean_cdrs keeps every day: rating one reads that day's blocks, not the table's history,
    and its slices together hold each of the day's rows once."""
    schema = f"slc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute(f"create schema {schema}")
        table = f"{schema}.clean_cdrs"
        conn.execute(f"create table {table} (record_id text primary key, start_time timestamp not null, filler text)")
        conn.execute(f"create index on {table} (start_time)")
        for day in range(1, 11):  # ten days, written in order, 20,000 rows each; a late straggler
            conn.execute(
                f"insert into {table} select 'd{day}-' || i, timestamp '2026-11-{day:02d}'"
                f" + i * interval '4 seconds', repeat('x', 100) from generate_series(0, 19999) i"
            )
        conn.execute(f"insert into {table} values ('late', '2026-11-04 12:00', 'x')")
        conn.execute(f"analyze {table}")
        blocks = conn.execute(f"select pg_relation_size('{table}') / 8192").fetchone()[0]
        day = date(2026, 11, 4)
        slices = _read_slices(conn, table, UTC_DAY(day), 2, "c")
        read = []
        for predicate in slices:
            read += [
                r
                for (r,) in conn.execute(
                    f"select record_id from {table} c where start_time >= '2026-11-04'"
                    f" and start_time < '2026-11-05' and {predicate}"
                ).fetchall()
            ]
        assert sorted(read) == sorted([f"d4-{i}" for i in range(20000)] + ["late"])  # each row once
        first_block = int(slices[0].split("'(")[1].split(",")[0])
        assert first_block > 0.25 * blocks  # days 1-3 are not read
        assert len(slices) >= 6
        # a day without rows reads nothing; a day that is most of a table reads all of it
        assert _read_slices(conn, table, UTC_DAY(date(2026, 12, 1)), 2, "c") == ["false"]
        conn.execute(f"delete from {table} where start_time >= '2026-11-05'")
        conn.execute(f"delete from {table} where start_time < '2026-11-04'")
        conn.execute(f"analyze {table}")
        assert _read_slices(conn, table, UTC_DAY(day), 2, "c")[0].startswith("c.ctid >= '(0,0)'")
        conn.execute(f"drop schema {schema} cascade")


def test_a_rating_table_from_before_the_carried_columns_gets_them_from_clean_cdrs_and_takes_new_days(local_stack):
    """rating_cdrs made by an earlier version has no clean columns: the next run adds them to the
    partitioned table, fills its rows from clean_cdrs by record id, and swaps in its day."""
    schema = f"mig_{uuid.uuid4().hex[:8]}"
    tables = RatingTables(schema)
    clean = f"{schema}.clean_cdrs"  # the columns the migration reads
    carried = names(CARRIED_CLEAN_COLUMNS)
    rated_values = (
        "'2026-11-20', '2026-11-20 10:00', 'voice', '+212661000001', 60, 's', 'IAM', 'call', '*any', 'RP', 'D',"
        " 1.5, 0, 'MAD', now()"
    )
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        for statement in tables.ddl():
            conn.execute(statement)
        carried_ddl = ", ".join(c.ddl() for c in CARRIED_CLEAN_COLUMNS)
        conn.execute(f"create table {clean} (record_id varchar(64) primary key, {carried_ddl})")
        conn.execute(
            f"insert into {clean} values ('r1', 'IAM', 'outgoing', 'off_net', '4G', 60, null, 0, 'q1', 7),"
            " ('r2', 'INWI', null, null, '5G', null, 2048, 1, 'q1', 8)"
        )
        conn.execute(
            f"create table {tables.rated}_d20261120 partition of {tables.rated}"
            " for values from ('2026-11-20') to ('2026-11-21')"
        )
        conn.execute(f"alter table {tables.rated} {', '.join(f'drop column {c}' for c in carried)}")  # the old layout
        old_columns = [c for c in names(RATED_COLUMNS) if c not in carried]
        for record_id in ("r1", "r2"):
            conn.execute(
                f"insert into {tables.rated} ({', '.join(old_columns)}) values ('{record_id}', {rated_values})"
            )

        messages = []
        with conn.transaction():
            _carry_clean_columns(conn, tables, clean, messages.append)
        assert messages and "made by an earlier version" in messages[0]
        assert conn.execute(f"select record_id, {', '.join(carried)} from {tables.rated} order by 1").fetchall() == [
            ("r1", "IAM", "outgoing", "off_net", "4G", 60, None, 0, "q1", 7),
            ("r2", "INWI", None, None, "5G", None, 2048, 1, "q1", 8),
        ]
        _carry_clean_columns(conn, tables, clean, messages.append)  # once only
        assert len(messages) == 1

        # a new day's work table (today's layout) is swapped in beside the migrated rows
        load = tables.day_load(date(2026, 11, 21), "mig000run001")
        for statement in load.create_work_sql(
            {"rated_at": "2026-11-21 23:00:00", "suspended_at": "2026-11-21 23:00:00", "currency": "MAD"}
        ):
            conn.execute(statement)
        new_columns = ", ".join(c for c in names(RATED_COLUMNS) if c not in ("rated_at", "currency"))
        conn.execute(
            f"insert into {load.work_rated} ({new_columns}) values ('r3', '2026-11-21', '2026-11-21 10:00', 'sms',"
            " '+212661000001', 'IAM', 'outgoing', 'on_net', '4G', null, null, 0, 'q1', 9, 1, 'sms', 'IAM', 'sms',"
            " '*any', 'RP', 'D', 0.2, 0)"
        )
        attached = postgres.attached_partitions(conn, tables.schema)
        with conn.transaction():
            for statement in load.swap_sql(attached):
                conn.execute(statement)
        assert conn.execute(f"select record_id, rating_day, technology from {tables.rated} order by 1").fetchall() == [
            ("r1", date(2026, 11, 20), "4G"),
            ("r2", date(2026, 11, 20), "5G"),
            ("r3", date(2026, 11, 21), "4G"),
        ]
        conn.execute(f"drop schema {schema} cascade")


def test_a_dead_run_changes_nothing_and_a_retried_slice_loads_once(mediated):
    box, env, tables = mediated
    assert rate(env, "2026-11-20").returncode == 0
    day_rows = f"select record_id, cost from {tables.rated} where rating_day = '2026-11-20' order by record_id"
    before = box.query(day_rows)
    day_bounds = CLOCK.day_bounds_naive(date(2026, 11, 20))
    clean_that_day = box.query(
        f"select count(*) from {box.tables.clean} where start_time >= %s and start_time < %s", day_bounds
    )[0][0]

    # A run that died after loading a slice: its work tables exist, the day's partition is untouched.
    dead = tables.day_load(date(2026, 11, 20), "dead0000run1")
    with box.connect() as conn:
        engine = RatingEngine(load_tariff_from_warehouse(conn, tables), clock=CLOCK)
        for statement in dead.create_work_sql(
            {"rated_at": "2026-11-20 23:00:00", "suspended_at": "2026-11-20 23:00:00", "currency": "MAD"}
        ):
            conn.execute(statement)
    queries = slice_queries(box.tables.clean, day_bounds, ["true"])
    slice_zero = pa.RecordBatch.from_pydict({"id": [0]})
    conninfo = box.settings.warehouse.conninfo()
    loaded = [
        json.loads(
            next(rate_and_load(iter([slice_zero]), engine=engine, load=dead, conninfo=conninfo, queries=queries))
            .column("summary")[0]
            .as_py()
        )
        for _ in range(2)
    ]  # the second is Spark retrying a task that had committed
    assert loaded[0]["input"] == loaded[1]["input"] == clean_that_day
    # a slice of the table that holds no CDR of the day (other days, or none) loads nothing
    empty = json.loads(
        next(
            rate_and_load(
                iter([pa.RecordBatch.from_pydict({"id": [0]})]),
                engine=engine,
                load=tables.day_load(date(2026, 11, 20), "empty000run1"),
                conninfo=conninfo,
                queries=slice_queries(box.tables.clean, day_bounds, ["false"]),
            )
        )
        .column("summary")[0]
        .as_py()
    )
    assert empty["input"] == empty["rated"] == empty["suspended"] == 0
    in_work = box.query(
        f"select (select count(*) from {dead.work_rated}) + (select count(*) from {dead.work_suspense})"
    )
    assert in_work[0][0] == clean_that_day  # loaded once, not twice
    # autovacuum keeps off a work table while tasks load it...
    assert box.query("select reloptions from pg_class where oid = %s::regclass", (dead.work_rated,)) == [
        (["autovacuum_enabled=false"],)
    ]
    assert box.query(day_rows) == before

    # The next run drops the dead run's work tables and replaces the day whole.
    again = rate(env, "2026-11-20")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "left by a rating run of 2026-11-20 that did not finish" in again.stderr
    assert box.query(day_rows) == before
    leftovers = box.query(
        "select table_name from information_schema.tables where table_schema = %s and table_name like %s",
        (tables.schema, "%\\_w%"),
    )
    assert leftovers == []
    partitions = box.query(
        "select c.relname, c.reloptions from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " join pg_namespace n on n.oid = c.relnamespace where n.nspname = %s order by 1",
        (tables.schema,),
    )
    # ...and maintains the day once it is attached
    assert partitions == [("rating_cdrs_d20261120", None), ("rating_suspense_d20261120", None)]


def test_the_portable_jdbc_path_rates_the_day_the_same(mediated):
    """SQL Server's path (Spark's JDBC reader and writer, delete-and-insert or swap) on PostgreSQL."""
    box, env, tables = mediated
    rated_sql = f"select {', '.join(c for c in names(RATED_COLUMNS) if c != 'rated_at')} from {tables.rated} order by 1"
    suspense_sql = f"select record_id, rating_day, reason, detail from {tables.suspense} order by 1"
    assert rate(env, "2026-11-20").returncode == 0
    by_copy = box.query(rated_sql), box.query(suspense_sql)
    done = rate({**env, "CDR_RATING_IO": "jdbc"}, "2026-11-20")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "slices (jdbc)" in done.stderr
    assert (box.query(rated_sql), box.query(suspense_sql)) == by_copy
    assert by_copy[0] and by_copy[1]


def test_rating_through_dagster_passes_its_checks_and_coverage_fails_on_a_clean_cdr_left_unrated(mediated):
    box, env, tables = mediated
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [rating_cdrs, rating_covers_every_clean_cdr, rating_no_negative_cost, rating_rerate_sample_matches],
            instance=instance,
            partition_key="2026-11-20",
            resources=resources_for(load_settings(), Environment.LOCAL),  # the fixture's environment
        )
        assert result.success
        by_key = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("rating_cdrs")}
        meta = by_key[RATING_CDRS_KEY]
        assert meta["rated"].value + meta["suspended"].value == meta["input"].value > 0
        assert "voice" in meta["revenue_by_type"].value
        # the run's re-rating report, an asset of the same run: a first rating has nothing in it
        report = by_key[RERATING_REPORT_KEY]
        assert report["first_rated_days"].value == "2026-11-20" and report["subscribers_changed"].value == 0
        assert report["table"].value == tables.rerating_report.qualified and "rerating_report" not in meta
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {
            "rating_covers_every_clean_cdr": True,
            "rating_no_negative_cost": True,
            "rating_rerate_sample_matches": True,
        }
        # a clean CDR of the day that arrived after its rating: the day's coverage check fails
        with box.connect() as conn:
            (record_id,) = conn.execute(
                f"select record_id from {tables.rated} where rating_day = '2026-11-20' order by record_id limit 1"
            ).fetchone()
            conn.execute(
                f"insert into {box.tables.clean} select 'late-' || record_id,"
                f" {', '.join(c for c in CLEAN_CDRS_COLUMN_NAMES if c != 'record_id')}, query_id, batch_id, mediated_at"
                f" from {box.tables.clean} where record_id = %s",
                (record_id,),
            )
        # the check alone, as a checks-only run has it: no partition, so every rated day
        rechecked = dg.materialize(
            [rating_cdrs, rating_covers_every_clean_cdr],
            instance=instance,
            resources=resources_for(load_settings(), Environment.LOCAL),
            selection=dg.AssetSelection.checks(rating_covers_every_clean_cdr),
            raise_on_error=False,
        )
        (coverage,) = rechecked.get_asset_check_evaluations()
        day_rows = [row for row in coverage.metadata["days"].value.splitlines() if "| 2026-11-20 |" in row]
        assert not coverage.passed and len(day_rows) == 1 and "False" in day_rows[0], coverage.metadata
