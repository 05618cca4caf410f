"""Settings of the platform, read from environment variables with working local defaults.

Every service address, name and size that more than one module needs lives here, so the
local stack, the Dagster resources, the Spark jobs and the tests agree on one value.
Nothing is read at import time: call `load_settings()` where the value is needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _env_number(name: str, default, kind=int):
    raw = _env(name, str(default))
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"environment variable {name} must be {what}, got {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "true" if default else "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"environment variable {name} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes")


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, int)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    raw_cdrs_topic: str
    error_cdrs_topic: str
    topic_partitions: int
    # max.message.bytes of raw-cdrs and error-cdrs when created, and the rejects' producer
    # max.request.size: Kafka's own default (1 MiB), stated, not assumed
    max_message_bytes: int = 1_048_576


WAREHOUSE_KINDS = ("postgres", "sqlserver")


@dataclass(frozen=True)
class WarehouseSettings:
    host: str
    port: int
    database: str
    user: str
    # Empty for the local cluster (trust on loopback); set CDR_WAREHOUSE_PASSWORD elsewhere.
    password: str
    kind: str = "postgres"  # postgres (local) or sqlserver (production)
    # SQL Server's TLS certificate is verified unless this says to trust it as it is: only for a
    # development server with a self-signed certificate (CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE)
    trust_server_certificate: bool = False

    def conninfo(self, database: str | None = None) -> str:
        parts = [
            f"host={self.host}",
            f"port={self.port}",
            f"dbname={database or self.database}",
            f"user={self.user}",
            "connect_timeout=5",
        ]
        if self.password:
            parts.append(f"password={self.password}")
        return " ".join(parts)

    @property
    def jdbc_url(self) -> str:
        if self.kind == "sqlserver":
            # bulk copy for Spark's batched inserts into the staging table
            return (
                f"jdbc:sqlserver://{self.host}:{self.port};databaseName={self.database};"
                f"encrypt=true;trustServerCertificate={str(self.trust_server_certificate).lower()};"
                "useBulkCopyForBatchInsert=true"
            )
        return f"jdbc:postgresql://{self.host}:{self.port}/{self.database}?reWriteBatchedInserts=true"

    @property
    def jdbc_driver(self) -> str:
        return "com.microsoft.sqlserver.jdbc.SQLServerDriver" if self.kind == "sqlserver" else "org.postgresql.Driver"

    def jdbc_options(self) -> dict[str, str]:
        """user/password/driver for Spark's JDBC reader and writer."""
        options = {"user": self.user, "driver": self.jdbc_driver}
        if self.password:
            options["password"] = self.password
        return options

    def odbc_connection_string(self) -> str:
        """For mssql-python, the driver-side connection to SQL Server."""
        return (
            f"Server={self.host},{self.port};Database={self.database};Uid={self.user};"
            f"Pwd={self.password};Encrypt=yes;TrustServerCertificate={'yes' if self.trust_server_certificate else 'no'}"
        )


@dataclass(frozen=True)
class StackSettings:
    """Where the project-started local services keep their files and which ports they use."""

    directory: Path
    kafka_port: int
    kafka_controller_port: int
    kafka_heap: str
    postgres_port: int

    @property
    def jars_dir(self) -> Path:
        return self.directory / "jars"

    @property
    def spark_jars_dir(self) -> Path:
        return self.jars_dir / "spark"

    @property
    def spark_cds_dir(self) -> Path:
        """The Spark driver's class-data archive (cdr_platform.lib.spark.startup_archive)."""
        return self.directory / "spark-cds"


