"""Every setting of the platform, declared once: its environment variable, type, working local
default and meaning.

`SETTINGS` is the one declaration. From it derive: `load_settings()` (the `Settings` the jobs,
the CLI and the tests read), the Dagster resources' fields and their `EnvVar`s, the dbt vars and
the environment of the Spark drivers (`cdr_platform.defs.resources`), and the README's settings
table (`cdr settings`, checked by a test). No other module reads `os.environ`
(`cdr_platform_tests/unit/test_settings_declared_once.py` enforces it): a value that is invalid
fails when the settings load, naming its variable.

Nothing is read at import time: call `load_settings()` or `setting(NAME)` where the value is needed.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# -- where the project's files are, and where it writes ----------------------------------------

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # cdr_platform/


def checkout_root() -> Path | None:
    """The git checkout the package runs from (an editable install), if it does."""
    root = PACKAGE_DIR.parent
    return root if (root / "dbt_project" / "dbt_project.yml").is_file() else None


# The checkout, for the tests and benchmarks that live in it (None once installed from a wheel)
REPO_ROOT = checkout_root() or PACKAGE_DIR.parent


class SettingError(ValueError):
    """A setting's value is invalid; the message names its environment variable."""


@dataclass(frozen=True)
class SettingType:
    """How a setting's text becomes its value (and back, for a child process's environment)."""

    describe: str  # for the README: "integer >= 1", "one of: local, prod"
    parse: Callable[[str], Any]  # raises ValueError with what was expected

    def format(self, value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return json.dumps(value)
        return "" if value is None else str(value)


def text() -> SettingType:
    return SettingType("text", str)


def integer(minimum: int | None = None, maximum: int | None = None) -> SettingType:
    return _number(int, "integer", minimum, maximum)


def number(minimum: float | None = None, maximum: float | None = None, above: float | None = None) -> SettingType:
    return _number(float, "number", minimum, maximum, above)


def _number(kind, word: str, minimum=None, maximum=None, above=None) -> SettingType:
    if minimum is not None and maximum is not None:
        bounds = [f"from {minimum} to {maximum}"]
    else:
        bounds = [f">= {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
    bounds += [f"> {above}"] if above is not None else []

    def parse(raw: str):
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be {'an' if word == 'integer' else 'a'} {word}") from None
        if (
            (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (above is not None and value <= above)
        ):
            raise ValueError(f"must be {word} {' and '.join(bounds)}")
        return value

    return SettingType(" ".join([word, *bounds]), parse)


def flag() -> SettingType:
    def parse(raw: str) -> bool:
        lowered = raw.lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("must be true or false")
        return lowered in ("true", "1", "yes")

    return SettingType("true or false", parse)


def choice(*options: str) -> SettingType:
    def parse(raw: str) -> str:
        if raw not in options:
            raise ValueError(f"must be one of {', '.join(o or '(empty)' for o in options)}")
        return raw

    return SettingType(f"one of: {', '.join(o or '(empty)' for o in options)}", parse)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def identifier() -> SettingType:
    """A schema or role name: written into SQL as it is, so it must be a plain identifier."""

    def parse(raw: str) -> str:
        if not _IDENTIFIER.fullmatch(raw):
            raise ValueError("must be an SQL identifier (letters, digits, _; not starting with a digit)")
        return raw

    return SettingType("SQL identifier", parse)


def timezone() -> SettingType:
    def parse(raw: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as Africa/Casablanca or UTC") from None
        return raw

    return SettingType("IANA time zone", parse)


def folder() -> SettingType:
    return SettingType("path", lambda raw: Path(raw).expanduser())


def json_object() -> SettingType:
    def parse(raw: str) -> dict[str, str]:
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of Spark settings")
        return {str(k): str(v) for k, v in value.items()}

    return SettingType("JSON object", parse)


@dataclass(frozen=True)
class Setting:
    """One setting. `default` is the working local value, or a function of the values declared
    before it. `into`: where `Settings` keeps it ("kafka.bootstrap_servers"); `secret`: reached
    through `EnvVar` in Dagster, never shown, and also read from the file `<NAME>_FILE` names (the
    Docker secrets convention); `default_file`: a function of the values declared before it giving
    the file a secret is read from when neither variable is set (the local stack's generated
    password), None for none; `dbt_var`: the dbt var it becomes. A Dagster resource field that
    carries it names it (`cdr_platform.defs.resources.from_setting`)."""

    name: str
    type: SettingType
    default: Any
    doc: str
    into: tuple[str, ...] = ()
    secret: bool = False
    default_file: Callable[[dict[str, Any]], Path | None] | None = None
    dbt_var: str = ""
    default_doc: str = ""  # the default in words, where it is computed

    def shown_default(self) -> str:
        if self.default_doc:
            return self.default_doc
        value = self.type.format(self.default)
        return "empty" if value == "" else f"`{value}`"


def work_dir() -> Path:
    """Where the local stack, the data and the Dagster instance live by default: the checkout, or
    the current folder when the package is installed."""
    return checkout_root() or Path.cwd()


def _bundled_or_checkout() -> Path:
    """The project's files (dbt project, Power BI project, stack files): the checkout, else the
    copy the wheel carries inside the package."""
    return checkout_root() or PACKAGE_DIR / "project"


def local_password_file(stack_dir: Path, role: str) -> Path:
    """Where the local stack keeps the generated password of the PostgreSQL role `role` (mode 0600,
    under CDR_STACK_DIR, which git ignores): written by `cdr stack up`, read by the settings."""
    return stack_dir / "postgres" / "secrets" / f"{role}.password"


def _local_stack_password(role_setting: str) -> Callable[[dict[str, Any]], Path | None]:
    """The default file of a warehouse password: the local stack's generated one for the role
    that `role_setting` names, when the warehouse is the local stack's PostgreSQL."""

    def default_file(values: dict[str, Any]) -> Path | None:
        if values["CDR_ENV"] != "local" or values["CDR_WAREHOUSE_KIND"] != "postgres":
            return None
        return local_password_file(values["CDR_STACK_DIR"], values[role_setting])

    return default_file


def local_kafka_password_file(stack_dir: Path, user: str) -> Path:
    """Where the local stack keeps the generated SCRAM password of the Kafka user `user` (mode 0600):
    written by `cdr stack up`, read by the settings."""
    return stack_dir / "kafka" / "secrets" / f"{user}.password"


def _local_kafka_port(values: dict[str, Any]) -> int:
    """The local broker's listener of the settings' protocol: SASL_SSL's, or the PLAINTEXT one."""
    secured = values["CDR_ENV"] == "local" and values["CDR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    return values["CDR_KAFKA_SASL_SSL_PORT"] if secured else values["CDR_KAFKA_PORT"]


def _local_kafka_password(values: dict[str, Any]) -> Path | None:
    """The default file of the SASL password: the local broker's generated one for the user, when
    the environment is local and the protocol logs in."""
    if values["CDR_ENV"] != "local" or not values["CDR_KAFKA_SECURITY_PROTOCOL"].startswith("SASL_"):
        return None
    return local_kafka_password_file(values["CDR_STACK_DIR"], values["CDR_KAFKA_SASL_USERNAME"] or "-")


WAREHOUSE_KINDS = ("postgres", "sqlserver")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENVIRONMENTS = ("local", "prod")
DEFAULT_TARIFF_TIMEZONE = "Africa/Casablanca"  # the demo operator's (Morocco)
# Where a job run by Dagster writes its one-line cause of failure (set by the Spark resource)
FAILURE_FILE_ENV = "CDR_FAILURE_FILE"

SETTINGS: tuple[Setting, ...] = (
    # -- environment and files
    Setting(
        "CDR_ENV",
        choice(*ENVIRONMENTS),
        "local",
        "`local` or `prod`: which resources, which warehouse engine and dbt target",
        into=("environment",),
    ),
    Setting(
        "CDR_PROJECT_DIR",
        folder(),
        lambda v: _bundled_or_checkout(),
        "the project's files (dbt project, Power BI project, stack files); an installed package carries its own copy",
        into=("project_dir",),
        default_doc="the checkout, or the installed package's copy",
    ),
    Setting(
        "CDR_STACK_DIR",
        folder(),
        lambda v: work_dir() / ".stack",
        "the local stack's files: broker and database data, jars, logs, checkpoints",
        into=("stack.directory",),
        default_doc="`.stack/` of the checkout (installed: of the current folder)",
    ),
    Setting(
        "CDR_DATA_DIR",
        folder(),
        lambda v: work_dir() / "data",
        "files the platform writes (generated subscribers, dashboard)",
        into=("data_dir",),
        default_doc="`data/` of the checkout (installed: of the current folder)",
    ),
    Setting(
        "CDR_LANDING_DIR",
        folder(),
        lambda v: v["CDR_DATA_DIR"] / "landing",
        "network elements' CDR files: a folder per source (`<source>/`), watched by the landing sensor; "
        "collected files move to `<source>/archive/`, unreadable ones to `<source>/quarantine/`",
        into=("landing_dir",),
        default_doc="`landing/` of CDR_DATA_DIR",
    ),
    Setting(
        "CDR_COLLECTION_SETTLE_S",
        integer(0, 3600),
        10,
        "a landing file unchanged (size and time) for this many seconds is complete and collected; a file "
        "written under a name starting with `.` or ending `.tmp` / `.part` and then renamed is taken at once",
        into=("collection_settle_s",),
    ),
    Setting(
        "CDR_PARTIAL_TIMEOUT_S",
        integer(1, 30 * 86_400),
        7_200,
        "a chain of partial records that has not ended this many seconds (of the records' own time) after "
        "its latest part ended is emitted as one CDR flagged incomplete",
        into=("partial_timeout_s",),
    ),
    Setting(
        "CDR_DUPLICATE_CONTENT_TOLERANCE_S",
        integer(0, 3600),
        2,
        "two collected calls with the same parties, type and duration whose starts lie this many seconds apart "
        "are the same call (two sources, or a file sent again renamed): the later one is rejected DUPLICATE_CONTENT",
        into=("duplicate_content_tolerance_s",),
    ),
    Setting(
        "CDR_REFERENCE_DIR",
        folder(),
        None,
        "a folder of the operator's reference files, `numbering_plan.csv`, `cells.csv`, `subscribers.csv` "
        "(each optional); empty: the generated data",
        into=("reference_dir",),
    ),
    Setting(
        "CDR_CONFORMANCE_DIR",
        folder(),
        lambda v: v["CDR_PROJECT_DIR"].parent / "shared" / "conformance" / "cgrates",
        "the CGRateS conformance cases; with `CI` set, a missing folder fails the tests instead of skipping them",
        into=("conformance_dir",),
        default_doc="`../shared/conformance/cgrates`",
    ),
    # -- Kafka
    Setting("CDR_KAFKA_PORT", integer(1, 65535), 19092, "the local broker's port", into=("stack.kafka_port",)),
    Setting(
        "CDR_KAFKA_CONTROLLER_PORT",
        integer(1, 65535),
        lambda v: v["CDR_KAFKA_PORT"] + 1,
        "the local broker's KRaft controller port",
        into=("stack.kafka_controller_port",),
        default_doc="`CDR_KAFKA_PORT` + 1",
    ),
    Setting("CDR_KAFKA_HEAP", text(), "1g", "the local broker's JVM heap", into=("stack.kafka_heap",)),
    Setting(
        "CDR_KAFKA_SECURITY_PROTOCOL",
        choice(*KAFKA_SECURITY_PROTOCOLS),
        lambda v: "SASL_SSL" if v["CDR_ENV"] == "prod" else "PLAINTEXT",
        "how every client reaches the brokers: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL` "
        "(producers, admin and offset readers, Spark's Kafka source and sink alike)",
        into=("kafka.security_protocol",),
        default_doc="`PLAINTEXT` (`SASL_SSL` when `CDR_ENV=prod`)",
    ),
    Setting(
        "CDR_KAFKA_SASL_MECHANISM",
        choice(*KAFKA_SASL_MECHANISMS),
        "SCRAM-SHA-512",
        "the SASL mechanism (`SASL_*` protocols): `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`",
        into=("kafka.sasl_mechanism",),
    ),
    Setting("CDR_KAFKA_SASL_USERNAME", text(), "", "the SASL user", into=("kafka.sasl_username",)),
    Setting(
        "CDR_KAFKA_SASL_PASSWORD",
        text(),
        "",
        "its password: never in git, Dagster reads it as an `EnvVar`; or a file `CDR_KAFKA_SASL_PASSWORD_FILE` "
        "names; neither set with `CDR_ENV=local` and a `SASL_*` protocol: the local broker's generated one",
        into=("kafka.sasl_password",),
        secret=True,
        default_file=_local_kafka_password,
        default_doc="empty (local: `.stack/kafka/secrets/<user>.password`)",
    ),
    Setting(
        "CDR_KAFKA_SSL_CA_FILE",
        folder(),
        None,
        "PEM file of the CA(s) the brokers' certificates are verified against (`SSL`, `SASL_SSL`); "
        "empty: the system's trust store",
        into=("kafka.ssl_ca_file",),
    ),
    Setting(
        "CDR_KAFKA_SSL_CERT_FILE",
        folder(),
        None,
        "PEM file of the client's certificate chain, for brokers that require client certificates (mutual TLS)",
        into=("kafka.ssl_cert_file",),
    ),
    Setting(
        "CDR_KAFKA_SSL_KEY_FILE",
        folder(),
        None,
        "PEM file of the client certificate's private key (PKCS#8)",
        into=("kafka.ssl_key_file",),
    ),
    Setting(
        "CDR_KAFKA_SSL_KEY_PASSWORD",
        text(),
        "",
        "the private key's password, if it is encrypted",
        into=("kafka.ssl_key_password",),
        secret=True,
    ),
    Setting(
        "CDR_KAFKA_SSL_CHECK_HOSTNAME",
        flag(),
        True,
        "the broker's certificate must name the host the client connects to; `false` only for a test broker",
        into=("kafka.ssl_check_hostname",),
    ),
    Setting(
        "CDR_KAFKA_SASL_SSL_PORT",
        integer(1, 65535),
        lambda v: v["CDR_KAFKA_PORT"] + 2,
        "the local broker's `SASL_SSL` listener (SCRAM users, a CA of its own in `.stack/kafka/tls/`)",
        into=("stack.kafka_sasl_ssl_port",),
        default_doc="`CDR_KAFKA_PORT` + 2",
    ),
    Setting(
        "CDR_KAFKA_BOOTSTRAP_SERVERS",
        text(),
        lambda v: f"127.0.0.1:{_local_kafka_port(v)}",
        "the brokers",
        into=("kafka.bootstrap_servers",),
        default_doc="`127.0.0.1:19092` (local `SASL_SSL`: the local broker's SASL_SSL listener)",
    ),
    Setting("CDR_RAW_TOPIC", text(), "raw-cdrs", "the CDRs to mediate", into=("kafka.raw_cdrs_topic",)),
    Setting(
        "CDR_PARTIALS_TOPIC",
        text(),
        "raw-cdr-partials",
        "partial records of long calls and sessions (TS 32.298), collected from files; `cdr stitch` makes "
        "each chain one CDR in the raw topic",
        into=("kafka.partials_topic",),
    ),
    Setting("CDR_ERROR_TOPIC", text(), "error-cdrs", "the rejects with their reason", into=("kafka.error_cdrs_topic",)),
    Setting(
        "CDR_TOPIC_PARTITIONS",
        integer(1),
        4,
        "partitions of `raw-cdrs` / `error-cdrs` when created; keep it a multiple of the Spark cores "
        "(mediation runs one task per partition)",
        into=("kafka.topic_partitions",),
    ),
    Setting(
        "CDR_TOPIC_REPLICATION_FACTOR",
        integer(1),
        1,
        "replicas of `raw-cdrs` / `error-cdrs` when created (a cluster: 3)",
        into=("kafka.replication_factor",),
    ),
    Setting(
        "CDR_TOPIC_MIN_INSYNC_REPLICAS",
        integer(1),
        1,
        "`min.insync.replicas` of the CDR topics when created: replicas that must have a write before it is "
        "acknowledged (a cluster of 3: 2)",
        into=("kafka.min_insync_replicas",),
    ),
    Setting(
        "CDR_TOPIC_MAX_MESSAGE_BYTES",
        integer(1024),
        1_048_576,
        "`max.message.bytes` of `raw-cdrs` and `error-cdrs` when created, and the rejects' `max.request.size`",
        into=("kafka.max_message_bytes",),
    ),
    # -- warehouse
    Setting(
        "CDR_WAREHOUSE_KIND",
        choice(*WAREHOUSE_KINDS),
        lambda v: "sqlserver" if v["CDR_ENV"] == "prod" else "postgres",
        "the warehouse engine: every asset, check and Spark job follows it",
        into=("warehouse.kind",),
        default_doc="`postgres` (`sqlserver` when `CDR_ENV=prod`)",
    ),
    Setting("CDR_WAREHOUSE_HOST", text(), "127.0.0.1", "the warehouse's host", into=("warehouse.host",)),
    Setting(
        "CDR_WAREHOUSE_PORT",
        integer(1, 65535),
        15432,
        "the warehouse's port (the local PostgreSQL's too)",
        into=("warehouse.port", "stack.postgres_port"),
    ),
    Setting("CDR_WAREHOUSE_DB", text(), "cdr_warehouse", "the warehouse database", into=("warehouse.database",)),
    Setting("CDR_WAREHOUSE_USER", text(), "cdr", "the application's login", into=("warehouse.user",)),
    Setting(
        "CDR_WAREHOUSE_PASSWORD",
        text(),
        "",
        "the application's password: never in git, Dagster reads it as an `EnvVar`; or a file "
        "`CDR_WAREHOUSE_PASSWORD_FILE` names; neither set with `CDR_ENV=local`: the local stack's generated one",
        into=("warehouse.password",),
        secret=True,
        default_file=_local_stack_password("CDR_WAREHOUSE_USER"),
        default_doc="empty (local: `.stack/postgres/secrets/<user>.password`)",
    ),
    Setting(
        "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE",
        flag(),
        False,
        "SQL Server's TLS certificate is verified; `true` trusts a development server's self-signed one "
        "(JDBC, mssql-python and dbt alike)",
        into=("warehouse.trust_server_certificate",),
    ),
    Setting(
        "CDR_MEDIATION_SCHEMA",
        identifier(),
        "mediation",
        "clean CDRs, the ledger, the reject store",
        into=("mediation_schema",),
        dbt_var="mediation_schema",
    ),
    Setting(
        "CDR_RATING_SCHEMA",
        identifier(),
        "rating",
        "rated CDRs and suspense",
        into=("rating_schema",),
        dbt_var="rating_schema",
    ),
    Setting(
        "CDR_TARIFF_SCHEMA",
        identifier(),
        "tariffs",
        "where dbt seeds the tariff plan",
        into=("tariff_schema",),
        dbt_var="tariff_schema",
    ),
    Setting(
        "CDR_BILLING_SCHEMA",
        identifier(),
        "billing",
        "dbt's bills and plan catalogue",
        into=("billing_schema",),
        dbt_var="billing_schema",
    ),
    Setting(
        "CDR_MARTS_SCHEMA",
        identifier(),
        "marts",
        "dbt's marts, what the BI tools read",
        into=("marts_schema",),
        dbt_var="marts_schema",
    ),
    Setting(
        "CDR_BI_ROLE",
        identifier(),
        "cdr_bi",
        "the BI tool's role: it may select the marts and nothing else",
        into=("bi_role",),
        dbt_var="bi_role",
    ),
    Setting(
        "CDR_BI_PASSWORD",
        text(),
        "",
        "the BI role's password (Power BI's data source credentials), never in git; or a file "
        "`CDR_BI_PASSWORD_FILE` names; neither set with `CDR_ENV=local`: the local stack's generated one",
        into=("bi_password",),
        secret=True,
        default_file=_local_stack_password("CDR_BI_ROLE"),
        default_doc="empty (local: `.stack/postgres/secrets/<BI role>.password`)",
    ),
    Setting(
        "CDR_DBT_TARGET",
        choice("", *WAREHOUSE_KINDS),
        "",
        "the dbt target; empty: the warehouse kind",
        into=("dbt_target",),
    ),
    Setting(
        "CDR_INVOICE_ISSUER_NAME",
        text(),
        "CDR Platform demo operator",
        "the operator's name on its bills' documents (PDF)",
        into=("invoice_issuer_name",),
    ),
    Setting(
        "CDR_INVOICE_ISSUER_ADDRESS",
        text(),
        "",
        "its postal address on the documents, lines separated by `|`",
        into=("invoice_issuer_address",),
    ),
    Setting(
        "CDR_BILLING_CLOSE_DAY",
        integer(1, 28),
        5,
        "the day of month M+1 on which the close_billing_month schedule (off until turned on) closes month M",
        into=("billing_close_day",),
    ),
    # -- tariff and rating
    Setting(
        "CDR_TARIFF_TIMEZONE",
        timezone(),
        DEFAULT_TARIFF_TIMEZONE,
        "the operator's time zone: tariff time bands, weekdays, rating days and billing months",
        into=("tariff_timezone",),
    ),
    Setting(
        "CDR_RATING_ROUNDING_DECIMALS",
        integer(0, 12),
        5,
        "CGRateS' rounding of each increment's cost",
        into=("rating_rounding_decimals",),
    ),
    Setting(
        "CDR_RATING_IO",
        choice("", "copy", "jdbc"),
        "",
        "how rating reads and writes the warehouse: `copy` (PostgreSQL), `jdbc` (any); empty: by engine",
        into=("rating_io",),
    ),
    # -- mediation
    Setting(
        "CDR_MEDIATION_MAX_OFFSETS_PER_TRIGGER",
        integer(1),
        250_000,
        "messages per micro-batch at most (the driver's memory)",
        into=("mediation_max_offsets_per_trigger",),
    ),
    Setting(
        "CDR_MAX_REJECTION_RATE",
        number(0.0, 1.0),
        0.10,
        "the `rejection_rate` check warns above it",
        into=("max_rejection_rate",),
    ),
    Setting(
        "CDR_MEDIATION_MAX_ATTEMPTS",
        integer(1),
        3,
        "runs the sensor launches for the same new data before it gives up",
        into=("mediation_max_attempts",),
    ),
    Setting(
        "CDR_MEDIATION_RETRY_BACKOFF_S",
        integer(0),
        60,
        "wait after a failed mediation run, doubled after each further failure",
        into=("mediation_retry_backoff_s",),
    ),
    Setting(
        "CDR_MEDIATION_MAX_PAYLOAD_BYTES",
        integer(1),
        65_536,
        "longer messages are rejected as `PAYLOAD_TOO_LARGE`, never parsed",
        into=("mediation_max_payload_bytes",),
    ),
    Setting(
        "CDR_MEDIATION_MAX_BATCH_BYTES",
        integer(1024),
        32 * 1024 * 1024,
        "bytes of the Arrow batches a mediation task works on (with 20,000 messages at most)",
        into=("mediation_max_batch_bytes",),
    ),
    Setting(
        "CDR_REJECT_ECHO_BYTES",
        integer(0),
        4096,
        "bytes of the payload a reject on `error-cdrs` echoes (the reject store keeps it whole)",
        into=("reject_echo_bytes",),
    ),
    Setting(
        "CDR_MAX_DURATION_S",
        integer(1),
        86_400,
        "longer calls and sessions are rejected as `VALUE_OUT_OF_RANGE`",
        into=("max_duration_s",),
    ),
    Setting(
        "CDR_MAX_DATA_VOLUME_BYTES",
        integer(1),
        10**12,
        "bigger data volumes are rejected as `VALUE_OUT_OF_RANGE`",
        into=("max_volume_bytes",),
    ),
    Setting(
        "CDR_LATE_ARRIVAL_DAYS",
        integer(0),
        60,
        "CDRs that started longer ago are rejected as `STALE_TIMESTAMP`",
        into=("late_arrival_days",),
    ),
    Setting(
        "CDR_MEDIATION_STAGING",
        choice("", "direct", "jdbc"),
        "",
        "how mediation stores clean rows: `direct` (tasks COPY into PostgreSQL) or `jdbc` (Spark's JDBC writer "
        "stages them, one transaction merges: the SQL Server path); empty: by engine",
        into=("mediation_staging",),
    ),
    Setting(
        "CDR_MEDIATION_CHECKPOINT",
        folder(),
        lambda v: v["CDR_STACK_DIR"] / "checkpoints" / v["CDR_ENV"] / "mediation",
        "the mediation stream's checkpoint",
        into=("mediation_checkpoint",),
        default_doc="`.stack/checkpoints/<CDR_ENV>/mediation`",
    ),
    Setting(
        "CDR_MEDIATION_MIN_PARTITIONS",
        integer(0),
        0,
        "splits Kafka partitions over more Spark tasks; 0: one task per partition",
        into=("mediation_min_partitions",),
    ),
    Setting(
        "CDR_MEDIATION_CRASH_AT",
        text(),
        "",
        "fault injection for the crash tests: `after_stage:2` kills the driver at that point of batch 2 "
        "(`stitch_after_publish:N`: the stitching driver, between publishing batch N and recording it)",
        into=("mediation_crash_at",),
    ),
    # -- Spark
    Setting(
        "CDR_SPARK_MASTER",
        text(),
        "local[2]",
        "any Spark master URL (`spark://host:7077`: a standalone cluster)",
        into=("spark_master",),
    ),
    Setting(
        "CDR_SPARK_CONF",
        json_object(),
        {},
        "JSON object of extra Spark settings for every job (the Dagster `spark` resource passes its own)",
        into=("spark_conf",),
    ),
    Setting(
        "CDR_SPARK_CORES",
        integer(1),
        8,
        "cores of a Spark cluster (a `local[N]` master says its own)",
        into=("spark_cores",),
    ),
    Setting("CDR_SPARK_DRIVER_MEMORY", text(), "2g", "the Spark driver's memory", into=("spark_driver_memory",)),
    Setting(
        "CDR_SPARK_SHUFFLE_PARTITIONS",
        integer(1),
        4,
        "`spark.sql.shuffle.partitions`",
        into=("spark_shuffle_partitions",),
    ),
    Setting("CDR_SPARK_UI", flag(), False, "the Spark UI of each driver", into=("spark_ui",)),
    Setting(
        "CDR_SPARK_LOG_LEVEL",
        choice("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"),
        "WARN",
        "Spark's log level",
        into=("spark_log_level",),
    ),
    Setting(
        "CDR_SPARK_CDS",
        choice("auto", "off"),
        "auto",
        "`auto`: Spark drivers map the class-data archive `make setup` records (`.stack/spark-cds/`), "
        "starting about 2 s sooner; `off`",
        into=("spark_cds",),
    ),
    Setting(
        "CDR_SPARK_JIT",
        choice("auto", "full"),
        "auto",
        "`auto`: bounded runs stop the driver's JIT at C1, which they cannot amortise; `full` keeps C2",
        into=("spark_jit",),
    ),
    Setting(
        "JAVA_HOME",
        folder(),
        None,
        "the Java that runs Kafka and Spark; empty: `java` on the PATH",
        into=("java_home",),
    ),
    # -- Power BI
    Setting(
        "CDR_POWERBI_WORKSPACE_ID",
        text(),
        "",
        "the Power BI service workspace of the semantic model",
        into=("powerbi_workspace_id",),
    ),
    Setting("CDR_POWERBI_DATASET_ID", text(), "", "its published semantic model", into=("powerbi_dataset_id",)),
    Setting("CDR_POWERBI_TENANT_ID", text(), "", "the service principal's tenant", into=("powerbi_tenant_id",)),
    Setting("CDR_POWERBI_CLIENT_ID", text(), "", "the service principal", into=("powerbi_client_id",)),
    Setting(
        "CDR_POWERBI_CLIENT_SECRET",
        text(),
        "",
        "its secret: all five set, the semantic model asset refreshes the published dataset",
        into=("powerbi_client_secret",),
        secret=True,
    ),
    # -- operations
    Setting(
        "CDR_SENSOR_INTERVAL_S", integer(1), 30, "how often the sensors look for new work", into=("sensor_interval_s",)
    ),
    Setting(
        "CDR_RUN_WATCHDOG",
        flag(),
        True,
        "`dead_runs_sensor` marks failed (to be re-executed) the runs whose worker process died",
        into=("run_watchdog",),
    ),
    Setting(
        "CDR_RUN_RETENTION_DAYS",
        number(above=0.0),
        7.0,
        "finished Dagster runs older than this are pruned by the nightly `housekeeping`",
        into=("run_retention_days",),
    ),
    Setting(
        "DAGSTER_HOME",
        folder(),
        None,
        "the Dagster instance (`make` sets `.dagster_home/`); empty: none, as Dagster's own default",
        into=("dagster_home",),
    ),
    Setting(
        "CDR_RUN_ID",
        text(),
        "",
        "set by Dagster's Spark resource for its drivers: the run they belong to",
        into=("run_id",),
    ),
    Setting(
        FAILURE_FILE_ENV,
        folder(),
        None,
        "set by Dagster's Spark resource for its drivers: where a failed driver writes its cause",
        into=("failure_file",),
    ),
    # -- the demo
    Setting("DEMO_CDR_COUNT", integer(1), 100_000, "CDRs `make demo` generates", into=("demo_cdr_count",)),
    Setting("DEMO_SEED", integer(0), 42, "the demo generator's seed", into=("demo_seed",)),
    Setting(
        "DEMO_PRODUCER",
        choice("kafka-python", "confluent"),
        "kafka-python",
        "the demo's producer",
        into=("demo_producer",),
    ),
)
SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def read_settings(environ: Mapping[str, str] | None = None, until: str | None = None) -> dict[str, Any]:
    """Every setting's value (up to `until`), parsed and checked, in declaration order (a computed
    default sees the values before it). An empty variable counts as unset. An unset secret is read
    from a file if it has one (`secret_file`). An invalid value raises SettingError naming its
    variable."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if until is not None and until in values:
            break
        raw = environ.get(s.name, "")
        raw = raw if s.secret else raw.strip()
        if raw == "" and s.secret:
            raw = _read_secret_file(s, secret_file(s, values, environ))
        if raw == "":
            values[s.name] = s.default(values) if callable(s.default) else s.default
            continue
        try:
            values[s.name] = s.type.parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if s.secret else repr(raw)
            raise SettingError(f"environment variable {s.name} {exc}, got {shown}") from None
    return values


def secret_file(declared: Setting, values: Mapping[str, Any], environ: Mapping[str, str]) -> Path | None:
    """The file an unset secret is read from: the one `<NAME>_FILE` names (the Docker secrets
    convention: the variable itself, when set, wins), else its default file if that exists; None."""
    named = environ.get(f"{declared.name}_FILE", "").strip()
    if named:
        return Path(named).expanduser()
    path = declared.default_file(dict(values)) if declared.default_file else None
    return path if path is not None and path.is_file() else None


def _read_secret_file(declared: Setting, path: Path | None) -> str:
    """The secret a file holds, without the line end an editor or `echo` adds; "" without a file."""
    if path is None:
        return ""
    try:
        return path.read_text().rstrip("\r\n")
    except OSError as exc:
        raise SettingError(f"{declared.name}: cannot read the file {path} ({exc.strerror})") from None


def export_file_secrets(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set each secret read from a file (`secret_file`) as its variable, where it is unset, in this
    process's environment (or `environ`): Dagster reads secrets as `EnvVar(NAME)`, and child
    processes (dagster dev's code servers and run workers, dbt, the Spark drivers) inherit them.
    Called where a process starts (the `cdr` command, the code location, the tests, the
    benchmarks). The names it set (never the values)."""
    environ = os.environ if environ is None else environ
    try:
        values = read_settings(environ)
    except SettingError:  # reported, naming its variable, where the process loads its settings
        return []
    exported = []
    for s in SETTINGS:
        if s.secret and not environ.get(s.name) and values[s.name]:
            environ[s.name] = s.type.format(values[s.name])
            exported.append(s.name)
    return exported


def setting(name: str) -> Any:
    """One setting's value (read with those declared before it, which its default may need)."""
    if name not in SETTINGS_BY_NAME:
        raise KeyError(f"{name} is not a declared setting (cdr_platform.lib.settings.SETTINGS)")
    return read_settings(until=name)[name]


def process_environment(**overrides: str) -> dict[str, str]:
    """This process's environment with `overrides`: what a child process (a Spark driver, Kafka,
    dagster dev) is started with."""
    return {**os.environ, **overrides}


def set_process_default(name: str, value: str) -> str:
    """Set an environment variable for this process and its children unless it is set; its value."""
    return os.environ.setdefault(name, value)


def settings_table() -> str:
    """The README's settings table (Markdown), from SETTINGS."""
    lines = ["| variable | default | type | what it sets |", "|---|---|---|---|"]
    for s in SETTINGS:
        lines.append(f"| `{s.name}` | {s.shown_default()} | {s.type.describe} | {s.doc} |")
    return "\n".join(lines)


# -- what the platform reads: built from SETTINGS by load_settings() ---------------------------


@dataclass(frozen=True)
class KafkaSettings:
    """The brokers, how to reach them (cdr_platform.lib.kafka_clients turns this into each client's
    options) and the CDR topics."""

    bootstrap_servers: str
    raw_cdrs_topic: str
    error_cdrs_topic: str
    topic_partitions: int
    max_message_bytes: int
    replication_factor: int = 1
    min_insync_replicas: int = 1
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)  # never printed
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password: str = field(default="", repr=False)
    ssl_check_hostname: bool = True
    partials_topic: str = "raw-cdr-partials"


def _libpq_value(value: str) -> str:
    """A value of a libpq connection string: quoted when it is empty or holds a space, a quote or a
    backslash (a password may)."""
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class WarehouseSettings:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)  # never printed
    kind: str = "postgres"  # postgres (local) or sqlserver (production)
    trust_server_certificate: bool = False  # SQL Server: a development server's self-signed certificate

    def conninfo(self, database: str | None = None) -> str:
        """libpq's keyword/value string (a value with a space, a quote or a backslash quoted)."""
        parts = [
            f"host={_libpq_value(self.host)}",
            f"port={self.port}",
            f"dbname={_libpq_value(database or self.database)}",
            f"user={_libpq_value(self.user)}",
            "connect_timeout=5",
        ]
        if self.password:
            parts.append(f"password={_libpq_value(self.password)}")
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
    kafka_sasl_ssl_port: int = 19094

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

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The values of SETTINGS, grouped as the code reads them (each field's meaning: SETTINGS)."""

    kafka: KafkaSettings
    warehouse: WarehouseSettings
    stack: StackSettings
    environment: str
    project_dir: Path
    data_dir: Path
    landing_dir: Path
    collection_settle_s: int
    duplicate_content_tolerance_s: int
    partial_timeout_s: int
    reference_dir: Path | None
    conformance_dir: Path
    mediation_schema: str
    rating_schema: str
    tariff_schema: str
    billing_schema: str
    marts_schema: str
    bi_role: str
    bi_password: str = field(repr=False)
    dbt_target: str
    invoice_issuer_name: str
    invoice_issuer_address: str
    billing_close_day: int
    tariff_timezone: str
    rating_rounding_decimals: int
    rating_io: str
    mediation_max_offsets_per_trigger: int
    max_rejection_rate: float
    mediation_max_attempts: int
    mediation_retry_backoff_s: int
    mediation_max_payload_bytes: int
    mediation_max_batch_bytes: int
    reject_echo_bytes: int
    max_duration_s: int
    max_volume_bytes: int
    late_arrival_days: int
    mediation_staging: str
    mediation_checkpoint: Path
    mediation_min_partitions: int
    mediation_crash_at: str
    spark_master: str
    spark_conf: dict[str, str]
    spark_cores: int
    spark_driver_memory: str
    spark_shuffle_partitions: int
    spark_ui: bool
    spark_log_level: str
    spark_cds: str
    spark_jit: str
    java_home: Path | None
    powerbi_workspace_id: str
    powerbi_dataset_id: str
    powerbi_tenant_id: str
    powerbi_client_id: str
    powerbi_client_secret: str = field(repr=False)
    sensor_interval_s: int
    run_watchdog: bool
    run_retention_days: float
    dagster_home: Path | None
    run_id: str
    failure_file: Path | None
    demo_cdr_count: int
    demo_seed: int
    demo_producer: str

    @property
    def dbt_target_name(self) -> str:
        """The dbt target: CDR_DBT_TARGET, else the warehouse kind (postgres / sqlserver)."""
        return self.dbt_target or self.warehouse.kind


SECTIONS = {"kafka": KafkaSettings, "warehouse": WarehouseSettings, "stack": StackSettings}


def value_in(settings: Settings, declared: Setting) -> Any:
    """The value of `declared` in `settings` (where load_settings put it)."""
    value: Any = settings
    for part in declared.into[0].split("."):
        value = getattr(value, part)
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The platform's settings from the environment (or `environ`), each checked (SettingError)."""
    values = read_settings(environ)
    grouped: dict[str, dict[str, Any]] = {section: {} for section in ("", *SECTIONS)}
    for s in SETTINGS:
        for path in s.into:
            section, _, attribute = path.rpartition(".")
            grouped[section][attribute] = values[s.name]
    sections = {name: cls(**grouped[name]) for name, cls in SECTIONS.items()}
    return Settings(**sections, **grouped[""])


def production_problems(settings: Settings) -> list[str]:
    """What makes `settings` unsafe for production, one line per problem, each naming its variable
    (a secret's value is never shown): empty if none. Production (CDR_ENV=prod) refuses to load the
    code location or run a `cdr` command while this lists anything
    (`cdr_platform.utils.environment_helpers.require_safe_production`)."""
    problems = []
    warehouse, kafka = settings.warehouse, settings.kafka
    if not warehouse.password.strip():
        problems.append("CDR_WAREHOUSE_PASSWORD is empty: the warehouse login needs a password")
    if warehouse.user.strip().lower() == "sa":
        problems.append(
            "CDR_WAREHOUSE_USER is SQL Server's administrator login `sa`: use a login of the platform's own, "
            "with the rights it needs only"
        )
    if warehouse.trust_server_certificate:
        problems.append(
            "CDR_WAREHOUSE_TRUST_SERVER_CERTIFICATE is true: the warehouse's TLS certificate would not be "
            "verified, so anyone on the way could pose as the warehouse"
        )
    protocol = kafka.security_protocol
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        in_clear = "CDRs" if protocol == "PLAINTEXT" else "the SASL credentials and the CDRs"
        problems.append(
            f"CDR_KAFKA_SECURITY_PROTOCOL is {protocol}: {in_clear} would cross the network in clear "
            "(use SSL or SASL_SSL)"
        )
    if protocol in ("SSL", "SASL_SSL") and not kafka.ssl_check_hostname:
        problems.append(
            "CDR_KAFKA_SSL_CHECK_HOSTNAME is false: any certificate the CA signed could pose as the brokers"
        )
    if protocol.startswith("SASL_"):
        if not kafka.sasl_username.strip():
            problems.append(f"CDR_KAFKA_SASL_USERNAME is empty: {protocol} needs the SASL user")
        if not kafka.sasl_password.strip():
            problems.append(f"CDR_KAFKA_SASL_PASSWORD is empty: {protocol} needs the SASL user's password")
    return problems


# Warehouse schemas the pipeline writes, in dependency order. One list, used by the local
# stack (creates them) and by docs/tests; SQL Server gets the same names.
WAREHOUSE_SCHEMAS = ("reference", "mediation", "rating", "billing", "marts")
