"""The Spark driver's class-data archive is valid for this JVM and class path.

A driver started with -Xshare:on must map the archive or refuse to start, so a job that runs
proves the archive `make setup` recorded is the one every job's driver maps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cdr_platform.lib.settings import REPO_ROOT

pytestmark = pytest.mark.standalone  # no shared service: run beside the unit tests

_DRIVER = """
import json, sys
from pathlib import Path
from cdr_platform.lib.spark.session import build_spark_session, driver_java_options
archive = Path(sys.argv[1])
spark = build_spark_session("test-startup-archive", bounded=True, **{
    "spark.driver.extraJavaOptions": driver_java_options(True, archive) + " -Xshare:on"})
rows = spark.range(1000).count()
args = list(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
spark.stop()
print(json.dumps({"rows": rows, "jvm_args": args}))
"""


def test_the_recorded_archive_maps_into_a_spark_driver(settings):
    from cdr_platform.lib.spark.startup_archive import record, usable_archive

    if os.environ.get("CDR_SPARK_CDS") == "off":
        pytest.skip("CDR_SPARK_CDS=off: the jobs run without the archive")
    archive = record(settings)  # `make setup` recorded it; this records it only if it did not
    assert archive is not None and archive.is_file()
    assert usable_archive(settings) == archive  # what build_spark_session gives every job
    # its own process: a JVM's options are fixed when the process's first SparkContext starts it
    result = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(archive)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYSPARK_PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["rows"] == 1000
    assert "-Xshare:on" in out["jvm_args"] and f"-XX:SharedArchiveFile={archive}" in out["jvm_args"]
