"""The pipeline flows by itself, under live traffic, and survives `dagster dev` stopped mid-billing.

A real `dagster dev` (webserver and daemon) on its own DAGSTER_HOME and sandbox topics and schemas
(cdr_platform.utils.soak): CDRs are produced at a steady rate for 45 seconds, over
two local days and two months, and a switch's file of CDRs is dropped into its landing folder; the
landing sensor collects the file into raw-cdrs, the mediation sensor launches mediation, the rating sensor rates
the days, the automation sensor bills their months, the marts sensor rebuilds the marts. While a
billing run is in progress, `dagster dev` is stopped and started again: the run whose worker died
is marked failed and re-executed, and the marts catch up with every CDR produced.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from datetime import UTC, datetime

import psycopg
import pytest

from cdr_platform.defs.dbt.project import dbt_command
from cdr_platform.utils.soak import Soak, summary_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
START = datetime(2026, 11, 30, 20, tzinfo=UTC)  # two local days, two months: 30 Nov and 1 Dec
RATE, SECONDS = 60, 45  # a short soak: 2,700 CDRs
RUNS = """{ runsOrError { ... on Runs { results { runId jobName status tags { key value }
  assetSelection { path } } } } }"""
LOCATION = """{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { jobs { name } assetNodes { assetKey { path } } } } } } } } }"""
FAILURE = """{ logsForRun(runId: "%s") { ... on EventConnection { events { __typename
  ... on MessageEvent { message } ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""
BILLING = ["billing", "billing_cdrs"]


ENGINE_EVENTS = """{ logsForRun(runId: "%s") { ... on EventConnection { events { __typename
  ... on MessageEvent { message } } } } }"""


def _run_worker(dev, run_id: str) -> int | None:
    """The pid of a run's worker process, from the engine event Dagster logs when it starts it."""
    events = dev.graphql(ENGINE_EVENTS % run_id)["logsForRun"]["events"]
    for event in events:
        found = re.search(r"\(pid: (\d+)\)", event.get("message") or "")
        if found:
            return int(found.group(1))
    return None


def _kill_with_children(pid: int) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        for child in process.children(recursive=True):
            child.kill()
        process.kill()
    except psutil.NoSuchProcess:  # it finished first
        pass


def _report_runs(runs: list[dict]) -> list[dict]:
    """The runs that refreshed the Power BI report, the end of the lineage."""
    return [
        r
        for r in runs
        if r["status"] == "SUCCESS" and any(a["path"] == ["powerbi", "report"] for a in r["assetSelection"] or [])
    ]


def _billing_run_started(runs: list[dict]) -> dict | None:
    for run in runs:
        if run["status"] == "STARTED" and any(a["path"] == BILLING for a in run["assetSelection"] or []):
            return run
    return None


def test_a_short_soak_under_dagster_dev_reaches_the_marts_and_survives_dagster_dev_stopped_during_billing(
    local_stack, tmp_path, record_property
):
    soak = Soak(local_stack, tmp_path, rate=RATE, seconds=SECONDS, sensor_interval_s=5)
    killed: dict | None = None
    try:
        soak.prepare_warehouse(dbt_command("seed", "--quiet", target_path=tmp_path / "dbt_target"))
        dev = soak.start_dagster()
        # `dagster dev` as a user starts it: on loopback only, every job and the lineage to the report
        with socket.socket() as other_address:
            assert other_address.connect_ex(("127.0.0.2", dev.port)) != 0
        repo = dev.graphql(LOCATION)["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]["repositories"][0]
        jobs = {j["name"] for j in repo["jobs"]}
        assert {"cdr_pipeline", "mediate_cdrs", "rate_cdrs", "bill_cdrs", "build_marts", "replay_rejects"} <= jobs
        keys = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {
            "raw_cdrs",
            "clean_cdrs",
            "reject_store",
            "rating_cdrs",
            "billing/billing_cdrs",
            "powerbi/report",
        } <= keys

        soak.start_producing(start_time=START, span_hours=8)
        # and a switch's file dropped into its landing folder: the landing sensor collects it
        landed = soak.land_file("switch-casa-1", "CDR_000001.jsonl", count=120, start_time=START, span_hours=8)

        def stop_during_billing(s: Soak, counts) -> None:
            nonlocal killed
            if killed is not None or s.dev is None:
                return
            billing = _billing_run_started(s.dev.graphql(RUNS)["runsOrError"]["results"])
            if billing is None:
                return
            killed = billing
            worker = _run_worker(s.dev, billing["runId"])
            assert s.stop_dagster(), "dagster dev did not stop on SIGTERM"
            # a run worker can outlive dagster dev and finish; this one dies with it, as in a crash:
            # by the pid Dagster logged for it (its command line need not name the run), children too
            if worker is not None:
                _kill_with_children(worker)
            subprocess.run(["pkill", "-KILL", "-f", billing["runId"]], check=False)  # noqa: S603, S607
            s.start_dagster("dagster-dev-restarted.log")  # the same DAGSTER_HOME: the run is still there

        caught_up = soak.wait_caught_up(SECONDS + 600, on_poll=stop_during_billing)
        report = soak.finish()
        record_property("soak", summary_line(report))
        # wait for the end of the lineage: nothing running and the report refreshed. Quiet alone is not
        # the end: between the last marts build and the automation sensor's next tick nothing runs yet
        deadline, runs = time.monotonic() + 240, []
        while time.monotonic() < deadline:
            runs = soak.dev.graphql(RUNS)["runsOrError"]["results"]
            quiet = not any(r["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED") for r in runs)
            if quiet and _report_runs(runs):
                break
            time.sleep(5)
        by_job: dict[str, list[str]] = {}
        failures = []
        for run in runs:
            by_job.setdefault(run["jobName"], []).append(run["status"])
            if run["status"] == "FAILURE":
                events = soak.dev.graphql(FAILURE % run["runId"])["logsForRun"]["events"]
                why = [
                    (e.get("error") or {}).get("message") or e.get("message", "")
                    for e in events
                    if e["__typename"] in ("RunFailureEvent", "ExecutionStepFailureEvent")
                ]
                failures.append((run["runId"], run["jobName"], [w[:900] for w in why]))
        assert caught_up, (summary_line(report), by_job, failures)
        assert report.produced == RATE * SECONDS and report.landed == 120
        assert report.marts_held == report.billed == report.produced + report.landed, summary_line(report)
        # the landed file was collected (archived, its ledger row collected) with no manual run
        assert not landed.exists() and (landed.parent / "archive" / landed.name).exists()
        assert "collect_landing_files" in by_job and "SUCCESS" in by_job["collect_landing_files"], by_job
        assert killed is not None, ("no billing run was seen in progress", by_job)
        # the billing run stopped with dagster dev failed - as interrupted (its worker's own report on
        # SIGTERM) or, had it died without a word, by the dead-run watchdog - and so did whatever else
        # was running then; the instance's run retries executed each again, successfully
        killed_now = next(r for r in runs if r["runId"] == killed["runId"])
        assert killed_now["status"] == "FAILURE", killed_now
        for run_id, job, why in failures:
            # interrupted by the stop (the worker's own word), or found dead after the restart (by the
            # watchdog or Dagster's run monitoring): never a failure of the work itself
            assert any(
                "interrupt" in w.lower() or "run worker" in w or "from outside the execution context" in w for w in why
            ), (job, why)
            retries = [r for r in runs if {"key": "dagster/parent_run_id", "value": run_id} in r["tags"]]
            assert [r["status"] for r in retries] == ["SUCCESS"], (job, run_id, retries)
        assert {"mediate_cdrs", "rate_cdrs", "build_marts"} <= set(by_job), by_job
        assert _report_runs(runs), ("the report was not refreshed at the end of the flow", by_job)
        # under live traffic the queue stays bounded: at most one waiting run per stage and rating day
        assert report.max_queued <= 8, summary_line(report)
        with psycopg.connect(local_stack.warehouse.conninfo(), autocommit=True) as conn:
            marts = soak.schemas["CDR_MARTS_SCHEMA"]
            days = {d for (d,) in conn.execute(f"select distinct date_key from {marts}.fct_revenue_daily")}
        assert days == {20261130, 20261201}
        assert soak.stop_dagster(), "dagster dev did not stop on SIGTERM"
    finally:
        soak.cleanup()
