"""The jars and the java the Spark jobs run with: fetched by the local stack tool, read here."""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

from cdr_platform.lib.settings import Settings, load_settings, setting


def spark_jar_paths(settings: Settings | None = None) -> list[str]:
    """The jars the Spark jobs add (connector + JDBC drivers); empty until `up`/`jars` ran."""
    settings = settings or load_settings()
    return sorted(glob.glob(str(settings.stack.spark_jars_dir / "*.jar")))


def java_executable() -> str:
    """The java that runs Kafka here and that spark-submit launches (JAVA_HOME first, then PATH)."""
    java_home = setting("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise RuntimeError("java is not installed (OpenJDK 17 or newer runs Kafka and Spark)")
    return java
