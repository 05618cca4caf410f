"""Ingest: reference data (numbering plan, cells, subscribers) and the CDRs' topic, raw-cdrs.

What this module puts in the code location depends on the environment (CDR_ENV), which is why it
hands Dagster one `@dg.definitions` function (`ingest_definitions`) rather than module-level assets:

* local: the reference data is the operator's own files when CDR_REFERENCE_DIR names a folder
  (`reference_files` resource; numbering_plan.csv, cells.csv, subscribers.csv, each optional),
  else the generated data; `raw_cdrs` is the synthetic CDR producer, launched by the job
  `generate_cdrs` (and `cdr_pipeline`, defs/pipeline.py).
* prod: no synthetic traffic. The reference assets load the operator's files only: a file missing
  from CDR_REFERENCE_DIR fails its asset, naming it (never generated data in its place). `raw_cdrs`
  is an external asset (`RAW_CDRS_SOURCE`, an AssetSpec of the same key) fed by the network: not
  materializable, yet mediation still depends on it, so the lineage from raw-cdrs to the Power BI
  tables is the same in both environments.

The module-level assets below are the local ones (the tests materialize them directly); either way
each dataset is loaded as a version (lib/reference/loads.py).
"""

from datetime import UTC, datetime

import dagster as dg

from cdr_platform.defs.resources import (
    FilesResource,
    KafkaResource,
    ReferenceFilesResource,
    TariffResource,
    WarehouseResource,
)
from cdr_platform.lib import asset_keys
from cdr_platform.lib.ingest.generator import GeneratorConfig, default_start_time, parse_error_classes
from cdr_platform.lib.ingest.produce import produce_cdrs
from cdr_platform.lib.ingest.producers import PRODUCER_KINDS, make_producer
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.reference import tables as ref
from cdr_platform.lib.reference.loads import LoadResult, ReferenceLoadError, load, load_generated
from cdr_platform.lib.reference.operator_files import FORMATS, MAX_LISTED_ERRORS, ReferenceFileError
from cdr_platform.lib.reference.subscribers import (
    DEFAULT_SUBSCRIBER_COUNT,
    DEFAULT_SUBSCRIBER_SEED,
    Subscriber,
    write_subscribers_csv,
)
from cdr_platform.lib.warehouse.dialects import DIALECTS
from cdr_platform.utils.environment_helpers import Environment, get_environment

GROUP = "ingest"
RAW_CDRS_KEY = dg.AssetKey(asset_keys.RAW_CDRS)
# raw-cdrs also takes the records of the network elements' files (defs/collection/assets.py)
COLLECTION_FILES_KEY = dg.AssetKey(asset_keys.COLLECTION_FILES)

# raw-cdrs in production: the network's switches and gateways write it, Dagster never does
RAW_CDRS_SOURCE = dg.AssetSpec(
    RAW_CDRS_KEY,
    deps=[COLLECTION_FILES_KEY],
    group_name=GROUP,
    kinds={"kafka"},
    description="Kafka topic raw-cdrs (CDR_RAW_TOPIC): the voice, SMS and data CDRs of the network, written by "
    "its switches and gateways. An external asset: Dagster never writes it; mediation consumes it.",
)


# reference.subscriber_periods: the subscribers' dated history, which billing prices each day under.
# The subscribers asset's load writes it with reference.subscribers, in one transaction; declared
# here as an asset of its own (not materialized by itself) so that a dbt source can join the
# lineage with a key of its own (dagster-dbt gives each source a distinct key).
SUBSCRIBER_PERIODS_SPEC = dg.AssetSpec(
    dg.AssetKey(asset_keys.SUBSCRIBER_PERIODS),
    deps=[dg.AssetKey(asset_keys.SUBSCRIBERS)],
    group_name=GROUP,
    kinds={"postgres"},
    description="Table reference.subscriber_periods: a row per subscriber period (activation, plan change, "
    "termination) from the operator's subscribers.csv, valid_from to valid_to (inclusive; empty: open-ended). "
    "Written by the subscribers asset's load, with reference.subscribers.",
)


