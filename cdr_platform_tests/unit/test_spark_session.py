"""The driver JVM's options: bounded runs skip the optimising JIT, long runs keep it; the class-data archive."""

import os

import pytest

from cdr_platform.lib.spark.session import driver_java_options


def test_bounded_runs_stop_at_c1_and_continuous_runs_keep_c2():
    assert driver_java_options(bounded=True).split() == ["-Duser.timezone=UTC", "-XX:TieredStopAtLevel=1"]
    assert driver_java_options(bounded=False).split() == ["-Duser.timezone=UTC"]


def test_the_full_jit_can_be_asked_for_and_a_wrong_value_is_refused(monkeypatch):
    from cdr_platform.lib.settings import load_settings

    monkeypatch.setenv("CDR_SPARK_JIT", "full")
    assert driver_java_options(bounded=True, jit=load_settings().spark_jit).split() == ["-Duser.timezone=UTC"]
    monkeypatch.setenv("CDR_SPARK_JIT", "c1")
    with pytest.raises(ValueError, match="CDR_SPARK_JIT"):
        load_settings()


# -- the class-data archive (cdr_platform.lib.spark.startup_archive) -------------------------


def test_the_driver_maps_the_class_data_archive_it_is_given(tmp_path):
    archive = tmp_path / "driver-0123.jsa"
    assert f"-XX:SharedArchiveFile={archive}" in driver_java_options(bounded=True, startup_archive=archive).split()
    assert not any("SharedArchiveFile" in o for o in driver_java_options(bounded=True).split())


def test_the_archive_fingerprint_follows_the_jvm_and_the_class_path(tmp_path):
    from cdr_platform.lib.spark.startup_archive import fingerprint

    java, jar = tmp_path / "java", tmp_path / "spark-sql-kafka.jar"
    java.write_bytes(b"jvm")
    jar.write_bytes(b"v1")
    first = fingerprint(str(java), "4.3.0", [str(jar)])
    assert fingerprint(str(java), "4.3.0", [str(jar)]) == first  # stable while nothing changes
    assert fingerprint(str(java), "4.3.1", [str(jar)]) != first  # another PySpark
    jar.write_bytes(b"version 2")
    assert fingerprint(str(java), "4.3.0", [str(jar)]) != first  # another connector build
    extra = tmp_path / "mssql-jdbc.jar"
    extra.write_bytes(b"driver")
    assert fingerprint(str(java), "4.3.0", [str(jar), str(extra)]) != fingerprint(str(java), "4.3.0", [str(jar)])


@pytest.fixture
def stack_in(tmp_path, monkeypatch):
    """Settings whose stack folder is empty: no jars, no archive."""
    from cdr_platform.lib.settings import load_settings

    monkeypatch.setenv("CDR_STACK_DIR", str(tmp_path / "stack"))
    monkeypatch.delenv("CDR_SPARK_CDS", raising=False)
    return load_settings()


def test_an_archive_is_used_only_when_recorded_for_this_jvm_and_wanted(stack_in, monkeypatch):
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.spark.startup_archive import archive_path, usable_archive

    assert usable_archive(stack_in) is None  # not recorded yet
    path = archive_path(stack_in)
    assert path.parent == stack_in.stack.spark_cds_dir and path.name.startswith("driver-")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    assert usable_archive(stack_in) == path
    monkeypatch.setenv("CDR_SPARK_CDS", "off")
    assert usable_archive(load_settings()) is None
    monkeypatch.setenv("CDR_SPARK_CDS", "yes")
    with pytest.raises(ValueError, match="CDR_SPARK_CDS"):
        load_settings()


def test_recording_keeps_an_existing_archive_and_a_failed_recording_leaves_nothing(stack_in):
    from cdr_platform.lib.spark.startup_archive import archive_path, record

    said: list[str] = []
    # A real failure: the recording child finds no Spark jars in this empty stack folder.
    assert record(stack_in, say=said.append) is None
    assert "could not be recorded" in said[-1]
    assert list(stack_in.stack.spark_cds_dir.iterdir()) == []  # no partial archive left behind
    path = archive_path(stack_in)
    path.write_bytes(b"archive")
    assert record(stack_in, say=said.append) == path
    assert said[-1].endswith("up to date")


def test_a_new_archive_removes_older_fingerprints_and_dead_recordings_only(tmp_path):
    import subprocess
    import sys

    from cdr_platform.lib.spark.startup_archive import _remove_stale

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    current = tmp_path / "driver-new.jsa"
    older = tmp_path / "driver-old.jsa"
    abandoned = tmp_path / f"driver-new.jsa.{dead_pid}.partial"
    in_progress = tmp_path / f"driver-new.jsa.{os.getpid()}.partial"  # a live recording
    for path in (current, older, abandoned, in_progress):
        path.write_bytes(b"x")
    _remove_stale(current)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([current.name, in_progress.name])


def test_the_root_cause_of_a_task_failure_is_the_python_exception_that_ends_its_traceback():
    from cdr_platform.lib.spark.session import root_cause

    wrapped = (
        "An exception was thrown from the Python worker. Please see the stack trace below.\n"
        "Traceback (most recent call last):\n"
        '  File "/work/cdr_platform/lib/rating/tasks.py", line 102, in read_slice\n'
        '    with cursor.copy(f"copy ({query}) to stdout (format csv)") as copy:\n'
        'psycopg.errors.UndefinedTable: relation "reference.subscribers" does not exist\n'
        "LINE 1: ...me_bytes from clean_cdrs c left join reference....\n"
        "\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException\n"
    )
    assert (
        root_cause(RuntimeError(wrapped))
        == 'psycopg.errors.UndefinedTable: relation "reference.subscribers" does not exist'
    )
    # no traceback: the first line
    assert root_cause(RuntimeError("warehouse 127.0.0.1:15432 is not reachable\nmore")) == (
        "warehouse 127.0.0.1:15432 is not reachable"
    )
