"""Housekeeping keeps the disk bounded: logs rotated in place, stale Spark scratch and old runs removed."""

from __future__ import annotations

import os
import time

import dagster as dg
from dagster._core.storage.dagster_run import DagsterRun

from cdr_platform.defs.operations.housekeeping import prune_runs
from cdr_platform.utils.housekeeping import rotate_log, sweep


def test_a_log_over_its_limit_is_copied_and_truncated_in_place_while_its_writer_goes_on(tmp_path):
    log = tmp_path / "kafka.log"
    writer = log.open("ab")  # as the stack starts the broker: append mode
    writer.write(b"x" * 2000)
    writer.flush()
    assert not rotate_log(log, max_bytes=5000)
    assert rotate_log(log, max_bytes=1000, keep=2)
    assert (tmp_path / "kafka.log.1").read_bytes() == b"x" * 2000 and log.stat().st_size == 0
    writer.write(b"next")
    writer.flush()
    assert log.read_bytes() == b"next"  # the writer appends at the new end, no hole
    writer.write(b"y" * 2000)
    writer.flush()
    assert rotate_log(log, max_bytes=1000, keep=2)
    assert (tmp_path / "kafka.log.2").read_bytes() == b"x" * 2000
    assert (tmp_path / "kafka.log.1").read_bytes() == b"next" + b"y" * 2000
    writer.close()


def test_stale_spark_scratch_and_old_demo_logs_go_and_fresh_ones_stay(tmp_path):
    scratch = tmp_path / "tmp"
    stale, fresh = scratch / "spark-old" / "blockmgr-1", scratch / "spark-new"
    stale.mkdir(parents=True)
    fresh.mkdir()
    (stale / "shuffle_0.data").write_bytes(b"z" * 100)
    day_ago = time.time() - 2 * 86_400
    for path in (stale / "shuffle_0.data", stale, stale.parent):
        os.utime(path, (day_ago, day_ago))
    logs = tmp_path / "logs"
    logs.mkdir()
    old_demo, new_demo = logs / "demo-20261101-000000.log", logs / "demo-20261204-000000.log"
    old_demo.write_text("old")
    new_demo.write_text("new")
    os.utime(old_demo, (day_ago - 8 * 86_400, day_ago - 8 * 86_400))
    swept = sweep([], demo_logs=logs, spark_scratch=scratch, stale_hours=24, keep_days=7)
    assert swept.deleted_dirs == [str(stale.parent)] and fresh.exists()
    assert swept.deleted_files == [str(old_demo)] and new_demo.exists()
    assert swept.freed_bytes == 103


def test_finished_runs_past_the_retention_are_pruned_but_the_newest_success_of_each_kind_and_running_ones():
    day = {"dagster/partition": "2026-11-30"}
    with dg.instance_for_test() as instance:
        instance.add_run(DagsterRun(job_name="rate_cdrs", run_id="older", status=dg.DagsterRunStatus.SUCCESS, tags=day))
        instance.add_run(
            DagsterRun(job_name="rate_cdrs", run_id="failed", status=dg.DagsterRunStatus.FAILURE, tags=day)
        )
        instance.add_run(
            DagsterRun(job_name="rate_cdrs", run_id="newest", status=dg.DagsterRunStatus.SUCCESS, tags=day)
        )
        instance.add_run(DagsterRun(job_name="bill_cdrs", run_id="running", status=dg.DagsterRunStatus.STARTED))
        assert prune_runs(instance, older_than_days=7) == []  # all recent
        later = time.time() + 8 * 86_400
        assert sorted(prune_runs(instance, older_than_days=7, now=later)) == ["failed", "older"]
        # the day's latest materialization stays with its run; a run in progress is never touched
        assert sorted(r.run_id for r in instance.get_runs()) == ["newest", "running"]