def refusal_message(exc: ReferenceFileError) -> str:
    """A refused file as the asset's error: what happened, then its errors as a markdown table."""
    rows = [{"line": e.line, "reason": e.reason.replace("|", "\\|")} for e in exc.errors[:MAX_LISTED_ERRORS]]
    more = len(exc.errors) - MAX_LISTED_ERRORS
    return (
        f"{exc.file} refused: {len(exc.errors)} error(s), nothing loaded (the current version stays)\n\n"
        + markdown_table(rows)
        + (f"\n\n... and {more} more" if more > 0 else "")
    )


class SubscribersConfig(dg.Config):
    """The generated subscribers (locally, when the operator gives no subscribers.csv)."""

    count: int = DEFAULT_SUBSCRIBER_COUNT
    seed: int = DEFAULT_SUBSCRIBER_SEED


def operator_file_missing(directory: str, file_name: str) -> str:
    """Why production cannot load a dataset whose operator file is not there: naming the variable."""
    where = f"no {file_name} in CDR_REFERENCE_DIR ({directory})" if directory else "CDR_REFERENCE_DIR is not set"
    return (
        f"{where}: production loads the operator's {file_name}, never generated data; "
        f"put the file there and materialize this asset again"
    )


def _load_reference(
    context: dg.AssetExecutionContext,
    dataset: str,
    warehouse: WarehouseResource,
    reference_files: ReferenceFilesResource,
    *,
    generated: SubscribersConfig | None,
    day=None,
) -> tuple[LoadResult, str]:
    """Load the operator's file of `dataset`, else its generated data, made with `generated` (local);
    the result, and where from. Without `generated` (production) a missing file fails the asset."""
    file_name = FORMATS[dataset].file_name
    path, origin = reference_files.file(file_name)
    if path is None and generated is None:
        raise dg.Failure(description=operator_file_missing(reference_files.directory, file_name))
    common = {"source": f"dagster run {context.run.run_id}", "dialect": DIALECTS[warehouse.kind]}
    with warehouse.connect() as conn:
        try:
            if path is None:
                result = load_generated(
                    conn, dataset, day=day, subscriber_count=generated.count, seed=generated.seed, **common
                )
            else:
                result = load(conn, dataset, path.read_bytes(), str(path), day=day, **common)
        except ReferenceFileError as exc:
            raise dg.Failure(description=refusal_message(exc)) from None
        except ReferenceLoadError as exc:
            raise dg.Failure(description=str(exc)) from None
    context.log.info(result.summary())
    return result, origin


def _reference_metadata(result: LoadResult, origin: str, table) -> dict:
    return {
        "dagster/row_count": result.rows,
        "table": table.qualified,
        "dataset": result.dataset,
        "version": result.version,
        "sha256": result.sha256,
        "rows": result.rows,
        "unchanged": result.unchanged,
        "file_name": result.file_name,
        "source": origin,
    }


