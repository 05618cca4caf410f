"""dbt in Dagster: the tariff seeds now, billing and the marts as they come.

dbt tests become asset checks. A dbt source whose meta names a Dagster asset key (clean_cdrs,
rating_cdrs) joins that upstream asset's lineage.
"""

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from cdr_platform.lib.dbt.project import dbt_executable, dbt_project


class CdrDbtTranslator(DagsterDbtTranslator):
    def get_asset_spec(self, manifest, unique_id, project):
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = manifest["nodes"].get(unique_id) or manifest["sources"].get(unique_id) or {}
        if node.get("resource_type") == "seed" and "tariff" in node.get("fqn", []):
            spec = spec.replace_attributes(group_name="tariff")
        return spec


TRANSLATOR = CdrDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dg.definitions
def dbt_definitions() -> dg.Definitions:
    project = dbt_project()

    @dbt_assets(manifest=project.manifest_path, project=project, dagster_dbt_translator=TRANSLATOR)
    def warehouse_dbt(context: dg.AssetExecutionContext, dbt: DbtCliResource):
        """`dbt build`: seeds (the tariff plan), their tests, and every model downstream."""
        yield from dbt.cli(["build"], context=context).stream()

    return dg.Definitions(assets=[warehouse_dbt], resources={
        "dbt": DbtCliResource(project_dir=project, dbt_executable=dbt_executable())})
