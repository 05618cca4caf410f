"""Resources: every setting an asset, check or sensor needs arrives as one of these.

Their values come from `cdr_platform.lib.settings` (environment variables with local defaults)
when the code location loads, per environment (`utils.environment_helpers`): LOCAL talks to the
project's own stack, PROD to the production warehouse (SQL Server) with the secret read from
the environment by Dagster (`dg.EnvVar`), never written into run config or the UI. The Spark
drivers run as subprocesses (Dagster Pipes): `subprocess_env()` hands them the same settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster_pyspark import LazyPySparkResource

from cdr_platform.lib.mediation.rules import Limits
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import TariffPlan
from cdr_platform.lib.rating.store import RatingTables
from cdr_platform.lib.settings import (
    DEFAULT_TARIFF_TIMEZONE,
    FAILURE_FILE_ENV,
    REPO_ROOT,
    WAREHOUSE_KINDS,
    Settings,
    WarehouseSettings,
    load_settings,
    run_retention_days,
)
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import connect
from cdr_platform.lib.warehouse.dialects import DIALECTS
from cdr_platform.utils.environment_helpers import Environment, get_environment


class KafkaResource(dg.ConfigurableResource):
    """Where the CDR topics live."""

    bootstrap_servers: str
    raw_cdrs_topic: str
    error_cdrs_topic: str
    topic_partitions: int = 4

    def subprocess_env(self) -> dict[str, str]:
        return {
            "CDR_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "CDR_RAW_TOPIC": self.raw_cdrs_topic,
            "CDR_ERROR_TOPIC": self.error_cdrs_topic,
            "CDR_TOPIC_PARTITIONS": str(self.topic_partitions),
        }


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: PostgreSQL locally, SQL Server in production (kind), and its schemas."""

    kind: str = "postgres"
    host: str
    port: int
    database: str
    user: str
    password: str = ""
    trust_server_certificate: bool = False  # SQL Server: a development server's self-signed certificate
    mediation_schema: str = "mediation"
    rating_schema: str = "rating"
    tariff_schema: str = "tariffs"
    billing_schema: str = "billing"
    marts_schema: str = "marts"
    bi_role: str = "cdr_bi"

    @property
    def settings(self) -> WarehouseSettings:
        if self.kind not in WAREHOUSE_KINDS:
            raise ValueError(f"warehouse kind must be one of {WAREHOUSE_KINDS}, got {self.kind!r}")
        return WarehouseSettings(
            self.host, self.port, self.database, self.user, self.password, self.kind, self.trust_server_certificate
        )

    def connect(self):
        """A psycopg connection (PostgreSQL) or a DB-API session over mssql-python (SQL Server)."""
        return connect(self.settings)

    @contextlib.contextmanager
    def exclusive(self, name: str):
        """Hold the warehouse's lock `name` for the block (a session lock on a connection of its
        own): runs that write the same tables wait for each other, wherever they were launched."""
        dialect = DIALECTS[self.kind]
        with self.connect() as conn:
            conn.execute(dialect.session_lock_sql(name))
            conn.commit()  # the lock is the session's: no transaction left open while the block runs
            try:
                yield
            finally:
                conn.execute(dialect.session_lock_sql(name, release=True))

    def mediation_tables(self) -> MediationTables:
        return MediationTables(self.mediation_schema, DIALECTS[self.kind])

    def rating_tables(self) -> RatingTables:
        return RatingTables(self.rating_schema, DIALECTS[self.kind], self.tariff_schema)

    def dbt_vars(self) -> dict[str, str]:
        """The schemas dbt's sources, seeds and models use, and the BI role (dbt --vars)."""
        return {
            "mediation_schema": self.mediation_schema,
            "rating_schema": self.rating_schema,
            "tariff_schema": self.tariff_schema,
            "billing_schema": self.billing_schema,
            "marts_schema": self.marts_schema,
            "bi_role": self.bi_role,
        }

    def subprocess_env(self) -> dict[str, str]:
        env = {
            "CDR_WAREHOUSE_KIND": self.kind,
            "CDR_WAREHOUSE_HOST": self.host,
            "CDR_WAREHOUSE_PORT": str(self.port),
            "CDR_WAREHOUSE_DB": self.database,
            "CDR_WAREHOUSE_USER": self.user,
            "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE": str(self.trust_server_certificate).lower(),
            "CDR_MEDIATION_SCHEMA": self.mediation_schema,
            "CDR_RATING_SCHEMA": self.rating_schema,
            "CDR_TARIFF_SCHEMA": self.tariff_schema,
            "CDR_BILLING_SCHEMA": self.billing_schema,
            "CDR_MARTS_SCHEMA": self.marts_schema,
        }
        if self.password:  # the child's environment only, never its command line or the UI
            env["CDR_WAREHOUSE_PASSWORD"] = self.password
        return env


