"""Resources: every setting an asset, check or sensor needs arrives as one of these.

Each field that carries a setting names it (`from_setting`): its type, default and meaning are
declared once, in `cdr_platform.lib.settings.SETTINGS`. `resources_for` fills the fields from the
loaded settings per environment (`utils.environment_helpers`): LOCAL talks to the project's own
stack, PROD to the production warehouse (SQL Server); a secret is read by Dagster (`dg.EnvVar`),
never written into run config or the UI. The Spark drivers run as subprocesses (Dagster Pipes):
`subprocess_env()` hands them the same settings, by the same names.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from cdr_platform.lib.billing.documents import Operator, issuer
from cdr_platform.lib.mediation.rules import Limits
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import TariffPlan
from cdr_platform.lib.rating.store import RatingTables
from cdr_platform.lib.settings import (
    FAILURE_FILE_ENV,
    SETTINGS_BY_NAME,
    WAREHOUSE_KINDS,
    KafkaSettings,
    Setting,
    Settings,
    WarehouseSettings,
    load_settings,
    set_process_default,
    value_in,
    work_dir,
)
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform.lib.warehouse import connect
from cdr_platform.lib.warehouse.dialects import DIALECTS
from cdr_platform.utils.environment_helpers import Environment, get_environment


def from_setting(name: str) -> Any:
    """A resource field that carries the setting `name`: its default (where fixed) and meaning come
    from the declaration; a computed default leaves the field to be filled by `resources_for`. A
    secret's field is left out of the resource's repr and str (pydantic's `repr=False`), so a log
    line or an error that shows the resource never shows the secret."""
    declared = SETTINGS_BY_NAME[name]
    common = {"description": declared.doc or name, "json_schema_extra": {"setting": name}}
    if declared.secret:
        common["repr"] = False
    if callable(declared.default):
        return Field(**common)
    default = declared.type.format(declared.default) if declared.default is None else declared.default
    return Field(default=default, **common)


class SettingsResource(dg.ConfigurableResource):
    """A resource whose fields carry settings: built from them, and handing them on by name."""

    @classmethod
    def carried_settings(cls) -> dict[str, Setting]:
        """Field name -> the setting it carries."""
        return {
            name: SETTINGS_BY_NAME[info.json_schema_extra["setting"]]
            for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and "setting" in info.json_schema_extra
        }

    @classmethod
    def for_settings(cls, settings: Settings, secrets_required: bool = False, **fields: Any):
        """The resource with the values of `settings`; a secret as an EnvVar when set (always, when
        `secrets_required`: production fails at launch without it rather than run without it). A
        secret the settings read from a file is put into this process's environment first (unless
        the variable is set), as export_file_secrets does at start-up: the file may have appeared
        since (the local stack writes its passwords on `up`)."""
        values: dict[str, Any] = {}
        for field_name, declared in cls.carried_settings().items():
            value = value_in(settings, declared)
            if declared.secret and (value or secrets_required):
                if value:  # read from a file (<NAME>_FILE, the stack's generated password): the EnvVar must resolve
                    set_process_default(declared.name, declared.type.format(value))
                values[field_name] = dg.EnvVar(declared.name)
            elif isinstance(value, (str, int, float, bool)):
                values[field_name] = value
            else:  # a path or nothing: a Dagster config field holds text
                values[field_name] = declared.type.format(value)
        return cls(**{**values, **fields})

    def subprocess_env(self) -> dict[str, str]:
        """The settings this resource carries, as a child process reads them (a secret only when set:
        in the child's environment, never its command line or the UI)."""
        env = {}
        for field_name, declared in self.carried_settings().items():
            value = getattr(self, field_name)
            if declared.secret and not value:
                continue
            env[declared.name] = declared.type.format(value)
        return env


class KafkaResource(SettingsResource):
    """Where the CDR topics live, and how every client reaches them (TLS, SASL)."""

    bootstrap_servers: str = from_setting("CDR_KAFKA_BOOTSTRAP_SERVERS")
    raw_cdrs_topic: str = from_setting("CDR_RAW_TOPIC")
    partials_topic: str = from_setting("CDR_PARTIALS_TOPIC")
    error_cdrs_topic: str = from_setting("CDR_ERROR_TOPIC")
    topic_partitions: int = from_setting("CDR_TOPIC_PARTITIONS")
    max_message_bytes: int = from_setting("CDR_TOPIC_MAX_MESSAGE_BYTES")
    replication_factor: int = from_setting("CDR_TOPIC_REPLICATION_FACTOR")
    min_insync_replicas: int = from_setting("CDR_TOPIC_MIN_INSYNC_REPLICAS")
    security_protocol: str = from_setting("CDR_KAFKA_SECURITY_PROTOCOL")
    sasl_mechanism: str = from_setting("CDR_KAFKA_SASL_MECHANISM")
    sasl_username: str = from_setting("CDR_KAFKA_SASL_USERNAME")
    sasl_password: str = from_setting("CDR_KAFKA_SASL_PASSWORD")
    ssl_ca_file: str = from_setting("CDR_KAFKA_SSL_CA_FILE")
    ssl_cert_file: str = from_setting("CDR_KAFKA_SSL_CERT_FILE")
    ssl_key_file: str = from_setting("CDR_KAFKA_SSL_KEY_FILE")
    ssl_key_password: str = from_setting("CDR_KAFKA_SSL_KEY_PASSWORD")
    ssl_check_hostname: bool = from_setting("CDR_KAFKA_SSL_CHECK_HOSTNAME")

    @property
    def settings(self) -> KafkaSettings:
        """What the Kafka helpers and clients take (cdr_platform.lib.kafka_io, kafka_clients): each
        field is the KafkaSettings attribute of the same name (a file path: None when empty)."""
        values = {name: getattr(self, name) for name in self.carried_settings()}
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            values[name] = Path(values[name]) if values[name] else None
        return KafkaSettings(**values)


class WarehouseResource(SettingsResource):
    """The warehouse: PostgreSQL locally, SQL Server in production (kind), and its schemas."""

    kind: str = from_setting("CDR_WAREHOUSE_KIND")
    host: str = from_setting("CDR_WAREHOUSE_HOST")
    port: int = from_setting("CDR_WAREHOUSE_PORT")
    database: str = from_setting("CDR_WAREHOUSE_DB")
    user: str = from_setting("CDR_WAREHOUSE_USER")
    password: str = from_setting("CDR_WAREHOUSE_PASSWORD")
    trust_server_certificate: bool = from_setting("CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE")
    mediation_schema: str = from_setting("CDR_MEDIATION_SCHEMA")
    rating_schema: str = from_setting("CDR_RATING_SCHEMA")
    tariff_schema: str = from_setting("CDR_TARIFF_SCHEMA")
    billing_schema: str = from_setting("CDR_BILLING_SCHEMA")
    marts_schema: str = from_setting("CDR_MARTS_SCHEMA")
    bi_role: str = from_setting("CDR_BI_ROLE")

    @property
    def settings(self) -> WarehouseSettings:
        if self.kind not in WAREHOUSE_KINDS:
            raise ValueError(f"warehouse kind must be one of {WAREHOUSE_KINDS}, got {self.kind!r}")
        return WarehouseSettings(
            self.host, self.port, self.database, self.user, self.password, self.kind, self.trust_server_certificate
        )

    @property
    def dialect(self):
        return DIALECTS[self.kind]

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
        """The schemas dbt's sources, seeds and models use, and the BI role (dbt --vars): the
        settings declared with a dbt var."""
        return {
            declared.dbt_var: getattr(self, field_name)
            for field_name, declared in self.carried_settings().items()
            if declared.dbt_var
        }


class TariffResource(SettingsResource):
    """How the tariff is applied: the operator's time zone (time bands, rating days, billing
    months) and CGRateS's rounding of each increment."""

    timezone: str = from_setting("CDR_TARIFF_TIMEZONE")
    rounding_decimals: int = from_setting("CDR_RATING_ROUNDING_DECIMALS")

    def clock(self) -> TariffClock:
        return TariffClock(self.timezone)

    def engine(self, plan: TariffPlan) -> RatingEngine:
        return RatingEngine(plan, rounding_decimals=self.rounding_decimals, clock=self.clock())


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
                    cwd=str(work_dir()),  # never the installed package: Spark may write scratch there
                ).get_results()
            except Exception as exc:
                if failure_file.is_file() and failure_file.read_text().strip():
                    raise dg.Failure(description=failure_file.read_text().strip()) from exc
                raise

    def subprocess_env(self) -> dict[str, str]:
        """The Spark configuration as the drivers read it: CDR_SPARK_MASTER and CDR_SPARK_CONF."""
        conf = {k: str(v) for k, v in dict(self.spark_config).items()}
        env = {"CDR_SPARK_CONF": SETTINGS_BY_NAME["CDR_SPARK_CONF"].type.format(conf)}
        if "spark.master" in conf:
            env["CDR_SPARK_MASTER"] = conf.pop("spark.master")
            env["CDR_SPARK_CONF"] = SETTINGS_BY_NAME["CDR_SPARK_CONF"].type.format(conf)
        return env


