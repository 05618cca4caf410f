"""Network elements' CDR files from collection to the bills, on real Kafka, Spark, PostgreSQL and dbt.

Two sources, in a sandbox of their own (topics, schemas, landing folder):

- `sbc-casa-1`, a Kamailio SIP proxy: SIPp places real calls through Debian's Kamailio between
  subscribers (answered ones of known durations, one busy, one left ringing); its acc CDR file
  is collected by hand (`cdr collect`, which declares the source with its cell).
- `msc-rabat-2`, a second MSC reporting one of the first one's calls under its own id.
- `msc-casa-1`, an MSC writing TS 32.297 files of TS 32.298 records (encoded with pycrate by
  cdr_platform_tests/threegpp_files.py): files dropped into its landing folder, found by the
  landing sensor and collected by the Dagster asset - numbered 1, 2, 4 (3 is missing), one
  repeating number 2 with other bytes, one whose header is broken, and file 1 dropped again.

Then mediation, rating and billing as the platform runs them. What it proves: every file has its
ledger row and the right fate; every record read is published or counted as not charged; an
undecodable record is a reject naming its file and index; an MT-SMS without originator is clean;
the sequence gap is reported; and the bills count exactly the calls SIPp placed, with their minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import psycopg
import pytest

from cdr_platform.defs.collection.assets import (
    COLLECTION_FILES_KEY,
    collection_files,
    collection_sequence_gaps,
    landing_folder_sensor,
)
from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
from cdr_platform.defs.resources import resources_for
from cdr_platform.lib.kafka_io import admin_client
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    NUMBERING_PLAN_TABLE,
    SUBSCRIBER_PERIODS_TABLE,
    SUBSCRIBERS_TABLE,
    numbering_plan_rows,
    subscriber_period_rows,
    subscriber_rows,
)
from cdr_platform.lib.settings import REPO_ROOT, load_settings
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.utils.environment_helpers import Environment
from cdr_platform_tests import threegpp_files as g
from cdr_platform_tests.integration.mediation_support import MediationSandbox
from cdr_platform_tests.sip_traffic import ANSWER, BUSY, RING, SipCall, place_calls

pytestmark = pytest.mark.timeout(600)

SIP_SOURCE, MSC_SOURCE, SECOND_MSC = "sbc-casa-1", "msc-casa-1", "msc-rabat-2"
SIP_CELL = "604-01-01200-00012"  # a 4G cell of the catalogue: the SIP proxy's declared cell
SUBSCRIBERS = generate_subscribers()
POSTPAID = [s.msisdn for s in SUBSCRIBERS if s.plan == "Forfait 100"]
OTHERS = [s.msisdn for s in SUBSCRIBERS if s.plan != "Forfait 100"]
# the answered calls: two by the first caller, one by the second; durations SIPp holds them
ANSWERED = [
    SipCall(POSTPAID[0], OTHERS[0], ANSWER, talk_ms=2000),
    SipCall(POSTPAID[0], OTHERS[1], ANSWER, talk_ms=4000),
    SipCall(POSTPAID[1], OTHERS[2], ANSWER, talk_ms=3000),
]
UNANSWERED = [SipCall(POSTPAID[1], OTHERS[3], BUSY), SipCall(POSTPAID[2], OTHERS[4], RING)]


def late_session_file(now: datetime) -> bytes:
    """msc-rabat-2's file 2: a whole PGW session in two partial records, stitched by a driver that crashes."""
    at = now - timedelta(hours=1)
    return g.build_file(
        g.pgw_session(POSTPAID[7], at, 2, part_seconds=300, charging_id=777, pgw_address="10.20.0.2"),
        sequence_number=2,
        opened_at=at,
        node="10.1.1.2",
    )


