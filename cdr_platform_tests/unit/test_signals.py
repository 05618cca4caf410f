"""A process that inherited SIGINT ignored (started from a background shell, as CI does) still
passes a default SIGTERM to the children it starts after running a Dagster job."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

# In a child that starts with SIGINT ignored: optionally restore the defaults, run a Dagster job
# in the main thread (it maps SIGTERM onto SIGINT's handler), then print the ignored-signal mask
# of a grandchild started afterwards, as Dagster's log tails and `dagster dev` are.
CHILD = """
import subprocess, sys
import dagster as dg
from cdr_platform.utils.signals import restore_default_interrupts
if sys.argv[1] == "restore":
    restore_default_interrupts()

@dg.asset
def one():
    return 1

dg.materialize([one])
status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
print(next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")))
"""


def _grandchild_ignores_sigterm(mode: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as a background shell starts it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return bool(int(result.stdout.split()[-1], 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_after_a_dagster_run_children_ignore_sigterm_unless_the_defaults_are_restored():
    assert _grandchild_ignores_sigterm("as_inherited")  # the trap: Dagster copies SIGINT's ignore
    assert not _grandchild_ignores_sigterm("restore")


def test_a_subprocess_ended_by_sigterm_is_named_as_interrupted_and_an_exit_code_is_not():
    from cdr_platform.defs.dbt.assets import signal_that_ended

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    child.send_signal(signal.SIGTERM)
    assert signal_that_ended(child.wait(10)) == "SIGTERM"
    failed = subprocess.run([sys.executable, "-c", "raise SystemExit(2)"])
    assert signal_that_ended(failed.returncode) is None
    assert signal_that_ended(None) is None