@dataclass(frozen=True)
class Settings:
    environment: str  # "local" or "prod"
    kafka: KafkaSettings
    warehouse: WarehouseSettings
    stack: StackSettings
    spark_master: str
    data_dir: Path
    mediation_schema: str
    rating_schema: str
    tariff_schema: str  # where dbt seeds the tariff plan
    rating_rounding_decimals: int  # CGRateS' rounding of each increment's cost
    mediation_max_offsets_per_trigger: int  # bounds a micro-batch, and so the driver's memory
    max_rejection_rate: float  # above it, the rejection_rate check warns
    mediation_max_attempts: int  # runs the sensor launches for the same new data before it gives up
    mediation_retry_backoff_s: int  # wait after a failed run, doubled after each further failure
    max_duration_s: int = 86_400  # mediation rejects longer calls and sessions (VALUE_OUT_OF_RANGE)
    max_volume_bytes: int = 10**12  # ... and bigger data records
    late_arrival_days: int = 60  # ... and CDRs that started longer ago (STALE_TIMESTAMP)
    # a message longer than this is rejected as PAYLOAD_TOO_LARGE on its length, never parsed
    mediation_max_payload_bytes: int = 65_536
    # the Arrow batches a mediation task works on hold at most this many bytes (and at most 20,000
    # messages): a task's memory stays flat whatever the mix of message sizes
    mediation_max_batch_bytes: int = 32 * 1024 * 1024
    # a reject in error-cdrs echoes at most this many bytes of the payload (the whole payload is in
    # the reject store), with its length and SHA-256
    reject_echo_bytes: int = 4096
    # the operator's time zone: tariff time bands, weekdays, rating days and billing months
    tariff_timezone: str = "Africa/Casablanca"
    billing_schema: str = "billing"  # dbt's bills and plan catalogue
    marts_schema: str = "marts"  # dbt's marts, what the BI tool reads
    bi_role: str = "cdr_bi"  # the BI tool's read-only role: select on the marts, nothing else
    # the Power BI service (all empty: not configured; the client secret is read by Dagster, never here)
    powerbi_workspace_id: str = ""
    powerbi_dataset_id: str = ""
    powerbi_tenant_id: str = ""
    powerbi_client_id: str = ""
    # the operator's own reference files (numbering_plan.csv, cells.csv, subscribers.csv); None:
    # the generated reference data
    reference_dir: Path | None = None
    spark_conf: dict[str, str] = field(default_factory=dict)  # extra Spark configuration for every job


ENVIRONMENTS = ("local", "prod")
# Where a job run by Dagster writes its one-line cause of failure (set by the Spark resource)
FAILURE_FILE_ENV = "CDR_FAILURE_FILE"


def _env_float(name: str, default: float) -> float:
    return _env_number(name, default, float)


def _spark_conf() -> dict[str, str]:
    raw = _env("CDR_SPARK_CONF", "{}")
    try:
        conf = json.loads(raw)
    except json.JSONDecodeError:
        conf = None
    if not isinstance(conf, dict):
        raise ValueError(f"CDR_SPARK_CONF must be a JSON object of Spark settings, got {raw!r}")
    return {str(k): str(v) for k, v in conf.items()}


DEFAULT_TARIFF_TIMEZONE = "Africa/Casablanca"  # the demo operator's (Morocco)


def tariff_timezone() -> str:
    """CDR_TARIFF_TIMEZONE, an IANA zone name, checked against the zone database (tzdata).

    Read on its own as well as in load_settings(): the daily and monthly partitions of the Dagster
    code location are defined in this zone when it loads.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = _env("CDR_TARIFF_TIMEZONE", DEFAULT_TARIFF_TIMEZONE)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"CDR_TARIFF_TIMEZONE must be an IANA time zone such as Africa/Casablanca or UTC, got {name!r}"
        ) from None
    return name


def sensor_interval_s() -> int:
    """CDR_SENSOR_INTERVAL_S: how often the sensors look for new work (default 30 s). Read on its
    own, like the time zone: a sensor's interval is part of its definition when the code loads."""
    interval = _env_int("CDR_SENSOR_INTERVAL_S", 30)
    if interval < 1:
        raise ValueError(f"CDR_SENSOR_INTERVAL_S must be at least 1, got {interval}")
    return interval


def run_watchdog() -> bool:
    """CDR_RUN_WATCHDOG (default on): the sensor that marks failed the runs whose worker process died.
    Off where run workers are not processes of the machine the sensors run on."""
    return _env_bool("CDR_RUN_WATCHDOG", True)


def run_retention_days() -> float:
    """CDR_RUN_RETENTION_DAYS (default 7): finished Dagster runs older than this are pruned nightly."""
    days = _env_float("CDR_RUN_RETENTION_DAYS", 7.0)
    if days <= 0:
        raise ValueError(f"CDR_RUN_RETENTION_DAYS must be positive, got {days}")
    return days


