"""Rate exactly the days each mediation run changed.

Mediation (`clean_cdrs`) is one unpartitioned asset; rating is daily. A materialization of
clean_cdrs carries `clean_by_day`, the local days whose clean CDRs that run stored, so this
sensor requests a rating run for each of those days and for no other. Its cursor is the storage
id of the last materialization it has handled: every mediation run is seen once, in order, even
when several finish between two ticks (an asset sensor would see only the latest).

A mediation run's days are rated once that run has finished (its blocking checks evaluated) and
only while the latest evaluation of mediation's blocking balance check passes: when it fails,
the sensor skips naming the check and keeps its cursor, so those days are rated once it passes
again (defs/blocking_checks.py).

Requests are coalesced under live traffic: a day that already has a rating run waiting to start
gets no other (that run reads every clean CDR the day has when it starts); a day being rated gets
one more run at most, queued behind it. So each day has at most one run waiting, whatever the
rate of mediation runs, and rating cannot fill the run queue.
"""

import dagster as dg

from cdr_platform.defs.blocking_checks import sensor_stop_reason
from cdr_platform.defs.mediation.assets import CLEAN_CDRS_KEY
from cdr_platform.defs.rating.assets import RATING_CDRS_KEY, RATING_DAYS, RATING_SUSPENSE_KEY, rate_cdrs_job
from cdr_platform.lib.settings import setting

BATCH = 50  # materializations read per tick; the rest wait for the next one
# a run in these states has not read the day's clean CDRs yet: a new request for the day adds nothing
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]


def days_waiting(instance: dg.DagsterInstance) -> set[str]:
    """The days that have a rating run waiting to start."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=rate_cdrs_job.name, statuses=WAITING))
    return {run.tags.get("dagster/partition") for run in runs} - {None}


def finished_runs(instance: dg.DagsterInstance, run_ids: set[str]) -> set[str]:
    """Those of `run_ids` that have finished (a run deleted since counts as finished)."""
    if not run_ids:
        return set()
    runs = instance.get_runs(filters=dg.RunsFilter(run_ids=sorted(run_ids)))
    return (run_ids - {run.run_id for run in runs}) | {run.run_id for run in runs if run.is_finished}


def days_to_rate(metadata) -> list[str]:
    """The days a clean_cdrs materialization says it changed, as rating partition keys."""
    value = metadata.get("clean_by_day")
    days = value.value if value is not None else {}
    return sorted(day for day, clean in (days or {}).items() if clean)


@dg.sensor(
    job=rate_cdrs_job,
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After each mediation run, rates exactly the local days whose clean CDRs it stored "
    "(the clean_by_day metadata of clean_cdrs): one rate_cdrs run per day.",
)
def clean_cdrs_days_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=CLEAN_CDRS_KEY, after_storage_id=after), limit=BATCH, ascending=True
    )
    if not found.records:
        return dg.SkipReason("no mediation run since the last tick")
    # a mediation run's days wait for its blocking checks: until its run has finished
    finished = finished_runs(context.instance, {record.run_id for record in found.records if record.run_id})
    ready = []
    for record in found.records:
        if record.run_id and record.run_id not in finished:
            break
        ready.append(record)
    if not ready:
        return dg.SkipReason(f"waiting for mediation run {found.records[0].run_id} to finish (its checks)")
    stopped = sensor_stop_reason(context, [RATING_CDRS_KEY, RATING_SUSPENSE_KEY])
    if stopped:  # the cursor stays: these mediation runs' days are rated once the check passes again
        return dg.SkipReason(f"{stopped} - the days of {len(ready)} mediation run(s) wait to be rated")
    requests, outside, coalesced = [], [], set()
    waiting = days_waiting(context.instance)
    for record in ready:
        materialization = record.asset_materialization
        for day in days_to_rate(materialization.metadata if materialization else {}):
            if not RATING_DAYS.has_partition_key(day):
                outside.append(day)  # before the first rating day, or not yet a partition
                continue
            if day in waiting:
                coalesced.add(day)  # the run waiting for the day will read these CDRs too
                continue
            waiting.add(day)
            requests.append(
                dg.RunRequest(
                    partition_key=day,
                    run_key=f"clean_cdrs@{record.storage_id}:{day}",  # once per mediation run and day
                    tags={"cdr/mediation_run_id": record.run_id},
                )
            )
    cursor = str(ready[-1].storage_id)
    if coalesced:
        context.log.info(f"coalesced into the rating runs waiting for: {', '.join(sorted(coalesced))}")
    if not requests:
        if coalesced:
            return dg.SensorResult(
                skip_reason=f"rating runs are already waiting for {', '.join(sorted(coalesced))}", cursor=cursor
            )
        reason = f"days outside the rating partitions: {', '.join(sorted(set(outside)))}" if outside else ""
        return dg.SensorResult(
            skip_reason=f"the mediation runs since the last tick stored no clean CDR to rate {reason}".strip(),
            cursor=cursor,
        )
    if outside:
        context.log.warning(f"not rated, outside the rating partitions: {', '.join(sorted(set(outside)))}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
