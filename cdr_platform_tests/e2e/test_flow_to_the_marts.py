"""The pipeline flows by itself: CDRs produced into raw-cdrs reach the marts and the report with no
manual run.

A real `dagster dev` (webserver and daemon) on its own DAGSTER_HOME and sandbox topics and
schemas: the mediation sensor launches mediation, the rating sensor rates the two days it
touched, the automation sensor bills their months, the marts sensor rebuilds the marts.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from cdr_platform.defs.dbt.project import dbt_command
from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.reference.subscribers import generate_subscribers
from cdr_platform.lib.reference.tables import (
    NUMBERING_PLAN_TABLE,
    SUBSCRIBERS_TABLE,
    numbering_plan_rows,
    subscriber_rows,
)
from cdr_platform.lib.warehouse import replace_table
from cdr_platform.utils.dagster_dev import DagsterDev
from cdr_platform_tests.integration.mediation_support import MediationSandbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
START = datetime(2026, 11, 30, 20, tzinfo=UTC)  # two local days, two months: 30 Nov and 1 Dec
RUNS = "{ runsOrError { ... on Runs { results { runId jobName status assetSelection { path } } } } }"
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { jobs { name } assetNodes { assetKey { path } } } } } } } } }"""
FAILURE = """{ logsForRun(runId: "%s") { ... on EventConnection { events { __typename
  ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""


def test_under_dagster_dev_on_loopback_cdrs_of_two_days_reach_the_marts_and_the_report_by_themselves(
    local_stack, tmp_path
):
    tag = uuid.uuid4().hex[:8]
    box = MediationSandbox.create(local_stack, tmp_path)
    schemas = {
        "CDR_RATING_SCHEMA": f"rat_{tag}",
        "CDR_TARIFF_SCHEMA": f"tar_{tag}",
        "CDR_BILLING_SCHEMA": f"bil_{tag}",
        "CDR_MARTS_SCHEMA": f"mrt_{tag}",
    }
    env = {**box.env(), **schemas, "CDR_SENSOR_INTERVAL_S": "5"}
    with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
        conn.execute("create schema if not exists reference")
        replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
        replace_table(conn, NUMBERING_PLAN_TABLE, numbering_plan_rows())
    # the seeds are launched, not automated (a tariff change is a decision): seeded once here
    subprocess.run(
        dbt_command("seed", "--quiet", target_path=tmp_path / "dbt_target"),
        check=True,
        env=env,
        timeout=300,
    )
    dev = DagsterDev(tmp_path / "dagster_home", tmp_path / "dev.log", env=env)
    marts = schemas["CDR_MARTS_SCHEMA"]
    try:
        assert dev.wait_until_loaded()["__typename"] == "RepositoryLocation", dev.log.read_text()[-3000:]
        # `dagster dev` as a user starts it: on loopback only, every job and the lineage to the report
        with socket.socket() as other_address:
            assert other_address.connect_ex(("127.0.0.2", dev.port)) != 0
        repo = dev.graphql(LOCATION)["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"][0]
        jobs = {j["name"] for j in repo["jobs"]}
        assert {"cdr_pipeline", "generate_cdrs", "mediate_cdrs", "rate_cdrs", "bill_cdrs", "build_marts"} <= jobs
        keys = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {"raw_cdrs", "clean_cdrs", "rating_cdrs", "billing/billing_cdrs", "powerbi/report"} <= keys
        box.produce(GeneratorConfig(count=3_000, seed=71, error_rate=0.05, start_time=START, span_hours=8))
        deadline, assurance, days, runs = time.monotonic() + 720, None, set(), []
        while time.monotonic() < deadline:
            time.sleep(5)
            assert dev.process.poll() is None, dev.log.read_text()[-3000:]
            try:
                runs = dev.graphql(RUNS)["runsOrError"]["results"]
            except OSError:  # the webserver is busy: ask again on the next round
                continue
            with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
                built = [
                    conn.execute("select to_regclass(%s)", (f"{marts}.{table}",)).fetchone()[0]
                    for table in ("fct_revenue_assurance_daily", "fct_revenue_daily")
                ]
                if not all(built):  # the marts are not built yet
                    continue
                assurance = conn.execute(
                    f"select sum(messages_received), sum(rated), sum(billed), sum(in_suspense), sum(clean)"
                    f" from {marts}.fct_revenue_assurance_daily"
                ).fetchone()
                days = {d for (d,) in conn.execute(f"select distinct date_key from {marts}.fct_revenue_daily")}
            # done: every message mediated, every clean CDR rated, both months billed, both days in the
            # marts, the report at the end of the lineage refreshed, and nothing left running
            quiet = not any(r["status"] in ("QUEUED", "STARTING", "STARTED") for r in runs)
            report = any(
                r["status"] == "SUCCESS" and any(a["path"] == ["powerbi", "report"] for a in r["assetSelection"] or [])
                for r in runs
            )
            if assurance[0] == 3_000 and assurance[1] and assurance[2] == assurance[1] and len(days) == 2:
                if quiet and report:
                    break
        by_job: dict[str, list[str]] = {}
        for run in runs:
            assets = ",".join("/".join(a["path"]) for a in run["assetSelection"] or [])[:80]
            by_job.setdefault(run["jobName"], []).append(run["status"])
            if run["status"] == "FAILURE":  # why, for the assertion's message
                events = dev.graphql(FAILURE % run["runId"])["logsForRun"]["events"]
                errors = [e["error"]["message"][:400] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
                by_job.setdefault("failures", []).append(f"{run['jobName']} [{assets}]: {errors}")
        assert assurance and assurance[0] == 3_000, (assurance, by_job, dev.log.read_text()[-3000:])
        messages, rated, billed, suspense, clean = assurance
        assert rated + suspense == clean and billed == rated, (assurance, by_job)
        assert days == {20261130, 20261201}, by_job
        # nothing was launched by hand: the mediation, rating and marts sensors, the automation sensor
        assert {"mediate_cdrs", "rate_cdrs", "build_marts"} <= set(by_job), by_job
        assert len([s for s in by_job["rate_cdrs"] if s == "SUCCESS"]) >= 2, by_job
        assert "failures" not in by_job, by_job["failures"]
        assert report and quiet, ("the report was not refreshed at the end of the flow", by_job)
    finally:
        stopped = dev.stop()
        with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"drop schema if exists {schema} cascade")
        box.drop()
    assert stopped, "dagster dev did not stop on SIGTERM"
