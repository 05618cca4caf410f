"""Is a process still the one we started? For the run watchdog (defs/operations/sensors.py).

A pid alone can be reused, and a dead child may linger as a zombie: a process counts as alive
when it exists, is not a zombie, and started no later than `started_by` (the time its run
reported itself started, from the same clock).
"""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, started_by: float | None = None, slack_s: float = 5.0) -> bool:
    """Whether process `pid` runs (not a zombie) and, with `started_by` (epoch seconds), started no
    later than that: a newer process under the same pid is another one."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: existence is all we can tell
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):
        return False
    boot = _boot_time()
    if started_by is None or boot is None:
        return True
    process_start = boot + int(fields[19]) / _CLOCK_TICKS  # field 22 of stat: start time in ticks
    return process_start <= started_by + slack_s