def msc_files(now: datetime) -> dict[str, bytes]:
    """The MSC's files, by name: three good ones numbered 1, 2 and 4, a second number 2, a broken one."""
    at = now - timedelta(hours=1)
    session = g.pgw_session(POSTPAID[5], at, 3, part_seconds=600, charging_id=501)  # across files 1 and 2
    cut_short = g.pgw_session(POSTPAID[6], at, 2, part_seconds=600, charging_id=502)[:1]  # never completes
    first = [
        *session[:2],
        *cut_short,
        g.MoCall(POSTPAID[2], OTHERS[5], at, 61, call_reference=11),
        g.MtSms(POSTPAID[2], at + timedelta(minutes=1)),  # no originator: TS 32.298 has none
        g.Spoiled(g.MoCall(POSTPAID[2], OTHERS[6], at, 30, call_reference=12)),  # record index 5
        g.MoSms(POSTPAID[3], OTHERS[7], at + timedelta(minutes=2)),
    ]
    second = [session[2], g.MtCall(POSTPAID[3], OTHERS[8], at + timedelta(minutes=3), 45, call_reference=21)]
    fourth = [g.MoCall(POSTPAID[3], OTHERS[9], at + timedelta(minutes=4), 120, call_reference=41)]
    other_second = [g.MoCall(POSTPAID[4], OTHERS[10], at, 10, call_reference=99)]
    # another MSC reports file 4's call too, under its own id, a second later
    reported_again = [g.MoCall(POSTPAID[3], OTHERS[9], at + timedelta(minutes=4, seconds=1), 120, msc="212600000002")]
    return {
        "MSC2_000001.ber": g.build_file(reported_again, sequence_number=1, opened_at=at, node="10.1.1.2"),
        "MSC1_000001.ber": g.build_file(first, sequence_number=1, opened_at=at),
        "MSC1_000002.ber": g.build_file(second, sequence_number=2, opened_at=at),
        "MSC1_000004.ber": g.build_file(fourth, sequence_number=4, opened_at=at),
        "MSC1_000002_resent.ber": g.build_file(other_second, sequence_number=2, opened_at=at),
        "MSC1_000005.ber": g.break_header(g.build_file(fourth, sequence_number=5, opened_at=at), "file_length"),
    }


class Flow:
    def __init__(self, box: MediationSandbox, env: dict[str, str], landing) -> None:
        self.box, self.env, self.landing = box, env, landing
        self.rating, self.billing = env["CDR_RATING_SCHEMA"], env["CDR_BILLING_SCHEMA"]

    def cli(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "cdr_platform.cli", *args],
            env={**os.environ, **self.env, **env},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            start_new_session=True,  # a crash injection kills its own process group, not this one
        )
        assert not check or proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc

    def query(self, sql: str, params=None) -> list[tuple]:
        return self.box.query(sql, params)

    def ledger(self) -> dict[str, tuple]:
        return {
            name: tuple(rest)
            for name, *rest in self.query(
                f"select file_name, source, status, sequence_number, records_read, records_published,"
                f" records_not_charged, records_undecodable from {self.box.schema}.collection_files"
            )
        }


