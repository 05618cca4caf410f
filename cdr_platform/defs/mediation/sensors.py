"""Launch a bounded mediation run when raw-cdrs holds messages the ledger has not consumed.

A run is tagged with the offsets it starts from (where the ledger stopped): the batch that fails
is the one starting there, whatever arrived behind it. A run that fails is retried from the same
offsets after a back-off that doubles each time, up to the mediation resource's `max_attempts`
runs; then the sensor gives up and says why in its skip reason, until someone launches
mediate_cdrs by hand (a run that commits a batch moves the start, and the count begins again).
Under live traffic the end offsets move every tick; the start does not, so the back-off holds.

A topic whose offsets disagree with the ledger (recreated, truncated, or expired unread) is not
mediated: the sensor says why, and the check `mediation_source_offsets_consistent` fails.
"""

import time
from dataclasses import dataclass

import dagster as dg

from cdr_platform.defs.mediation.assets import mediation_job
from cdr_platform.defs.resources import KafkaResource, MediationResource, WarehouseResource
from cdr_platform.lib.kafka_io import BrokerUnavailableError, beginning_offsets, end_offsets, offset_problems
from cdr_platform.lib.mediation.store import consumed_offsets
from cdr_platform.lib.settings import setting
from cdr_platform.lib.warehouse import driver_errors, is_undefined_table

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
END_OFFSETS_TAG = "cdr/raw_cdrs_end_offsets"  # which data a run was launched for
START_OFFSETS_TAG = "cdr/raw_cdrs_start_offsets"  # where it starts: what its retries are counted by


def pending_offsets(end: dict[int, int], consumed: dict[int, int]) -> dict[int, int]:
    """Messages per partition that are in Kafka but not in the ledger."""
    return {p: end[p] - consumed.get(p, 0) for p in sorted(end) if end[p] > consumed.get(p, 0)}


def mediation_run_key(end: dict[int, int]) -> str:
    return "raw-cdrs@" + ",".join(f"{p}:{o}" for p, o in sorted(end.items()))


def start_offsets_key(end: dict[int, int], consumed: dict[int, int]) -> str:
    """Where a run starts: the ledger's next offset of every partition of the topic."""
    return "raw-cdrs@from:" + ",".join(f"{p}:{consumed.get(p, 0)}" for p in sorted(end))


@dataclass(frozen=True)
class Retry:
    """What to do about data whose earlier runs failed: launch attempt `attempt`, wait, or give up."""

    attempt: int  # the attempt to launch now (1: the first run), or 0
    wait_s: float = 0.0  # > 0: too soon after the last failure
    give_up: bool = False


def retry_decision(
    failures: int, last_failure_end: float | None, now: float, max_attempts: int, backoff_s: float
) -> Retry:
    """After `failures` failed runs of the same data, the last ending at `last_failure_end`."""
    if failures >= max_attempts:
        return Retry(0, give_up=True)
    if failures and last_failure_end is not None:
        ready_at = last_failure_end + backoff_s * 2 ** (failures - 1)
        if now < ready_at:
            return Retry(0, wait_s=ready_at - now)
    return Retry(failures + 1)


def _failure_message(instance: dg.DagsterInstance, run_id: str) -> str:
    """The first line of why a run failed: its step's error (the job's own one-line cause)."""
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        error = record.dagster_event.step_failure_data.error if record.dagster_event else None
        if error is not None:
            return error.message.strip().splitlines()[-1][:500]
    return "no step failure recorded"


@dg.sensor(
    job=mediation_job,
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Compares raw-cdrs end offsets with what the mediation ledger consumed and launches a "
    "bounded mediation run when there is new data; retries a failed run with a back-off, a bounded "
    "number of times.",
)
def raw_cdrs_sensor(
    context: dg.SensorEvaluationContext,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    mediation_settings: MediationResource,
):
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=mediation_job.name, statuses=IN_PROGRESS), limit=1
    )
    if running:
        return dg.SkipReason(f"mediation run {running[0].run_id} is still in progress")
    try:
        end = end_offsets(kafka.settings, kafka.raw_cdrs_topic)
    except (BrokerUnavailableError, RuntimeError) as exc:
        return dg.SkipReason(f"cannot read {kafka.raw_cdrs_topic} offsets: {exc}")
    try:
        with warehouse.connect() as conn:
            consumed = consumed_offsets(conn, warehouse.mediation_tables(), kafka.raw_cdrs_topic)
    except (*driver_errors(), RuntimeError) as exc:
        if not is_undefined_table(exc):
            return dg.SkipReason(f"cannot read the mediation ledger: {exc}")
        consumed = {}  # no ledger yet: everything is new
    try:
        problems = offset_problems(beginning_offsets(kafka.settings, kafka.raw_cdrs_topic), end, consumed)
    except (BrokerUnavailableError, RuntimeError) as exc:
        return dg.SkipReason(f"cannot read {kafka.raw_cdrs_topic} offsets: {exc}")
    if problems:
        return dg.SkipReason(
            f"not mediating {kafka.raw_cdrs_topic}: its offsets disagree with the mediation ledger: "
            + "; ".join(problems)
            + ". See the check mediation_source_offsets_consistent; README, Operations."
        )
    pending = pending_offsets(end, consumed)
    if not pending:
        return dg.SkipReason(f"{kafka.raw_cdrs_topic} has nothing new (end offsets {end} all consumed)")

    key = start_offsets_key(end, consumed)
    earlier = context.instance.get_runs(
        filters=dg.RunsFilter(
            job_name=mediation_job.name,
            tags={START_OFFSETS_TAG: key},
            statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED],
        )
    )  # newest first
    last = context.instance.get_run_record_by_id(earlier[0].run_id) if earlier else None
    decision = retry_decision(
        len(earlier),
        last.end_time if last else None,
        time.time(),
        mediation_settings.max_attempts,
        mediation_settings.retry_backoff_s,
    )
    if decision.give_up:
        return dg.SkipReason(
            f"gave up on {key}: {len(earlier)} mediation runs failed for it, the last "
            f"({earlier[0].run_id}) with: {_failure_message(context.instance, earlier[0].run_id)}. "
            "Fix the cause, then launch mediate_cdrs by hand: once a batch commits, the sensor takes over again."
        )
    if decision.wait_s:
        return dg.SkipReason(
            f"mediation run {earlier[0].run_id} failed for {key}; retrying in {decision.wait_s:.0f} s "
            f"(attempt {len(earlier) + 1} of {mediation_settings.max_attempts})"
        )
    end_key = mediation_run_key(end)
    return dg.RunRequest(
        # one run per start and end (Dagster never launches a run key twice), attempts apart
        run_key=f"{key} to {end_key}#attempt-{decision.attempt}",
        tags={
            START_OFFSETS_TAG: key,
            END_OFFSETS_TAG: end_key,
            "raw_cdrs_pending": str(sum(pending.values())),
            "cdr/attempt": str(decision.attempt),
        },
    )
