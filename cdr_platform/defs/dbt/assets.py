"""The dbt project's unpartitioned half: the seeds (tariff plan, plan catalogue, VAT) and the
marts Power BI reads. The billing months are the other half (defs/billing/assets.py).

Both run `dbt build` (models, their data tests as asset checks, unit tests) with the warehouse
resource's schemas as vars, and report row counts and column types to the UI.
"""

import json
import signal
import uuid
from functools import cache

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from cdr_platform.defs.blocking_checks import stop_if_upstream_checks_failed
from cdr_platform.defs.dbt.project import dbt_executable, dbt_project, dbt_target_dir
from cdr_platform.defs.dbt.translator import BILLING_TAG, TRANSLATOR
from cdr_platform.defs.resources import WarehouseResource
from cdr_platform.utils.dagster_instance import STAGE_TAG
from cdr_platform.utils.environment_helpers import get_dbt_target

MARTS_GROUP = "marts"


def run_dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, dbt_vars: dict, full_refresh: bool = False):
    """`dbt build` of the selected nodes, streamed as materializations and check results.
    `full_refresh`: seeds are recreated, not truncated (a seed whose columns changed, a plan
    attribute added, loads instead of failing); the marts are tables, rebuilt whole anyway.
    Its artifacts and logs go to a folder of its own under dbt_target_dir(), named as dagster-dbt
    names them (its default, `target/` of the project folder, is inside an installed package)."""
    args = ["build", "--vars", json.dumps(dbt_vars, sort_keys=True)] + (["--full-refresh"] if full_refresh else [])
    own = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    invocation = dbt.cli(args, context=context, target_path=dbt_target_dir() / own)
    try:
        # column types in the UI; no column lineage (it cannot follow the ephemeral staging CTEs)
        yield from invocation.stream().fetch_row_counts().fetch_column_metadata(with_column_lineage=False)
    except DagsterDbtCliRuntimeError as error:
        stopped_by = signal_that_ended(invocation.process.returncode)
        if stopped_by is None:
            raise
        # a stop of the whole process group (Ctrl-C, `dagster dev` or the container stopped) can reach
        # dbt before the run worker: say it was interrupted, not that the models failed
        raise dg.Failure(
            f"dbt was interrupted by {stopped_by} before it finished (the run was stopped, not a model "
            "failed); a billing month is swapped in whole or not at all, so re-running is safe",
            metadata={"dbt command": invocation.dbt_command},
        ) from error


def signal_that_ended(returncode: int | None) -> str | None:
    """The signal's name when a subprocess ended by one (a negative return code), else None."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


@cache
def warehouse_dbt_assets() -> dg.AssetsDefinition:
    """Seeds and marts of the dbt project as one unpartitioned multi-asset (cached: the manifest
    is read once)."""
    project = dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=TRANSLATOR,
        exclude=f"tag:{BILLING_TAG}",
        name="warehouse_dbt",
    )
    def warehouse_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        """Seeds and marts: `dbt build` of everything but the billing months (never full-refreshed:
        they are incremental, month by month)."""
        # the marts are not built from data an upstream blocking check failed on (seeds read none)
        stop_if_upstream_checks_failed(context)
        yield from run_dbt_build(context, dbt, warehouse.dbt_vars(), full_refresh=True)

    return warehouse_dbt


def dbt_resource() -> DbtCliResource:
    """dbt of the environment's target: postgres locally, sqlserver in production."""
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable(), target=get_dbt_target())


# all the marts in one dbt run: launched by the marts sensor (defs/dbt/sensors.py) or by hand
build_marts_job = dg.define_asset_job(
    "build_marts",
    selection=dg.AssetSelection.groups(MARTS_GROUP),
    description="Rebuild the marts Power BI and the dashboard read (dbt), with their tests.",
    tags={STAGE_TAG: "marts"},
)


@dg.definitions
def dbt_definitions() -> dg.Definitions:
    return dg.Definitions(assets=[warehouse_dbt_assets()], jobs=[build_marts_job], resources={"dbt": dbt_resource()})