class TariffResource(dg.ConfigurableResource):
    """How the tariff is applied: the operator's time zone (time bands, rating days, billing
    months) and CGRateS's rounding of each increment."""

    timezone: str = DEFAULT_TARIFF_TIMEZONE
    rounding_decimals: int = 5

    def clock(self) -> TariffClock:
        return TariffClock(self.timezone)

    def engine(self, plan: TariffPlan) -> RatingEngine:
        return RatingEngine(plan, rounding_decimals=self.rounding_decimals, clock=self.clock())

    def subprocess_env(self) -> dict[str, str]:
        return {"CDR_TARIFF_TIMEZONE": self.timezone, "CDR_RATING_ROUNDING_DECIMALS": str(self.rounding_decimals)}


class SparkResource(LazyPySparkResource):
    """The Spark configuration the jobs share (master URL first), and how a job's driver runs.

    The jobs' drivers run out of process through Dagster Pipes, so this resource never starts a
    session in the Dagster process (it is the lazy one): it hands its configuration to them.
    """

    def run_job(self, context, pipes_client: dg.PipesSubprocessClient, args: list[str], env: dict[str, str]):
        """`cdr <args>` as a Pipes subprocess; returns its results. A driver that fails writes its
        one-line cause to a file (CDR_FAILURE_FILE): it becomes the step's failure, so the run
        (and the sensor that retries it) says why, not just "exit code 1"."""
        with tempfile.TemporaryDirectory(prefix="cdr-job-") as folder:
            failure_file = Path(folder) / "failure"
            try:
                return pipes_client.run(
                    context=context,
                    command=[sys.executable, "-m", "cdr_platform.cli", *args],
                    env={
                        **env,
                        **self.subprocess_env(),
                        "PYSPARK_PYTHON": sys.executable,
                        "CDR_RUN_ID": context.run.run_id,
                        FAILURE_FILE_ENV: str(failure_file),
                    },
                    cwd=str(REPO_ROOT),
                ).get_results()
            except Exception as exc:
                if failure_file.is_file() and failure_file.read_text().strip():
                    raise dg.Failure(description=failure_file.read_text().strip()) from exc
                raise

    def subprocess_env(self) -> dict[str, str]:
        conf = dict(self.spark_config)
        env = {"CDR_SPARK_CONF": json.dumps({k: str(v) for k, v in conf.items() if k != "spark.master"})}
        if conf.get("spark.master"):
            env["CDR_SPARK_MASTER"] = str(conf["spark.master"])
        return env


class FilesResource(dg.ConfigurableResource):
    """Where the platform writes files (the subscribers CSV...), and the local stack's logs."""

    data_dir: str
    logs_dir: str = ""  # the local stack's logs (.stack/logs): what housekeeping rotates
    run_retention_days: float = 7.0  # finished Dagster runs older than this are pruned

    def path(self, *parts: str) -> Path:
        return Path(self.data_dir, *parts)


class ReferenceFilesResource(dg.ConfigurableResource):
    """The operator's own reference files (CDR_REFERENCE_DIR): numbering_plan.csv, cells.csv and
    subscribers.csv. Unset, or a file missing from the folder: that dataset's generated data."""

    directory: str = ""  # empty: no folder, the generated data

    def file(self, file_name: str) -> tuple[Path | None, str]:
        """The operator's file `file_name` if there is one, else None; and where the data comes from,
        in words. A folder that is set but does not exist fails: a typo must not load generated data."""
        if not self.directory:
            return None, "generated (CDR_REFERENCE_DIR is not set)"
        folder = Path(self.directory)
        if not folder.is_dir():
            raise dg.Failure(description=f"CDR_REFERENCE_DIR {folder} is not a folder")
        path = folder / file_name
        if not path.is_file():
            return None, f"generated (no {file_name} in {folder})"
        return path, f"file {path}"


POWERBI_SETTINGS = (
    "CDR_POWERBI_WORKSPACE_ID",
    "CDR_POWERBI_DATASET_ID",
    "CDR_POWERBI_TENANT_ID",
    "CDR_POWERBI_CLIENT_ID",
    "CDR_POWERBI_CLIENT_SECRET",
)


class PowerBIResource(dg.ConfigurableResource):
    """The Power BI service workspace the semantic model is published to, if any (dagster-powerbi,
    a service principal). Unconfigured, nothing calls Power BI and the asset says so."""

    workspace_id: str = ""
    dataset_id: str = ""
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""

    @property
    def configured(self) -> bool:
        return all((self.workspace_id, self.dataset_id, self.tenant_id, self.client_id, self.client_secret))

    def refresh_semantic_model(self, context) -> str:
        """Refresh the published semantic model and wait for it; what happened, in one line."""
        if not self.configured:
            message = f"refresh not configured: set {', '.join(POWERBI_SETTINGS)} to refresh it in the Power BI service"
            context.log.info(message)
            return message
        from dagster_powerbi import PowerBIServicePrincipal, PowerBIWorkspace

        workspace = PowerBIWorkspace(
            credentials=PowerBIServicePrincipal(
                client_id=self.client_id, client_secret=self.client_secret, tenant_id=self.tenant_id
            ),
            workspace_id=self.workspace_id,
        )
        workspace.trigger_and_poll_refresh(self.dataset_id)
        return f"refreshed semantic model {self.dataset_id} in workspace {self.workspace_id}"


