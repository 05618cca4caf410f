"""Collection in Dagster: the landing folders watched by a sensor, collected by one asset.

Files dropped into `CDR_LANDING_DIR/<source>/` (written under a temporary name and renamed, or
left unchanged for CDR_COLLECTION_SETTLE_S) make `landing_folder_sensor` request the job
`collect_landing_files`; its asset, `collection/collection_files` (the collection ledger), collects
every settled file (lib/collection/collector.py) and publishes the records to raw-cdrs - partial
records through `cdr stitch` (lib/collection/stitching.py), one CDR per chain - which the
mediation sensor then takes: a file dropped under `make dev` reaches the marts with no manual run.
The asset check `collection_sequence_gaps` reports a source's missing file sequence numbers.
"""

import hashlib
import json
import subprocess
import sys
import time

import dagster as dg

from cdr_platform.defs.resources import KafkaResource, LandingResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.collection import ledger, stitching
from cdr_platform.lib.collection.collector import SOURCE_NAME_PATTERN, collect_landing, settled_files
from cdr_platform.lib.ingest.producers import make_producer
from cdr_platform.lib.kafka_io import end_offsets, ensure_cdr_topics
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.settings import process_environment, setting
from cdr_platform.utils.dagster_instance import STAGE_TAG

GROUP = "collection"
COLLECTION_FILES_KEY = dg.AssetKey(asset_keys.COLLECTION_FILES)
MAX_LISTED_FILES = 50


@dg.asset(
    key=COLLECTION_FILES_KEY,
    group_name=GROUP,
    kinds={"python", "kafka"},
    description="The collection ledger (mediation.collection_files): every CDR file of the network elements' "
    "landing folders (CDR_LANDING_DIR/<source>/), checked as a file (SHA-256, file sequence number), decoded "
    "(3gpp-ber, asterisk-csv, kamailio-acc, cdr-json) and published to raw-cdrs record by record; archived, "
    "or quarantined with its reason.",
)
def collection_files(
    context: dg.AssetExecutionContext, kafka: KafkaResource, warehouse: WarehouseResource, landing: LandingResource
) -> dg.MaterializeResult:
    """Collect the settled landing files, then stitch the partial records they held (`cdr stitch`,
    a Spark driver in a subprocess) while any chain waits: their CDRs go to raw-cdrs too."""
    tables = ledger.CollectionTables(warehouse.mediation_schema, warehouse.dialect)
    ensure_cdr_topics(kafka.settings)  # the partials topic too (an existing topic is left as it is)
    producer = make_producer("kafka-python", kafka.settings)
    outcomes = []
    try:
        with warehouse.connect() as conn:
            ledger.create_tables(conn, tables)
            conn.commit()
            for outcome in collect_landing(
                landing.path,
                settle_s=landing.settle_s,
                conn=conn,
                tables=tables,
                publisher=producer,
                topic=kafka.raw_cdrs_topic,
                now=time.time(),
                partials_topic=kafka.partials_topic,
                duplicate_tolerance_s=landing.duplicate_tolerance_s,
            ):
                context.log.info(outcome.summary())
                outcomes.append(outcome)
            gaps = ledger.sequence_gaps(conn, tables)
            ledger_ddl = stitching.ledger_ddl(warehouse.mediation_schema, warehouse.dialect)
            for statement in ledger_ddl:
                conn.execute(statement)
            conn.commit()
            taken_in = stitching.balance(conn, warehouse.mediation_schema)["partials_in"]
    finally:
        producer.close()
    published_partials = sum(o.partials for o in outcomes)
    # partials the stitcher has not taken in yet: this run's, or an earlier stitch's that failed
    unstitched = sum(end_offsets(kafka.settings, kafka.partials_topic).values()) - taken_in
    stitched, not_taken_in = {}, 0
    if unstitched > 0:
        stitched = _stitch(context, kafka, warehouse, landing)
        with warehouse.connect() as conn:
            taken_in = stitching.balance(conn, warehouse.mediation_schema)["partials_in"]
        # what the stitcher read but did not take in: a part later than its watermark (clock skew
        # between brokers beyond stitching.LATENESS) - never silently
        not_taken_in = sum(end_offsets(kafka.settings, kafka.partials_topic).values()) - taken_in
        if not_taken_in:
            context.log.warning(f"{not_taken_in} partial records were not taken in by the stitcher (late)")
    rows = [
        {
            "source": o.source,
            "file": o.path.name,
            "sequence": o.sequence_number,
            "status": o.status,
            "read": o.records_read,
            "published": o.published,
            "undecodable": o.undecodable,
            "duplicate_content": o.duplicate_content,
            "not_charged": o.not_charged,
            "reason": o.reason or "",
        }
        for o in outcomes
    ]
    return dg.MaterializeResult(
        metadata={
            "files": len(outcomes),
            "collected": sum(o.status == ledger.COLLECTED for o in outcomes),
            "refused": sum(o.refused for o in outcomes),
            "records_published": sum(o.published for o in outcomes),
            "records_undecodable": sum(o.undecodable for o in outcomes),
            "records_not_charged": sum(o.not_charged for o in outcomes),
            "records_duplicate_content": sum(o.duplicate_content for o in outcomes),
            "sequence_gaps": len(gaps),
            "partials_published": published_partials,
            "partials_unstitched_before": unstitched,
            "partials_not_taken_in": not_taken_in,
            "stitched_cdrs": stitched.get("cdrs_out", 0),
            "stitched_incomplete": stitched.get("incomplete_out", 0),
            "files_collected": dg.MetadataValue.md(markdown_table(rows[:MAX_LISTED_FILES]) if rows else "(none)"),
        }
    )