def load_settings() -> Settings:
    stack_dir = Path(_env("CDR_STACK_DIR", str(REPO_ROOT / ".stack")))
    kafka_port = _env_int("CDR_KAFKA_PORT", 19092)
    postgres_port = _env_int("CDR_WAREHOUSE_PORT", 15432)
    # A multiple of the local Spark cores (2): mediation runs one task per Kafka partition, and
    # 3 partitions on 2 cores left a core idle for a third of every micro-batch.
    partitions = _env_int("CDR_TOPIC_PARTITIONS", 4)
    environment = _env("CDR_ENV", "local").lower()
    if environment not in ENVIRONMENTS:
        raise ValueError(f"CDR_ENV must be one of {ENVIRONMENTS}, got {environment!r}")
    # production's warehouse is SQL Server unless told otherwise
    warehouse_kind = _env("CDR_WAREHOUSE_KIND", "sqlserver" if environment == "prod" else "postgres")
    if warehouse_kind not in WAREHOUSE_KINDS:
        raise ValueError(f"CDR_WAREHOUSE_KIND must be one of {WAREHOUSE_KINDS}, got {warehouse_kind!r}")
    if partitions < 1:
        raise ValueError(f"CDR_TOPIC_PARTITIONS must be at least 1, got {partitions}")
    return Settings(
        environment=environment,
        kafka=KafkaSettings(
            bootstrap_servers=_env("CDR_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{kafka_port}"),
            raw_cdrs_topic=_env("CDR_RAW_TOPIC", "raw-cdrs"),
            error_cdrs_topic=_env("CDR_ERROR_TOPIC", "error-cdrs"),
            topic_partitions=partitions,
            max_message_bytes=_env_int("CDR_TOPIC_MAX_MESSAGE_BYTES", 1_048_576),
        ),
        warehouse=WarehouseSettings(
            host=_env("CDR_WAREHOUSE_HOST", "127.0.0.1"),
            port=postgres_port,
            database=_env("CDR_WAREHOUSE_DB", "cdr_warehouse"),
            user=_env("CDR_WAREHOUSE_USER", "cdr"),
            password=os.environ.get("CDR_WAREHOUSE_PASSWORD", ""),
            kind=warehouse_kind,
            trust_server_certificate=_env_bool("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE", False),
        ),
        stack=StackSettings(
            directory=stack_dir,
            kafka_port=kafka_port,
            kafka_controller_port=_env_int("CDR_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            kafka_heap=_env("CDR_KAFKA_HEAP", "1g"),
            postgres_port=postgres_port,
        ),
        spark_master=_env("CDR_SPARK_MASTER", "local[2]"),
        data_dir=Path(_env("CDR_DATA_DIR", str(REPO_ROOT / "data"))),
        mediation_schema=_env("CDR_MEDIATION_SCHEMA", "mediation"),
        rating_schema=_env("CDR_RATING_SCHEMA", "rating"),
        tariff_schema=_env("CDR_TARIFF_SCHEMA", "tariffs"),
        rating_rounding_decimals=_env_int("CDR_RATING_ROUNDING_DECIMALS", 5),
        mediation_max_offsets_per_trigger=_env_int("CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER", 250_000),
        max_rejection_rate=_env_float("CDR_MAX_REJECTION_RATE", 0.10),
        mediation_max_attempts=_env_int("CDR_MEDIATION_MAX_ATTEMPTS", 3),
        mediation_retry_backoff_s=_env_int("CDR_MEDIATION_RETRY_BACKOFF_S", 60),
        max_duration_s=_env_int("CDR_MAX_DURATION_S", 86_400),
        max_volume_bytes=_env_int("CDR_MAX_DATA_VOLUME_BYTES", 10**12),
        late_arrival_days=_env_int("CDR_LATE_ARRIVAL_DAYS", 60),
        mediation_max_payload_bytes=_env_int("CDR_MEDIATION_MAX_PAYLOAD_BYTES", 65_536),
        mediation_max_batch_bytes=_env_int("CDR_MEDIATION_MAX_BATCH_BYTES", 32 * 1024 * 1024),
        reject_echo_bytes=_env_int("CDR_REJECT_ECHO_BYTES", 4096),
        tariff_timezone=tariff_timezone(),
        billing_schema=_env("CDR_BILLING_SCHEMA", "billing"),
        marts_schema=_env("CDR_MARTS_SCHEMA", "marts"),
        bi_role=_env("CDR_BI_ROLE", "cdr_bi"),
        powerbi_workspace_id=_env("CDR_POWERBI_WORKSPACE_ID", ""),
        powerbi_dataset_id=_env("CDR_POWERBI_DATASET_ID", ""),
        powerbi_tenant_id=_env("CDR_POWERBI_TENANT_ID", ""),
        powerbi_client_id=_env("CDR_POWERBI_CLIENT_ID", ""),
        reference_dir=Path(_env("CDR_REFERENCE_DIR", "")) if _env("CDR_REFERENCE_DIR", "") else None,
        spark_conf=_spark_conf(),
    )


# Warehouse schemas the pipeline writes, in dependency order. One list, used by the local
# stack (creates them) and by docs/tests; SQL Server gets the same names.
WAREHOUSE_SCHEMAS = ("reference", "mediation", "rating", "billing", "marts")
