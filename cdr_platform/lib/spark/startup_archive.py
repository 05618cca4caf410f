"""The Spark driver's class-data-sharing (CDS) archive: the JVM starts with its classes mapped.

A Spark driver loads and verifies tens of thousands of classes while the session starts and
during its first job, every run: each Dagster-launched mediation or rating run is a fresh JVM.
Java 17 can record the classes a run loaded into an archive (`-XX:ArchiveClassesAtExit`) and
map it in later JVMs (`-XX:SharedArchiveFile`). Measured on this machine (2 cores): the
SparkSession was up in 2.4-3.1 s with the archive against 4.2-5.5 s without; mediating
1,000,000 CDRs took 21.2 s of query against 24.3 s, and 25.0 s of process against 30.2 s
(medians of 3 paired runs).

    cdr stack setup     # fetches the jars, then records it if missing (`make setup` runs this)

An archive is only valid for the JVM and the class path that recorded it, so its file name
carries a fingerprint of both (the java binary, the PySpark version, the jars the jobs add): a
new JDK or PySpark simply finds no archive until the next `make setup`, and an older one is
removed when a new one is recorded. A JVM that cannot map the archive starts without it, as
before (`-Xshare:auto`, the default). CDR_SPARK_CDS=off turns it off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from cdr_platform.lib.settings import Settings, load_settings, process_environment, work_dir


def fingerprint(java: str, pyspark_version: str, jars: list[str]) -> str:
    """What the archive depends on: the JVM build and the class path (PySpark's jars, ours)."""
    digest = hashlib.sha256()
    java_file = Path(java).resolve()
    stat = java_file.stat()
    parts = [str(java_file), str(stat.st_size), str(stat.st_mtime_ns), pyspark_version]
    for jar in sorted(jars):
        parts += [Path(jar).name, str(Path(jar).stat().st_size)]
    digest.update("\n".join(parts).encode())
    return digest.hexdigest()[:16]


def archive_path(settings: Settings) -> Path:
    import pyspark

    from cdr_platform.lib.spark.jars import java_executable, spark_jar_paths

    key = fingerprint(java_executable(), pyspark.__version__, spark_jar_paths(settings))
    return settings.stack.spark_cds_dir / f"driver-{key}.jsa"


def usable_archive(settings: Settings) -> Path | None:
    """The recorded archive for this JVM and class path, if there is one and it is wanted."""
    if settings.spark_cds == "off":
        return None
    try:
        path = archive_path(settings)
    except Exception:  # no java on PATH, no jars yet: the session reports those itself
        return None
    return path if path.is_file() else None


def record(settings: Settings | None = None, say=print) -> Path | None:
    """Record the archive unless it exists; a failure only costs the speed-up, never the run."""
    settings = settings or load_settings()
    if settings.spark_cds == "off":
        say("[spark] class-data archive: off (CDR_SPARK_CDS=off)")
        return None
    log = settings.stack.directory / "logs" / "spark-cds.log"
    try:
        path = archive_path(settings)
    except Exception as exc:  # no java yet, say: the jobs report that themselves
        say(f"[spark] WARNING: no class-data archive: {exc}")
        return None
    if path.is_file():
        say(f"[spark] class-data archive: {path.name}, up to date")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # renamed once complete
    say("[spark] recording the driver's class-data archive (once per JDK and PySpark, under a minute)")
    started = time.perf_counter()
    try:
        with log.open("w") as out:
            result = subprocess.run(
                [sys.executable, "-m", "cdr_platform.lib.spark.archive_recording", str(partial)],
                cwd=work_dir(),
                env=process_environment(PYSPARK_PYTHON=sys.executable),
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=900,
            )
        recorded = result.returncode == 0 and partial.is_file() and partial.stat().st_size > 0
    except subprocess.TimeoutExpired:
        recorded = False
    if not recorded:
        partial.unlink(missing_ok=True)
        say(
            f"[spark] WARNING: the class-data archive could not be recorded (see {log}); "
            "Spark starts without it, only slower"
        )
        return None
    os.replace(partial, path)
    _remove_stale(path)
    say(f"[spark] class-data archive recorded in {time.perf_counter() - started:.0f} s: {path}")
    return path


def _remove_stale(current: Path) -> None:
    """Archives of other fingerprints, and partial ones whose recording process is gone."""
    for other in current.parent.glob("driver-*.jsa*"):
        if other == current:
            continue
        if other.name.endswith(".partial"):
            if _running(int(other.name.split(".")[-2])):
                continue  # another setup is recording right now
        other.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        pass
    return True
