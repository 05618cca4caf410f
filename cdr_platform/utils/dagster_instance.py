"""The Dagster instance of the local stack: `dagster dev`'s DAGSTER_HOME/dagster.yaml.

Written by `cdr stack up` (so `make dev` and `make demo` have it) and by the `dagster dev` the
end-to-end tests and screenshots start. What it settles, for a pipeline under live traffic:

- the run queue: at most one run per pipeline stage (`cdr/stage` tag: mediation, rating, billing,
  marts, bi, rejects) at a time, 4 runs in all; rating, which a busy stream requests most, cannot
  take the slots billing and the marts need;
- run monitoring, and re-execution of a run whose worker died (`run_retries` with
  `retry_on_asset_or_op_failure: false`: a run that failed on its own is not retried, one whose
  process vanished is - the `dead_runs_sensor` marks those failed, see defs/operations);
- tick retention of the sensors and schedules (their history grows with every 30-second tick).

A dagster.yaml that someone wrote by hand (without this module's first line) is left alone.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "# written by cdr_platform.utils.dagster_instance"
STAGE_TAG = "cdr/stage"
MAX_CONCURRENT_RUNS = 4

LOCAL_INSTANCE = f"""{MARKER}: rewritten by `cdr stack up`; remove this line to keep your own
run_coordinator:
  module: dagster._core.run_coordinator.queued_run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: {MAX_CONCURRENT_RUNS}
    tag_concurrency_limits:
      - key: {STAGE_TAG}
        value:
          applyLimitPerUniqueValue: true
        limit: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
retention:
  schedule:
    purge_after_days: 7
  sensor:
    purge_after_days:
      skipped: 1
      failure: 7
      success: 7
telemetry:
  enabled: false
nux:
  enabled: false
"""


def prepare(dagster_home: Path) -> Path | None:
    """Write the local instance's dagster.yaml into `dagster_home` unless one of another origin is
    there; returns its path when written."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    if path.exists() and not path.read_text().startswith(MARKER):
        return None
    if not path.exists() or path.read_text() != LOCAL_INSTANCE:
        path.write_text(LOCAL_INSTANCE)
    return path