class FilesResource(SettingsResource):
    """Where the platform writes files (the subscribers CSV...), and the local stack's logs."""

    data_dir: str = from_setting("CDR_DATA_DIR")
    logs_dir: str = ""  # the local stack's logs (CDR_STACK_DIR/logs): what housekeeping rotates
    run_retention_days: float = from_setting("CDR_RUN_RETENTION_DAYS")

    def path(self, *parts: str) -> Path:
        return Path(self.data_dir, *parts)


class LandingResource(SettingsResource):
    """The network elements' landing folders (a folder per source) and when a file there is complete."""

    landing_dir: str = from_setting("CDR_LANDING_DIR")
    settle_s: int = from_setting("CDR_COLLECTION_SETTLE_S")
    duplicate_tolerance_s: int = from_setting("CDR_DUPLICATE_CONTENT_TOLERANCE_S")
    partial_timeout_s: int = from_setting("CDR_PARTIAL_TIMEOUT_S")

    @property
    def path(self) -> Path:
        return Path(self.landing_dir)


class BillDocumentsResource(SettingsResource):
    """Who issues the bills' documents (they go to bills/<yyyy-mm>/ of the files resource's folder)."""

    issuer_name: str = from_setting("CDR_INVOICE_ISSUER_NAME")
    issuer_address: str = from_setting("CDR_INVOICE_ISSUER_ADDRESS")

    def operator(self) -> Operator:
        return issuer(self.issuer_name, self.issuer_address)


