"""Default interrupt signals, whatever the process inherited.

A process started in the background by a non-interactive shell (CI, `make test &`) inherits
SIGINT ignored. Dagster maps SIGTERM onto SIGINT's handler whenever it runs a job in the main
thread (dagster._utils.interrupts), so the process then ignores SIGTERM too, and every child it
starts afterwards inherits the ignore: Dagster's `tail` of the captured logs (each run waited
2 x 30 s for them, and they leaked), `dagster dev`, Kafka, a Spark master - none stopped on
SIGTERM any more.
"""

from __future__ import annotations

import signal


def restore_default_interrupts() -> None:
    """In the main thread: SIGINT raises KeyboardInterrupt and SIGTERM ends the process again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def default_signals_in_child() -> None:
    """A `preexec_fn`: the child starts with default SIGINT and SIGTERM, as if from a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
