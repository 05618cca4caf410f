"""Keep the pipeline unwedged: runs whose process died are marked failed, and re-executed.

`dagster dev` (or the daemon) stopped during a run, or a run worker killed, leaves the run STARTED
for good: nothing will finish it, and what waits on it (billing waits for its month's run, the
marts for billing) waits forever. Dagster's run monitoring cannot see this with the default run
launcher (it checks only runs that never started), so this sensor looks at each STARTED run's
worker process - the pid its RUN_START event was written from - and marks the run failed, as an
unexpected termination, when that process is gone. The instance's `run_retries` (with
`retry_on_asset_or_op_failure: false`, utils/dagster_instance.py) then re-executes it: its work is
requested again. A run that failed on its own is not retried by this path.

It only applies where run workers are processes of this machine (the default run launcher, as
`dagster dev` and the compose daemon use); CDR_RUN_WATCHDOG=false turns it off.
"""

import time

import dagster as dg
from dagster._core.events import JobFailureData, RunFailureReason

from cdr_platform.lib.settings import setting
from cdr_platform.utils.processes import process_alive

WATCHED = [dg.DagsterRunStatus.STARTED]


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, time) of the process that started the run, from its RUN_START event."""
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_START)
    if not records:
        return None
    event = records[0].dagster_event
    return (event.pid, records[0].timestamp) if event is not None and event.pid else None


def dead_runs(instance: dg.DagsterInstance) -> list[tuple[dg.DagsterRun, int]]:
    out = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=WATCHED)):
        worker = run_worker(instance, run.run_id)
        if worker is None:
            continue
        pid, started = worker
        if not process_alive(pid, started_by=started):
            out.append((run, pid))
    return out


@dg.sensor(
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed (as an unexpected termination, so the instance re-executes them) the STARTED runs "
    "whose worker process is gone: dagster dev or the daemon stopped, or a crash.",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext):
    if not setting("CDR_RUN_WATCHDOG"):
        return dg.SkipReason("CDR_RUN_WATCHDOG is off")
    if type(context.instance.run_launcher).__name__ != "DefaultRunLauncher":
        return dg.SkipReason("run workers are not processes of this machine: Dagster's run monitoring applies")
    found = []
    for run, pid in dead_runs(context.instance):
        current = context.instance.get_run_by_id(run.run_id)
        if current is None or current.status != dg.DagsterRunStatus.STARTED:
            continue  # it ended (and its worker exited) between the look and now: not dead
        found.append((current, pid))
    for run, pid in found:
        message = (
            f"run worker (pid {pid}) is gone while the run was STARTED: dagster dev or the daemon stopped, or the "
            f"process was killed; marked failed at {time.strftime('%Y-%m-%d %H:%M:%S')} by dead_runs_sensor"
        )
        context.instance.report_run_failed(
            run,
            message=message,
            job_failure_data=JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
        )
        context.log.warning(f"{run.job_name} run {run.run_id}: {message}")
    if not found:
        return dg.SkipReason("every started run has its worker")
    return dg.SkipReason(
        f"marked {len(found)} runs failed whose worker was gone: {', '.join(r.run_id for r, _ in found)}"
    )
