"""The Dagster code location: every definition under cdr_platform/defs, loaded by folder, and the
project-wide automation sensor that runs the declarative conditions (billing months, marts)."""

from pathlib import Path

import dagster as dg

from cdr_platform.lib.settings import sensor_interval_s

automation = dg.AutomationConditionSensorDefinition(
    "cdr_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,  # the pipeline flows by itself under `make dev`
    minimum_interval_seconds=sensor_interval_s(),
    description="Evaluates the assets' automation conditions: bills the months whose rating days changed, "
    "then rebuilds the marts.",
)

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    dg.Definitions(sensors=[automation]),
)
