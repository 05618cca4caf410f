"""Ingest: reference data (numbering plan, cells, subscribers) and CDR generation into raw-cdrs."""

from datetime import UTC, datetime

import dagster as dg

from cdr_platform.defs.resources import FilesResource, KafkaResource, WarehouseResource
from cdr_platform.lib.ingest.generator import GeneratorConfig, default_start_time, parse_error_classes
from cdr_platform.lib.ingest.produce import produce_cdrs
from cdr_platform.lib.ingest.producers import PRODUCER_KINDS, make_producer
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.reference import tables as ref
from cdr_platform.lib.reference.subscribers import (
    DEFAULT_SUBSCRIBER_COUNT,
    DEFAULT_SUBSCRIBER_SEED,
    generate_subscribers,
    write_subscribers_csv,
)
from cdr_platform.lib.warehouse import replace_table

GROUP = "ingest"
RAW_CDRS_KEY = dg.AssetKey("raw_cdrs")


def _replace_reference_table(warehouse: WarehouseResource, table, rows) -> dg.MaterializeResult:
    with warehouse.connect() as conn:
        count = replace_table(conn, table, rows)
    return dg.MaterializeResult(metadata={"dagster/row_count": count, "table": table.qualified})


@dg.asset(
    group_name=GROUP,
    kinds={"python", "postgres"},
    description="The national numbering plan (prefix -> country, operator, zone), as table reference.numbering_plan.",
)
def numbering_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    return _replace_reference_table(warehouse, ref.NUMBERING_PLAN_TABLE, ref.numbering_plan_rows())


@dg.asset(
    group_name=GROUP,
    kinds={"python", "postgres"},
    description="The cell catalogue of the national operators (CGI -> operator, region), "
    "as table reference.cell_catalogue.",
)
def cell_catalogue(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    return _replace_reference_table(warehouse, ref.CELL_CATALOGUE_TABLE, ref.cell_catalogue_rows())


class SubscribersConfig(dg.Config):
    count: int = DEFAULT_SUBSCRIBER_COUNT
    seed: int = DEFAULT_SUBSCRIBER_SEED


@dg.asset(
    group_name=GROUP,
    kinds={"python", "csv", "postgres"},
    deps=[numbering_plan, cell_catalogue],
    description="Subscribers: unique E.164 MSISDNs with operator (from the numbering plan), "
    "segment, plan and home cell; a CSV under data/ and table reference.subscribers.",
)
def subscribers(
    context: dg.AssetExecutionContext, config: SubscribersConfig, warehouse: WarehouseResource, files: FilesResource
) -> dg.MaterializeResult:
    subs = generate_subscribers(config.count, config.seed)
    path = write_subscribers_csv(subs, files.path("reference", "subscribers.csv"))
    with warehouse.connect() as conn:
        rows = replace_table(conn, ref.SUBSCRIBERS_TABLE, ref.subscriber_rows(subs))
    by_operator: dict[str, int] = {}
    for s in subs:
        by_operator[s.operator_name] = by_operator.get(s.operator_name, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "csv_path": dg.MetadataValue.path(str(path)),
            "table": ref.SUBSCRIBERS_TABLE.qualified,
            "by_operator": dg.MetadataValue.md(
                markdown_table([{"operator": k, "subscribers": v} for k, v in sorted(by_operator.items())])
            ),
        }
    )


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
    deps=[subscribers],
    description="Kafka topic raw-cdrs: synthetic voice, SMS and data CDRs keyed by served "
    "MSISDN, a configurable share of them spoiled on purpose (labelled in the "
    "`injected-error` header). Each materialization appends one generation run.",
)
def raw_cdrs(
    context: dg.AssetExecutionContext, config: GenerateCdrsConfig, kafka: KafkaResource
) -> dg.MaterializeResult:
    generator_config = config.generator_config()  # bad settings fail here, before producing
    producer = make_producer(config.producer, kafka.bootstrap_servers)
    try:
        report = produce_cdrs(
            generator_config,
            producer,
            kafka.bootstrap_servers,
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
