"""The main job: every stage of the platform, from reference data to the last built stage."""

import dagster as dg

cdr_pipeline_job = dg.define_asset_job(
    "cdr_pipeline",
    selection=dg.AssetSelection.all(),
    description="End to end: reference data, CDR generation into raw-cdrs, and every later stage.",
)