class ReferenceFilesResource(SettingsResource):
    """The operator's own reference files (CDR_REFERENCE_DIR): numbering_plan.csv, cells.csv and
    subscribers.csv. Unset, or a file missing from the folder: that dataset's generated data."""

    directory: str = from_setting("CDR_REFERENCE_DIR")  # empty: no folder, the generated data

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


class PowerBIResource(SettingsResource):
    """The Power BI service workspace the semantic model is published to, if any (dagster-powerbi,
    a service principal). Unconfigured, nothing calls Power BI and the asset says so."""

    workspace_id: str = from_setting("CDR_POWERBI_WORKSPACE_ID")
    dataset_id: str = from_setting("CDR_POWERBI_DATASET_ID")
    tenant_id: str = from_setting("CDR_POWERBI_TENANT_ID")
    client_id: str = from_setting("CDR_POWERBI_CLIENT_ID")
    client_secret: str = from_setting("CDR_POWERBI_CLIENT_SECRET")

    @property
    def configured(self) -> bool:
        return all((self.workspace_id, self.dataset_id, self.tenant_id, self.client_id, self.client_secret))

    def refresh_semantic_model(self, context) -> str:
        """Refresh the published semantic model and wait for it; what happened, in one line."""
        if not self.configured:
            names = ", ".join(declared.name for declared in self.carried_settings().values())
            message = f"refresh not configured: set {names} to refresh it in the Power BI service"
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


class MediationResource(SettingsResource):
    """How much a micro-batch takes, the limits a record must keep, and when the share of rejects is
    worth a warning. The mediation driver gets them as environment (`subprocess_env`); a replay of
    the reject store, which runs in the Dagster process, as `limits()`."""

    max_offsets_per_trigger: int = from_setting("CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER")
    max_rejection_rate: float = from_setting("CDR_MAX_REJECTION_RATE")
    max_attempts: int = from_setting("CDR_MEDIATION_MAX_ATTEMPTS")
    retry_backoff_s: int = from_setting("CDR_MEDIATION_RETRY_BACKOFF_S")
    max_payload_bytes: int = from_setting("CDR_MEDIATION_MAX_PAYLOAD_BYTES")
    max_batch_bytes: int = from_setting("CDR_MEDIATION_MAX_BATCH_BYTES")
    reject_echo_bytes: int = from_setting("CDR_REJECT_ECHO_BYTES")
    max_duration_s: int = from_setting("CDR_MAX_DURATION_S")
    max_volume_bytes: int = from_setting("CDR_MAX_DATA_VOLUME_BYTES")
    late_arrival_days: int = from_setting("CDR_LATE_ARRIVAL_DAYS")

    def limits(self, known_cells: frozenset[str] | None = None) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_duration_s=self.max_duration_s,
            max_volume_bytes=self.max_volume_bytes,
            late_arrival=timedelta(days=self.late_arrival_days),
            **({"known_cells": known_cells} if known_cells else {}),
        )


def resources_for(settings: Settings, environment: Environment) -> dict[str, object]:
    """The resources of an environment, from `settings`. PROD requires the warehouse password from
    the environment (an EnvVar, so its value never shows in the UI)."""
    prod = environment is Environment.PROD
    return {
        "kafka": KafkaResource.for_settings(settings),
        "warehouse": WarehouseResource.for_settings(settings, secrets_required=prod),
        "tariff": TariffResource.for_settings(settings),
        "spark": SparkResource(
            spark_config={"spark.master": settings.spark_master, **settings.spark_conf},
        ),
        "files": FilesResource.for_settings(settings, logs_dir=str(settings.stack.logs_dir)),
        "bill_documents": BillDocumentsResource.for_settings(settings),
        "landing": LandingResource.for_settings(settings),
        "reference_files": ReferenceFilesResource.for_settings(settings),
        "mediation_settings": MediationResource.for_settings(settings),
        "powerbi": PowerBIResource.for_settings(settings),
        # Spark drivers run as subprocesses that speak Dagster Pipes.
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(load_settings(), get_environment()))