def reference_assets(*, generated: bool) -> list[dg.AssetsDefinition]:
    """numbering_plan, cell_catalogue and subscribers. `generated` (local): a dataset whose file the
    operator does not give loads the generated data (subscribers: their count and seed as run config);
    not `generated` (production): the operator's file is required, its absence fails the asset."""
    if generated:
        source = "the operator's {} (CDR_REFERENCE_DIR), else generated"
    else:
        source = "the operator's {} (CDR_REFERENCE_DIR), required: never generated data"

    @dg.asset(
        key=asset_keys.NUMBERING_PLAN,
        group_name=GROUP,
        kinds={"python", "postgres"},
        description="The national numbering plan (prefix -> country, operator, zone), as table "
        f"reference.numbering_plan: {source.format('numbering_plan.csv')}.",
    )
    def numbering_plan(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, reference_files: ReferenceFilesResource
    ) -> dg.MaterializeResult:
        stand_in = SubscribersConfig() if generated else None
        result, origin = _load_reference(context, "numbering-plan", warehouse, reference_files, generated=stand_in)
        return dg.MaterializeResult(metadata=_reference_metadata(result, origin, ref.NUMBERING_PLAN_TABLE))

    @dg.asset(
        key=asset_keys.CELL_CATALOGUE,
        group_name=GROUP,
        kinds={"python", "postgres"},
        description="The cell catalogue of the national operators (CGI -> operator, region), as table "
        f"reference.cell_catalogue: {source.format('cells.csv')}.",
    )
    def cell_catalogue(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource, reference_files: ReferenceFilesResource
    ) -> dg.MaterializeResult:
        stand_in = SubscribersConfig() if generated else None
        result, origin = _load_reference(context, "cells", warehouse, reference_files, generated=stand_in)
        return dg.MaterializeResult(metadata=_reference_metadata(result, origin, ref.CELL_CATALOGUE_TABLE))

    subscribers_asset = dg.asset(
        key=asset_keys.SUBSCRIBERS,
        group_name=GROUP,
        kinds={"python", "csv", "postgres"},
        deps=[numbering_plan, cell_catalogue],
        description="Subscribers: unique E.164 MSISDNs with operator (from the numbering plan), segment, plan and "
        f"home cell: {source.format('subscribers.csv')}; dated periods in reference.subscriber_periods, table "
        "reference.subscribers holds the period in force on the day of the load, and a CSV of it under data/.",
    )
    if generated:

        @subscribers_asset
        def subscribers(
            context: dg.AssetExecutionContext,
            config: SubscribersConfig,
            warehouse: WarehouseResource,
            files: FilesResource,
            reference_files: ReferenceFilesResource,
            tariff: TariffResource,
        ) -> dg.MaterializeResult:
            return _load_subscribers(context, warehouse, files, reference_files, tariff, generated=config)

    else:

        @subscribers_asset
        def subscribers(
            context: dg.AssetExecutionContext,
            warehouse: WarehouseResource,
            files: FilesResource,
            reference_files: ReferenceFilesResource,
            tariff: TariffResource,
        ) -> dg.MaterializeResult:
            return _load_subscribers(context, warehouse, files, reference_files, tariff, generated=None)

    return [numbering_plan, cell_catalogue, subscribers]


def _load_subscribers(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    files: FilesResource,
    reference_files: ReferenceFilesResource,
    tariff: TariffResource,
    generated: SubscribersConfig | None,
) -> dg.MaterializeResult:
    day = tariff.clock().local_date(datetime.now(UTC))  # the operator's today
    result, origin = _load_reference(context, "subscribers", warehouse, reference_files, generated=generated, day=day)
    with warehouse.connect() as conn:
        subs = [
            Subscriber(*row)
            for row in conn.execute(
                f"select {', '.join(ref.SUBSCRIBERS_TABLE.column_names)} from {ref.SUBSCRIBERS_TABLE.qualified}"
                " order by msisdn"
            ).fetchall()
        ]
    path = write_subscribers_csv(subs, files.path("reference", "subscribers.csv"))
    by_operator: dict[str, int] = {}
    for s in subs:
        by_operator[s.operator_name] = by_operator.get(s.operator_name, 0) + 1
    return dg.MaterializeResult(
        metadata={
            **_reference_metadata(result, origin, ref.SUBSCRIBERS_TABLE),
            "dagster/row_count": len(subs),  # subscribers; `rows`: the periods of the version
            "in_force_on": day.isoformat(),
            "repicked": result.repicked,
            "csv_path": dg.MetadataValue.path(str(path)),
            "by_operator": dg.MetadataValue.md(
                markdown_table([{"operator": k, "subscribers": v} for k, v in sorted(by_operator.items())])
            ),
        }
    )


# the local reference assets (the generated data stands in for a file the operator does not give)
numbering_plan, cell_catalogue, subscribers = reference_assets(generated=True)