class MediationResource(dg.ConfigurableResource):
    """How much a micro-batch takes, the limits a record must keep, and when the share of rejects is
    worth a warning. The mediation driver gets them as environment (`subprocess_env`); a replay of
    the reject store, which runs in the Dagster process, as `limits()`."""

    max_offsets_per_trigger: int = 250_000  # bounds a micro-batch, and so the driver's memory
    max_rejection_rate: float = 0.10
    max_attempts: int = 3  # runs the sensor launches for the same new data before it gives up
    retry_backoff_s: int = 60  # wait after a failed run; doubled after each further failure
    max_payload_bytes: int = 65_536  # PAYLOAD_TOO_LARGE above it
    max_batch_bytes: int = 32 * 1024 * 1024  # a task's Arrow batches at most
    reject_echo_bytes: int = 4096  # of the payload, in the error-cdrs message
    max_duration_s: int = 86_400
    max_volume_bytes: int = 10**12
    late_arrival_days: int = 60

    def limits(self, known_cells: frozenset[str] | None = None) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_duration_s=self.max_duration_s,
            max_volume_bytes=self.max_volume_bytes,
            late_arrival=timedelta(days=self.late_arrival_days),
            **({"known_cells": known_cells} if known_cells else {}),
        )

    def subprocess_env(self) -> dict[str, str]:
        return {
            "CDR_MEDIATION_MAX_PAYLOAD_BYTES": str(self.max_payload_bytes),
            "CDR_MEDIATION_MAX_BATCH_BYTES": str(self.max_batch_bytes),
            "CDR_REJECT_ECHO_BYTES": str(self.reject_echo_bytes),
            "CDR_MAX_DURATION_S": str(self.max_duration_s),
            "CDR_MAX_DATA_VOLUME_BYTES": str(self.max_volume_bytes),
            "CDR_LATE_ARRIVAL_DAYS": str(self.late_arrival_days),
        }


def resources_for(settings: Settings, environment: Environment) -> dict[str, object]:
    """The resources of an environment. PROD requires the warehouse password from the
    environment (as an EnvVar, so its value never shows in the UI)."""
    wh = settings.warehouse
    password: object = wh.password
    if environment is Environment.PROD or wh.password:
        password = dg.EnvVar("CDR_WAREHOUSE_PASSWORD")
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            raw_cdrs_topic=settings.kafka.raw_cdrs_topic,
            error_cdrs_topic=settings.kafka.error_cdrs_topic,
            topic_partitions=settings.kafka.topic_partitions,
        ),
        "warehouse": WarehouseResource(
            kind=wh.kind,
            host=wh.host,
            port=wh.port,
            database=wh.database,
            user=wh.user,
            password=password,
            trust_server_certificate=wh.trust_server_certificate,
            mediation_schema=settings.mediation_schema,
            rating_schema=settings.rating_schema,
            tariff_schema=settings.tariff_schema,
            billing_schema=settings.billing_schema,
            marts_schema=settings.marts_schema,
            bi_role=settings.bi_role,
        ),
        "tariff": TariffResource(
            timezone=settings.tariff_timezone, rounding_decimals=settings.rating_rounding_decimals
        ),
        "spark": SparkResource(spark_config={"spark.master": settings.spark_master, **settings.spark_conf}),
        "files": FilesResource(
            data_dir=str(settings.data_dir),
            logs_dir=str(settings.stack.directory / "logs"),
            run_retention_days=run_retention_days(),
        ),
        "reference_files": ReferenceFilesResource(directory=str(settings.reference_dir or "")),
        "mediation_settings": MediationResource(
            max_offsets_per_trigger=settings.mediation_max_offsets_per_trigger,
            max_rejection_rate=settings.max_rejection_rate,
            max_attempts=settings.mediation_max_attempts,
            retry_backoff_s=settings.mediation_retry_backoff_s,
            max_payload_bytes=settings.mediation_max_payload_bytes,
            max_batch_bytes=settings.mediation_max_batch_bytes,
            reject_echo_bytes=settings.reject_echo_bytes,
            max_duration_s=settings.max_duration_s,
            max_volume_bytes=settings.max_volume_bytes,
            late_arrival_days=settings.late_arrival_days,
        ),
        "powerbi": PowerBIResource(
            workspace_id=settings.powerbi_workspace_id,
            dataset_id=settings.powerbi_dataset_id,
            tenant_id=settings.powerbi_tenant_id,
            client_id=settings.powerbi_client_id,
            client_secret=dg.EnvVar("CDR_POWERBI_CLIENT_SECRET") if os.environ.get("CDR_POWERBI_CLIENT_SECRET") else "",
        ),
        # Spark drivers run as subprocesses that speak Dagster Pipes.
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(load_settings(), get_environment()))
