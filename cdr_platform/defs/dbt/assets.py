"""dbt in Dagster: the tariff seeds now, billing and the marts as they come.

dagster-dbt's own translator does what the project needs, from the dbt project's `meta`:
a dbt source whose `meta.dagster.asset_key` names a Dagster asset (clean_cdrs, rating_cdrs)
joins that asset's lineage, and `meta.dagster.group` (dbt_project.yml) names the asset group.
dbt tests become asset checks.
"""

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from cdr_platform.defs.dbt.project import dbt_executable, dbt_project

TRANSLATOR = DagsterDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dg.definitions
def dbt_definitions() -> dg.Definitions:
    project = dbt_project()

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=TRANSLATOR)
    def warehouse_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        """`dbt build`: seeds (the tariff plan), their tests, and every model downstream."""
        yield from dbt.cli(["build"], context=context).stream()

    return dg.Definitions(
        assets=[warehouse_dbt], resources={"dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable())}
    )
