"""Housekeeping of a pipeline that never stops: Dagster's run storage, the logs, Spark's scratch.

The schedule `housekeeping_daily` (on by default) runs the job `housekeeping` every night: runs
finished more than CDR_RUN_RETENTION_DAYS ago (7) are deleted from the run storage with their
event logs and captured output - but the newest successful run of each job and partition, whose
materializations are the assets' latest -, the stack's logs are rotated (utils/housekeeping.py), and Spark
folders left by killed drivers are removed. Each run reports what it freed.
"""

import shutil
import time
from pathlib import Path

import dagster as dg

from cdr_platform.defs.resources import FilesResource
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.utils.dagster_instance import STAGE_TAG
from cdr_platform.utils.housekeeping import sweep

FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def prune_runs(instance: dg.DagsterInstance, older_than_days: float, now: float | None = None) -> list[str]:
    """Delete the runs that finished more than `older_than_days` ago; returns their ids.

    The newest successful run of each job and partition is kept, whatever its age: deleting a run
    deletes its materializations, and an asset's latest one is what the sensors (a month billed,
    the marts' inputs) and the UI's partition status read."""
    cutoff = (now or time.time()) - older_than_days * 86_400
    records = instance.get_run_records(filters=dg.RunsFilter(statuses=FINISHED))  # newest first
    kept: set[tuple] = set()
    deleted = []
    for record in records:
        run = record.dagster_run
        group = (run.job_name, run.tags.get("dagster/partition"), tuple(sorted(map(str, run.asset_selection or ()))))
        if run.status == dg.DagsterRunStatus.SUCCESS and group not in kept:
            kept.add(group)  # the newest success of its kind
            continue
        finished = record.end_time or record.update_timestamp.timestamp()
        if finished < cutoff:
            instance.delete_run(run.run_id)
            deleted.append(run.run_id)
    storage = Path(instance.root_directory) / "storage"
    for run_id in deleted:  # their captured stdout and stderr
        shutil.rmtree(storage / run_id, ignore_errors=True)
    return deleted


@dg.op(description="Prune old runs, rotate the logs, remove Spark's stale scratch folders.")
def housekeeping_op(context: dg.OpExecutionContext, files: FilesResource) -> dg.Output:
    deleted = prune_runs(context.instance, files.run_retention_days)
    logs = Path(files.logs_dir)
    swept = sweep(sorted(logs.glob("*.log")) if files.logs_dir and logs.is_dir() else [], demo_logs=logs)
    summary = [
        {"what": "runs deleted (finished before the retention)", "count": len(deleted)},
        {"what": "logs rotated", "count": len(swept.rotated)},
        {"what": "old demo logs deleted", "count": len(swept.deleted_files)},
        {"what": "stale Spark folders removed", "count": len(swept.deleted_dirs)},
    ]
    context.log.info(f"housekeeping: {len(deleted)} runs pruned, {swept.freed_bytes / 2**20:.1f} MB of files freed")
    return dg.Output(
        None,
        metadata={
            "summary": dg.MetadataValue.md(markdown_table(summary)),
            "freed_mb": round(swept.freed_bytes / 2**20, 1),
            "runs_deleted": len(deleted),
        },
    )


@dg.job(description="Prune old runs, rotate the logs, remove Spark's stale scratch.", tags={STAGE_TAG: "housekeeping"})
def housekeeping():
    housekeeping_op()


housekeeping_daily = dg.ScheduleDefinition(
    name="housekeeping_daily",
    job=housekeeping,
    cron_schedule="17 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: runs past CDR_RUN_RETENTION_DAYS pruned, logs rotated, Spark's stale scratch removed.",
)