def _stitch(context, kafka: KafkaResource, warehouse: WarehouseResource, landing: LandingResource) -> dict:
    """`cdr stitch` in a subprocess (a Spark driver: its JVM and memory end with it); its summary."""
    env = process_environment(
        **kafka.subprocess_env(),
        **warehouse.subprocess_env(),
        CDR_PARTIAL_TIMEOUT_S=str(landing.partial_timeout_s),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cdr_platform.cli", "stitch"], env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(stitching.SUMMARY_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise dg.Failure(
            description=f"cdr stitch failed (exit {proc.returncode})", metadata={"stderr": proc.stderr[-3000:]}
        )
    summary = json.loads(lines[-1][len(stitching.SUMMARY_PREFIX) :])
    context.log.info(
        f"stitched: {summary['partials_in']} partials in, {summary['cdrs_out']} CDRs out "
        f"({summary['incomplete_out']} incomplete)"
    )
    return summary


@dg.asset_check(
    asset=COLLECTION_FILES_KEY,
    description="No source has a gap in its file sequence numbers (wrap-around at the format's maximum): a missing "
    "file is CDRs never billed. Lists each gap.",
)
def collection_sequence_gaps(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    tables = ledger.CollectionTables(warehouse.mediation_schema, warehouse.dialect)
    with warehouse.connect() as conn:
        ledger.create_tables(conn, tables)
        gaps = ledger.sequence_gaps(conn, tables)
    rows = [{"source": g.source, "after": g.after, "before": g.before, "missing": g.missing} for g in gaps]
    return dg.AssetCheckResult(
        passed=not gaps,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "gaps": len(gaps),
            "missing_files": sum(g.missing for g in gaps),
            "detail": dg.MetadataValue.md(markdown_table(rows) if rows else "none"),
        },
    )


collect_landing_files_job = dg.define_asset_job(
    "collect_landing_files",
    selection=dg.AssetSelection.assets(COLLECTION_FILES_KEY),
    tags={STAGE_TAG: GROUP},
    description="Collect the settled files of the landing folders into raw-cdrs (the collection ledger).",
)


def landing_snapshot(landing: LandingResource, now: float) -> list[str]:
    """The settled files waiting in the landing folders, as 'source/name:size:mtime' (the run key)."""
    waiting = []
    if not landing.path.is_dir():
        return waiting
    for folder in sorted(p for p in landing.path.iterdir() if p.is_dir() and SOURCE_NAME_PATTERN.fullmatch(p.name)):
        for path in settled_files(folder, landing.settle_s, now):
            stat = path.stat()
            waiting.append(f"{folder.name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return waiting


@dg.sensor(
    job=collect_landing_files_job,
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a collection run when settled files wait in the landing folders (CDR_LANDING_DIR/<source>/).",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    waiting = landing_snapshot(landing, time.time())
    if not waiting:
        return dg.SkipReason(f"no settled file in {landing.path}")
    run_key = hashlib.sha256("\n".join(waiting).encode()).hexdigest()[:32]
    return dg.RunRequest(run_key=run_key, tags={"cdr/landing_files": str(len(waiting))})