@pytest.fixture(scope="module")
def flow(local_stack, tmp_path_factory):
    tag = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("collection")
    box = MediationSandbox.create(local_stack, work)
    landing = work / "landing"
    env = {
        **{k: v for k, v in box.env().items() if k.startswith("CDR_")},
        "CDR_RATING_SCHEMA": f"rat_{tag}",
        "CDR_TARIFF_SCHEMA": f"tar_{tag}",
        "CDR_BILLING_SCHEMA": f"bil_{tag}",
        "CDR_MARTS_SCHEMA": f"mrt_{tag}",
        "CDR_LANDING_DIR": str(landing),
        "CDR_COLLECTION_SETTLE_S": "0",
        "CDR_PARTIALS_TOPIC": f"partials-{tag}",
        # a chain times out 1 s after its latest part arrived, once partials arriving later say so
        "CDR_PARTIAL_TIMEOUT_S": "1",
        "CDR_DATA_DIR": str(work / "data"),
        "DAGSTER_HOME": str(work / "dagster_home"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
            conn.execute("create schema if not exists reference")
            replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(SUBSCRIBERS))
            replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(SUBSCRIBERS))
            replace_table(conn, NUMBERING_PLAN_TABLE, numbering_plan_rows())
        dbt_vars = json.dumps({"tariff_schema": env["CDR_TARIFF_SCHEMA"], "billing_schema": env["CDR_BILLING_SCHEMA"]})
        seed = dbt_command("seed", "--quiet", "--vars", dbt_vars)
        subprocess.run(seed, check=True, cwd=DBT_PROJECT_DIR, env={**os.environ, **env})
        run = Flow(box, env, landing)
        (work / "dagster_home").mkdir()

        # the SIP proxy: real calls, its CDR file collected by hand, declaring the source
        run.placed = place_calls(work / "sip", [*ANSWERED, *UNANSWERED])
        assert run.placed.uac_exit_code == 0 and run.placed.cdr_files, run.placed.describe()
        run.sip_collect = run.cli(
            "collect", "--source", SIP_SOURCE, "--format", "kamailio-acc", "--cell-id", SIP_CELL,
            "--technology", "4G", *map(str, run.placed.cdr_files),
        )  # fmt: skip

        # the MSC: files into its landing folder, found by the sensor, collected by the asset
        now = datetime.now(UTC)
        run.msc_files = msc_files(now)
        folder = landing / MSC_SOURCE
        for name, data in run.msc_files.items():
            into = landing / (SECOND_MSC if name.startswith("MSC2") else MSC_SOURCE)
            into.mkdir(parents=True, exist_ok=True)
            (into / f".{name}.part").write_bytes(data)
            (into / f".{name}.part").rename(into / name)  # written, then renamed: complete
        # the sources' folders are collected in name order: msc-casa-1's file 4 before msc-rabat-2's report
        resources = resources_for(load_settings(), Environment.LOCAL)
        with dg.instance_for_test() as instance:
            run.sensor_request = landing_folder_sensor(
                dg.build_sensor_context(instance=instance, resources={"landing": resources["landing"]})
            )
            run.collected = dg.materialize(
                [collection_files, collection_sequence_gaps], instance=instance, resources=resources
            )
            # a session collected by hand, then stitched by a driver killed between publishing its
            # CDR and recording the batch
            late = work / "MSC2_000002.ber"
            late.write_bytes(late_session_file(now))
            run.late_collect = run.cli("collect", "--source", SECOND_MSC, str(late))
            run.crashed_stitch = run.cli("stitch", check=False, CDR_MEDIATION_CRASH_AT="stitch_after_publish")
            # file 1 again, byte for byte: collecting it changes nothing; the run's stitching takes up
            # what the killed driver left (it publishes that CDR again: rated once all the same)
            (folder / "MSC1_000001.ber").write_bytes(run.msc_files["MSC1_000001.ber"])
            run.ledger_before_again = run.ledger()
            run.again = dg.materialize([collection_files], instance=instance, resources=resources)
            run.ledger_after_again = run.ledger()
        run.status = run.cli("collection", "status", check=False)

        mediated = box.run()
        assert mediated.returncode == 0, mediated.stderr[-3000:]
        run.days = sorted(mediated.summary["clean_by_day"])
        run.cli("rate", "--from", run.days[0], "--to", run.days[-1])  # one Spark session for all days
        run.months = sorted({day[:7] for day in run.days})
        for month in run.months:
            run.cli("billing", "bill", "--month", month)
        yield run
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        for schema in ("CDR_RATING_SCHEMA", "CDR_TARIFF_SCHEMA", "CDR_BILLING_SCHEMA", "CDR_MARTS_SCHEMA"):
            conn.execute(f"drop schema if exists {env[schema]} cascade")
    box.drop()
    admin = admin_client(local_stack.kafka)
    try:
        admin.delete_topics([env["CDR_PARTIALS_TOPIC"]])
    finally:
        admin.close()
    shutil.rmtree(work, ignore_errors=True)