class GenerateCdrsConfig(dg.Config):
    """Run config of "generate CDRs"."""

    count: int = 100_000
    error_rate: float = 0.05
    seed: int = 42
    start_time: str | None = None  # ISO-8601; default: midnight UTC yesterday
    span_hours: float = 24.0
    rate_limit: float = 0.0  # records per second; 0 = as fast as possible
    error_classes: list[str] | None = None  # default: the whole catalogue
    producer: str = "kafka-python"  # or "confluent" (the fast librdkafka producer)

    def generator_config(self) -> GeneratorConfig:
        if self.producer not in PRODUCER_KINDS:
            raise ValueError(f"producer must be one of {PRODUCER_KINDS}, got {self.producer!r}")
        if self.rate_limit < 0:
            raise ValueError(f"rate_limit must be >= 0, got {self.rate_limit}")
        start = default_start_time()
        if self.start_time:
            start = datetime.fromisoformat(self.start_time.replace("Z", "+00:00"))
            if start.tzinfo is None:
                start = start.replace(tzinfo=UTC)
        return GeneratorConfig(
            count=self.count,
            seed=self.seed,
            error_rate=self.error_rate,
            start_time=start,
            span_hours=self.span_hours,
            error_classes=parse_error_classes(self.error_classes),
        )


@dg.asset(
    key=RAW_CDRS_KEY,
    group_name=GROUP,
    kinds={"kafka", "python"},
    deps=[subscribers, COLLECTION_FILES_KEY],
    description="Kafka topic raw-cdrs: synthetic voice, SMS and data CDRs keyed by served "
    "MSISDN, a configurable share of them spoiled on purpose (labelled in the "
    "`injected-error` header). Each materialization appends one generation run.",
)
def raw_cdrs(
    context: dg.AssetExecutionContext, config: GenerateCdrsConfig, kafka: KafkaResource
) -> dg.MaterializeResult:
    generator_config = config.generator_config()  # bad settings fail here, before producing
    producer = make_producer(config.producer, kafka.settings)
    try:
        report = produce_cdrs(
            generator_config,
            producer,
            kafka.settings,
            kafka.raw_cdrs_topic,
            rate_limit=config.rate_limit or None,
            progress=context.log.info,
        )
    finally:
        producer.close()
    by_type = [{"record_type": k, "records": v} for k, v in sorted(report.by_record_type.items())]
    by_error = [{"injected_error": k, "records": v} for k, v in sorted(report.by_injected_error.items())]
    return dg.MaterializeResult(
        metadata={
            "topic": kafka.raw_cdrs_topic,
            "records": report.records,
            "valid_records": report.valid_records,
            "injected_errors": sum(report.by_injected_error.values()),
            "records_per_second": round(report.records_per_second, 1),
            "seconds": round(report.seconds, 2),
            "producer": config.producer,
            "seed": config.seed,
            "error_rate": config.error_rate,
            "start_time": generator_config.start_time.isoformat(),
            "by_record_type": dg.MetadataValue.md(markdown_table(by_type)),
            "by_injected_error": dg.MetadataValue.md(markdown_table(by_error)),
            "traffic_by_hour": dg.MetadataValue.md(report.hourly_chart()),
            "offsets_by_partition": dg.MetadataValue.md(markdown_table(report.offsets_table())),
            "start_offsets": dg.MetadataValue.json({str(p): o for p, o in report.offsets_before.items()}),
            "end_offsets": dg.MetadataValue.json({str(p): o for p, o in report.offsets_after.items()}),
        }
    )


generate_cdrs_job = dg.define_asset_job(
    "generate_cdrs",
    selection=dg.AssetSelection.assets(raw_cdrs).upstream(),
    description="Refresh the reference data and produce one run of synthetic CDRs into raw-cdrs.",
)


@dg.definitions
def ingest_definitions() -> dg.Definitions:
    """The ingest assets of the environment (module docstring): the generator locally, the network's
    raw-cdrs and the operator's files in production."""
    if get_environment() is Environment.PROD:
        return dg.Definitions(assets=[*reference_assets(generated=False), SUBSCRIBER_PERIODS_SPEC, RAW_CDRS_SOURCE])
    return dg.Definitions(
        assets=[numbering_plan, cell_catalogue, subscribers, SUBSCRIBER_PERIODS_SPEC, raw_cdrs],
        jobs=[generate_cdrs_job],
    )
