"""The SparkSession of the platform's jobs: master URL, jars and time zone from settings."""

from __future__ import annotations

import sys
from pathlib import Path

from cdr_platform.lib.settings import Settings, load_settings, set_process_default

# Option and configuration values Spark hides in its UI, logs and plans (key or value matching)
SPARK_REDACTION_REGEX = r"(?i)secret|password|token|access[.]?key|keystore[.]key|jaas|PRIVATE KEY"


def arrow_schema_from_ddl(ddl: str):
    """A Spark DDL schema ("a string, b long, c decimal(18,6)") as an Arrow schema.

    mapInArrow bodies run in Python workers, where Spark's own DDL parser (which needs a
    SparkContext) is not available; this covers the types the jobs use.
    """
    import re

    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "binary": pa.binary(),
        "int": pa.int32(),
        "long": pa.int64(),
        "short": pa.int16(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    fields = []
    for field in ddl.split(", "):
        name, kind = field.split(maxsplit=1)
        decimal = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", kind)
        fields.append((name, pa.decimal128(int(decimal[1]), int(decimal[2])) if decimal else simple[kind]))
    return pa.schema(fields)


def root_cause(exc: BaseException) -> str:
    """The one line that says why a Spark job failed.

    An exception raised in a Python task reaches the driver wrapped in "An exception was thrown
    from the Python worker", pages of Java stack, and the task's own traceback: the cause is the
    exception line that ends the last Python traceback (a warehouse error, say), not the first line.
    """
    lines = str(exc).splitlines()
    cause = None
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            # the frames are indented; the first line that is not is "module.Class: message"
            ending = next((later for later in lines[i + 1 :] if later.strip() and not later[0].isspace()), None)
            cause = ending or cause
    first_line = next((line.strip() for line in lines if line.strip()), repr(exc))
    return (cause or first_line).strip()[:1000]


COUNT_ROWS_SCHEMA = "rows long"


def count_rows(batches):
    """mapInArrow body that keeps nothing and yields how many rows its task saw (COUNT_ROWS_SCHEMA):
    the Python path of a job without the job's work, for benchmarks and warm-ups."""
    import pyarrow as pa

    rows = 0
    for batch in batches:
        rows += batch.num_rows
    yield pa.RecordBatch.from_pydict({"rows": [rows]})


def driver_java_options(bounded: bool, startup_archive: Path | None = None, jit: str = "auto") -> str:
    """JVM options of the driver (in local mode, also the executor).

    A bounded run (minutes, then exit) spends a large share of its CPU in the JIT's optimising
    compiler, C2, on code it then runs too briefly to gain from: measured on the mediation
    benchmark, the compiler threads took 16 of the driver JVM's 32 CPU-seconds. Bounded runs
    therefore stop at C1 unless CDR_SPARK_JIT=full; continuous mode keeps C2, which pays back
    over a long run. `startup_archive`: the class-data archive to map (see startup_archive).
    """
    # JDBC binds timestamps in the JVM's zone: keep it UTC like the warehouse columns
    options = ["-Duser.timezone=UTC"]
    if bounded and jit == "auto":
        options.append("-XX:TieredStopAtLevel=1")
    if startup_archive is not None:
        options.append(f"-XX:SharedArchiveFile={startup_archive}")
    return " ".join(options)


def build_spark_session(app_name: str, settings: Settings | None = None, *, bounded: bool = False, **extra_conf: str):
    """The platform's SparkSession; `bounded` for a run that ends by itself (see driver_java_options)."""
    from pyspark.sql import SparkSession

    from cdr_platform.lib.spark.jars import spark_jar_paths
    from cdr_platform.lib.spark.startup_archive import usable_archive

    settings = settings or load_settings()
    jars = spark_jar_paths(settings)
    if not jars:
        raise RuntimeError(
            f"no Spark jars in {settings.stack.spark_jars_dir}: run `make setup` (or `cdr stack setup`) first"
        )
    # Executors must run the same Python as the driver (the project's venv).
    set_process_default("PYSPARK_PYTHON", sys.executable)
    # Spark binds its driver and block manager to loopback unless told otherwise (a cluster
    # deployment sets SPARK_LOCAL_IP, or spark.driver.host, to a routable address).
    local_ip = set_process_default("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(jars))
        .config("spark.sql.session.timeZone", "UTC")
        .config(
            "spark.driver.extraJavaOptions", driver_java_options(bounded, usable_archive(settings), settings.spark_jit)
        )
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "20000")
        .config("spark.ui.enabled", "true" if settings.spark_ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark's own list, plus the Kafka client's private key and JAAS line (cdr_platform.lib.kafka_clients)
        .config("spark.redaction.regex", SPARK_REDACTION_REGEX)
        .config("spark.driver.host", local_ip)
        .config("spark.driver.bindAddress", local_ip)
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
        )
    )
    for key, value in {**settings.spark_conf, **extra_conf}.items():  # the Spark resource's, then the job's
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark_log_level)
    return spark
