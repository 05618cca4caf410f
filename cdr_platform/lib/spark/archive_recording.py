"""The run that records the Spark driver's class-data archive (see startup_archive).

    python -m cdr_platform.lib.spark.archive_recording TARGET.jsa    # startup_archive.record() runs it

A child process of its own: the JVM writes the archive when it exits, and it must load the
classes every job starts with: Python workers and Arrow, SQL code generation, Kafka's source.
"""

from __future__ import annotations

import sys

from cdr_platform.lib.settings import load_settings


def record_into(target: str) -> int:
    """Child process: run the code paths every job starts with, then let the JVM exit, which is
    when it writes the archive."""
    from pyspark import SparkContext

    from cdr_platform.lib.spark.session import COUNT_ROWS_SCHEMA, build_spark_session, count_rows, driver_java_options

    settings = load_settings()
    spark = build_spark_session(
        "cdr-startup-archive",
        settings,
        bounded=True,
        **{"spark.driver.extraJavaOptions": f"{driver_java_options(True)} -XX:ArchiveClassesAtExit={target}"},
    )
    # Python workers and Arrow (mapInArrow), SQL codegen, and the Kafka source's relation
    # (resolved without a broker: nothing is read)
    rows = (
        spark.range(50_000, numPartitions=2)
        .selectExpr("id", "cast(id as string) as text", "id % 7 as k")
        .mapInArrow(count_rows, COUNT_ROWS_SCHEMA)
        .collect()
    )
    assert sum(r["rows"] for r in rows) == 50_000
    spark.range(1_000).selectExpr("id % 3 as k").groupBy("k").count().collect()
    kafka_source = spark.read.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9")
    assert kafka_source.option("subscribe", "none").load().schema is not None
    gateway = SparkContext._gateway
    spark.stop()
    # PySpark's JVM exits when its stdin closes; wait for that, the archive is written on exit
    gateway.proc.stdin.close()
    return gateway.proc.wait(timeout=600)


if __name__ == "__main__":
    sys.exit(record_into(sys.argv[1]))