def test_every_file_has_one_ledger_row_with_its_fate_and_every_record_read_is_accounted_for(flow):
    ledger = flow.ledger()
    fates = {name: (source, status, sequence) for name, (source, status, sequence, *_) in ledger.items()}
    sip_files = {path.name for path in flow.placed.cdr_files}
    assert fates == {
        **dict.fromkeys(sip_files, (SIP_SOURCE, "collected", None)),
        "MSC1_000001.ber": (MSC_SOURCE, "collected", 1),
        "MSC1_000002.ber": (MSC_SOURCE, "collected", 2),
        "MSC1_000004.ber": (MSC_SOURCE, "collected", 4),
        "MSC1_000002_resent.ber": (MSC_SOURCE, "duplicate", 2),
        "MSC1_000005.ber": (MSC_SOURCE, "quarantined", None),
        "MSC2_000001.ber": (SECOND_MSC, "collected", 1),
        "MSC2_000002.ber": (SECOND_MSC, "collected", 2),
    }
    for name, (_, status, _, read, published, not_charged, _) in ledger.items():
        if status == "collected":
            assert read == published + not_charged > 0, name
    sip = [ledger[name] for name in sip_files]
    assert sum(row[3] for row in sip) == len(ANSWERED) + len(UNANSWERED)  # Kamailio wrote failed calls too
    assert sum(row[5] for row in sip) == len(UNANSWERED)  # busy and cancelled: read, not charged
    # seven records (three PGW partials among them), one undecodable, published as a reject
    assert ledger["MSC1_000001.ber"][3:] == (7, 7, 0, 1)
    archived = {p.name for p in (flow.landing / MSC_SOURCE / "archive").iterdir()}
    quarantined = {p.name for p in (flow.landing / MSC_SOURCE / "quarantine").iterdir()}
    assert archived == {"MSC1_000001.ber", "MSC1_000002.ber", "MSC1_000004.ber"}
    assert {"MSC1_000002_resent.ber", "MSC1_000005.ber", "MSC1_000005.ber.reason"} <= quarantined
    assert "file" in (flow.landing / MSC_SOURCE / "quarantine" / "MSC1_000005.ber.reason").read_text()
    assert not [p for p in (flow.landing / MSC_SOURCE).iterdir() if p.is_file()]  # the landing folder is empty


def test_the_landing_sensor_asked_for_a_run_and_the_asset_reported_the_gap(flow):
    assert isinstance(flow.sensor_request, dg.RunRequest)
    assert flow.collected.success
    materialization = flow.collected.asset_materializations_for_node("collection__collection_files")[0]
    assert materialization.metadata["collected"].value == 4 and materialization.metadata["refused"].value == 2
    assert materialization.metadata["records_duplicate_content"].value == 1
    (gaps,) = [c for c in flow.collected.get_asset_check_evaluations() if c.asset_key == COLLECTION_FILES_KEY]
    assert not gaps.passed and gaps.metadata["missing_files"].value == 1
    assert flow.status.returncode == 1 and "1 file(s) missing between sequence 2 and 4" in flow.status.stdout


def test_a_file_collected_again_byte_for_byte_changes_nothing(flow):
    assert flow.again.success
    assert flow.ledger_after_again == flow.ledger_before_again
    materialization = flow.again.asset_materializations_for_node("collection__collection_files")[0]
    assert materialization.metadata["records_published"].value == 0
    # what the killed stitching driver left, stitched by this run: the late session again, and the
    # cut-short one, timed out by the late session's parts arriving after it
    assert materialization.metadata["stitched_cdrs"].value == 2
    assert materialization.metadata["stitched_incomplete"].value == 1
    assert "MSC1_000001.ber" in {p.name for p in (flow.landing / MSC_SOURCE / "quarantine").iterdir()}


def test_an_undecodable_record_is_a_reject_that_names_its_file_and_index(flow):
    rejects = flow.query(f"select reasons, payload from {flow.box.schema}.rejects where reasons = 'UNDECODABLE_RECORD'")
    assert len(rejects) == 1
    origin = orjson.loads(bytes(rejects[0][1]))["origin"]
    assert (origin["source"], origin["file"], origin["index"]) == (MSC_SOURCE, "MSC1_000001.ber", 5)
    assert origin["record"]  # the original BER octets, base64


def test_a_call_reported_by_a_second_msc_is_rejected_duplicate_content_naming_the_record_kept(flow):
    (payload,) = [
        orjson.loads(bytes(p))
        for (p,) in flow.query(f"select payload from {flow.box.schema}.rejects where reasons = 'DUPLICATE_CONTENT'")
    ]
    assert payload["origin"]["source"] == SECOND_MSC
    kept = flow.query(
        f"select record_id, duration_s from {flow.rating}.rating_cdrs where record_id = %s", (payload["duplicate_of"],)
    )
    assert kept == [(payload["duplicate_of"], 120)]  # file 4's call, rated once
    assert payload["record_id"] != payload["duplicate_of"]


