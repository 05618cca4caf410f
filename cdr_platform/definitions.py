"""The Dagster code location: every definition under cdr_platform/defs, loaded by folder, and the
project-wide automation sensors that run the declarative conditions (billing months, the BI outputs).

Two automation sensors rather than one, so that their runs carry their pipeline stage (the run
queue allows one run per stage at a time: utils/dagster_instance.py).

The environment (CDR_ENV) shapes the folder's content: the modules whose definitions differ build
them in a `@dg.definitions` function. Production has no synthetic traffic: no generator asset, no
`generate_cdrs` or `cdr_pipeline` job, no generated reference data, and raw-cdrs is an external
asset fed by the network (defs/ingest/assets.py, defs/ingest/checks.py, defs/pipeline.py). In
production the code location refuses to load on unsafe settings, listing every problem at once
(utils/environment_helpers.require_safe_production): before anything is defined, so an operator
sees the list as the code location's load error.
"""

from pathlib import Path

import dagster as dg

from cdr_platform.lib.settings import export_file_secrets, setting
from cdr_platform.utils.dagster_instance import STAGE_TAG
from cdr_platform.utils.environment_helpers import require_safe_production

# Secrets read from files (<NAME>_FILE, the local stack's generated passwords) into the environment:
# the resources read them as EnvVar, the run workers, dbt and the Spark drivers inherit them.
export_file_secrets()
require_safe_production(code_location=True)

BILLING = dg.AssetSelection.groups("billing")

automation = dg.AutomationConditionSensorDefinition(
    "cdr_automation",
    target=BILLING,
    default_status=dg.DefaultSensorStatus.RUNNING,  # the pipeline flows by itself under `make dev`
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    # a run per billing month rather than a backfill: a backfill refuses the current month, whose
    # later days are not partitions yet
    emit_backfills=False,
    run_tags={STAGE_TAG: "billing"},
    description="Evaluates the billing months' automation condition: bills the months whose rating days changed.",
)
bi_automation = dg.AutomationConditionSensorDefinition(
    "cdr_bi_automation",
    target=dg.AssetSelection.all() - BILLING,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=setting("CDR_SENSOR_INTERVAL_S"),
    run_tags={STAGE_TAG: "bi"},
    description="Refreshes the dashboard and the Power BI model and report after the marts.",
)

defs = dg.Definitions.merge(
    dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
    # Steps run in their run's process: the heavy work is out of process anyway (Spark drivers,
    # dbt), and a process per step reloaded the code location for every check (seconds each).
    dg.Definitions(sensors=[automation, bi_automation], executor=dg.in_process_executor),
)
