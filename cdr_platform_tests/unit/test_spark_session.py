"""The driver JVM's options: bounded runs skip the optimising JIT, long runs keep it."""

import pytest

from cdr_platform.lib.spark.session import driver_java_options


def test_bounded_runs_stop_at_c1_and_continuous_runs_keep_c2(monkeypatch):
    monkeypatch.delenv("CDR_SPARK_JIT", raising=False)
    assert driver_java_options(bounded=True).split() == ["-Duser.timezone=UTC", "-XX:TieredStopAtLevel=1"]
    assert driver_java_options(bounded=False).split() == ["-Duser.timezone=UTC"]


def test_the_full_jit_can_be_asked_for_and_a_wrong_value_is_refused(monkeypatch):
    monkeypatch.setenv("CDR_SPARK_JIT", "full")
    assert driver_java_options(bounded=True).split() == ["-Duser.timezone=UTC"]
    monkeypatch.setenv("CDR_SPARK_JIT", "c1")
    with pytest.raises(ValueError, match="CDR_SPARK_JIT"):
        driver_java_options(bounded=True)
