"""The Dagster code location: every definition under cdr_platform/defs, loaded by folder, and the
project-wide automation sensor that runs the declarative conditions (billing months, the BI outputs)."""

from pathlib import Path

import dagster as dg

from cdr_platform.lib.settings import sensor_interval_s

automation = dg.AutomationConditionSensorDefinition(
    "cdr_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,  # the pipeline flows by itself under `make dev`
    minimum_interval_seconds=sensor_interval_s(),
    # a run per billing month rather than a backfill: a backfill refuses the current month, whose
    # later days are not partitions yet
    emit_backfills=False,
    description="Evaluates the assets' automation conditions: bills the months whose rating days changed, "
    "and refreshes the dashboard and the Power BI model and report after the marts.",
)

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    # Steps run in their run's process: the heavy work is out of process anyway (Spark drivers,
    # dbt), and a process per step reloaded the code location for every check (seconds each).
    dg.Definitions(sensors=[automation], executor=dg.in_process_executor),
)
