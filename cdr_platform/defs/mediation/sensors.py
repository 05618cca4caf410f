"""Launch a bounded mediation run when raw-cdrs holds messages the ledger has not consumed."""

import dagster as dg
import psycopg

from cdr_platform.defs.mediation.assets import mediation_job
from cdr_platform.defs.resources import KafkaResource, WarehouseResource
from cdr_platform.lib.kafka_io import BrokerUnavailableError, end_offsets
from cdr_platform.lib.mediation.store import consumed_offsets

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def pending_offsets(end: dict[int, int], consumed: dict[int, int]) -> dict[int, int]:
    """Messages per partition that are in Kafka but not in the ledger."""
    return {p: end[p] - consumed.get(p, 0) for p in sorted(end) if end[p] > consumed.get(p, 0)}


def mediation_run_key(end: dict[int, int]) -> str:
    return "raw-cdrs@" + ",".join(f"{p}:{o}" for p, o in sorted(end.items()))


@dg.sensor(
    job=mediation_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Compares raw-cdrs end offsets with what the mediation ledger consumed and "
    "launches a bounded mediation run when there is new data.",
)
def raw_cdrs_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource, warehouse: WarehouseResource):
    running = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=mediation_job.name, statuses=IN_PROGRESS), limit=1
    )
    if running:
        return dg.SkipReason(f"mediation run {running[0].run_id} is still in progress")
    try:
        end = end_offsets(kafka.bootstrap_servers, kafka.raw_cdrs_topic)
    except (BrokerUnavailableError, RuntimeError) as exc:
        return dg.SkipReason(f"cannot read {kafka.raw_cdrs_topic} offsets: {exc}")
    try:
        with warehouse.connect() as conn:
            consumed = consumed_offsets(conn, warehouse.mediation_tables(), kafka.raw_cdrs_topic)
    except psycopg.errors.UndefinedTable:
        consumed = {}  # no ledger yet: everything is new
    except (psycopg.Error, RuntimeError) as exc:
        return dg.SkipReason(f"cannot read the mediation ledger: {exc}")
    pending = pending_offsets(end, consumed)
    if not pending:
        return dg.SkipReason(f"{kafka.raw_cdrs_topic} has nothing new (end offsets {end} all consumed)")
    return dg.RunRequest(
        run_key=mediation_run_key(end),
        tags={"raw_cdrs_pending": str(sum(pending.values()))},
    )