def test_an_mt_sms_without_originator_is_clean_and_rated(flow):
    clean = flow.query(
        f"select other_msisdn, direction from {flow.box.schema}.clean_cdrs"
        " where served_msisdn = %s and record_type = 'sms'",
        (POSTPAID[2],),
    )
    assert clean == [(None, "incoming")]
    rated = flow.query(
        f"select direction, destination_class from {flow.rating}.rating_cdrs"
        " where served_msisdn = %s and record_type = 'sms'",
        (POSTPAID[2],),
    )
    assert rated == [("incoming", None)]


def test_the_bills_count_exactly_the_answered_sip_calls_with_the_seconds_sipp_held_them(flow):
    for caller in {call.caller for call in ANSWERED}:
        placed = [call for call in ANSWERED if call.caller == caller]
        (row,) = flow.query(
            f"select sum(voice_calls), sum(total_call_duration_s) from {flow.billing}.billing_cdrs where msisdn = %s",
            (caller,),
        )
        calls, seconds = int(row[0]), int(row[1])
        assert calls == len(placed), caller
        assert abs(seconds - sum(call.talk_ms for call in placed) / 1000) <= len(placed), (caller, seconds)
    # a busy or unanswered call is never billed
    (ringing,) = flow.query(
        f"select count(*) from {flow.rating}.rating_cdrs where served_msisdn = %s and record_type = 'voice'"
        " and start_time > %s",
        (UNANSWERED[1].caller, datetime.fromtimestamp(flow.placed.started_at - 1, UTC).replace(tzinfo=None)),
    )[0]
    assert ringing == 0


def test_each_collected_cdr_is_rated_once_on_its_local_day(flow):
    clock = TariffClock(load_settings().tariff_timezone)
    rated = flow.query(f"select record_id, start_time, rating_day from {flow.rating}.rating_cdrs")
    assert len(rated) == len({record_id for record_id, _, _ in rated})
    # the answered SIP calls, and the MSC's MO call, MT SMS and MO SMS (file 1, less its spoiled
    # record), MT call (file 2) and MO call (file 4); nothing of the duplicate or broken files, nor
    # the second MSC's report of file 4's call; and one data CDR per PGW session (three)
    assert len(rated) == len(ANSWERED) + 5 + 3
    for _, start, day in rated:
        assert day == clock.local_date(start.replace(tzinfo=UTC))


def test_partial_records_across_files_are_one_cdr_per_session_and_a_cut_short_one_is_flagged_incomplete(flow):
    sessions = {
        served: (duration, volume)
        for served, duration, volume in flow.query(
            f"select served_msisdn, duration_s, data_volume_bytes from {flow.rating}.rating_cdrs"
            " where record_type = 'data'"
        )
    }
    # the encoder's partials carry 1,000 up and 4,000 down each
    assert sessions == {POSTPAID[5]: (1800, 15_000), POSTPAID[6]: (600, 5_000), POSTPAID[7]: (600, 10_000)}
    flags = {
        doc["served_msisdn"]: doc["stitched"]
        for doc in (orjson.loads(bytes(p)) for (p,) in flow.query(f"select payload from {flow.box.schema}.rejects"))
        if "stitched" in doc
    }
    assert set(flags) == {POSTPAID[7]}  # the one stitched CDR among the rejects: the copy the crash made
    stitched = flow.query(f"select partials_in, seen_twice, cdrs_out, incomplete_out, partials_out from"
                          f" {flow.box.schema}.partial_stitch_ledger")  # fmt: skip
    partials_in, seen_twice, cdrs, incomplete, partials_out = (sum(column) for column in zip(*stitched))
    assert (partials_in, seen_twice, cdrs, incomplete, partials_out) == (6, 0, 3, 1, 6)  # none left waiting


def test_a_stitching_driver_killed_after_publishing_publishes_again_and_the_copy_is_rejected_duplicate(flow):
    assert flow.crashed_stitch.returncode == -9, flow.crashed_stitch.stderr[-2000:]
    assert "1 partial records" not in flow.late_collect.stdout and "2 partial records" in flow.late_collect.stdout
    (reject,) = flow.query(f"select reasons, payload from {flow.box.schema}.rejects where reasons = 'DUPLICATE'")
    assert orjson.loads(bytes(reject[1]))["record_id"] == "pgw-10.20.0.2-777"
