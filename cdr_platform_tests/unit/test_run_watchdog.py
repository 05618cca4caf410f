"""The run watchdog: a STARTED run whose worker process is gone is marked failed, to be re-executed."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType, RunFailureReason
from dagster._core.storage.dagster_run import DagsterRun

from cdr_platform.defs.operations.sensors import dead_runs_sensor
from cdr_platform.utils.processes import process_alive


def test_a_process_is_alive_until_it_ends_and_a_newer_process_is_not_the_one_we_started():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(child.pid, started_by=time.time())
        # started after the moment it should have been running by: another process under that pid
        assert not process_alive(child.pid, started_by=time.time() - 3600)
    finally:
        child.kill()
    time.sleep(0.2)
    assert not process_alive(child.pid)  # a zombie until reaped: dead all the same
    child.wait()
    assert not process_alive(child.pid)
    assert process_alive(os.getpid())


def _start_run_from_another_process(ref, run_id: str) -> None:
    """The run worker: reports its run started, then dies (as a killed `dagster dev` leaves it)."""
    instance = dg.DagsterInstance.from_ref(ref)
    run = instance.get_run_by_id(run_id)
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, message="started", pid=os.getpid()),
        run_id=run_id,
    )


def test_a_started_run_whose_worker_died_is_marked_failed_as_an_unexpected_termination():
    with dg.instance_for_test() as instance:
        instance.add_run(DagsterRun(job_name="bill_cdrs", run_id="dead", status=dg.DagsterRunStatus.NOT_STARTED))
        worker = multiprocessing.get_context("fork").Process(
            target=_start_run_from_another_process, args=(instance.get_ref(), "dead")
        )
        worker.start()
        worker.join(30)
        assert instance.get_run_by_id("dead").status == dg.DagsterRunStatus.STARTED
        # a run whose worker is this very process: alive, left alone
        instance.add_run(DagsterRun(job_name="rate_cdrs", run_id="alive", status=dg.DagsterRunStatus.NOT_STARTED))
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name="rate_cdrs", message="started", pid=os.getpid()),
            run_id="alive",
        )

        result = dead_runs_sensor(dg.build_sensor_context(instance=instance))
        assert "marked 1 runs failed" in result.skip_message and "dead" in result.skip_message
        assert instance.get_run_by_id("dead").status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id("alive").status == dg.DagsterRunStatus.STARTED
        failure = instance.all_logs("dead", of_type=DagsterEventType.RUN_FAILURE)[-1].dagster_event
        # what the instance's run_retries re-executes (retry_on_asset_or_op_failure: false)
        assert failure.job_failure_data.failure_reason == RunFailureReason.UNEXPECTED_TERMINATION
        assert "run worker" in failure.message and "gone" in failure.message
        again = dead_runs_sensor(dg.build_sensor_context(instance=instance))
        assert again.skip_message == "every started run has its worker"


def test_the_local_instance_limits_each_stage_to_one_run_and_retries_vanished_runs(tmp_path):
    import yaml

    from cdr_platform.utils.dagster_instance import STAGE_TAG, prepare

    path = prepare(tmp_path)
    config = yaml.safe_load(path.read_text())
    (limit,) = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert limit == {"key": STAGE_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:  # Dagster accepts it
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    own = tmp_path / "mine"
    own.mkdir()
    (own / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    assert prepare(own) is None and (own / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_the_compose_instance_queues_monitors_and_retries_as_the_local_one():
    import yaml

    from cdr_platform.lib.settings import REPO_ROOT
    from cdr_platform.utils.dagster_instance import LOCAL_INSTANCE

    local = yaml.safe_load(LOCAL_INSTANCE)
    compose = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())
    for section in ("run_coordinator", "run_monitoring", "run_retries", "retention"):
        assert compose[section] == local[section], section
