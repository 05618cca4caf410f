"""The main job: every stage of the platform, from reference data to the last built stage."""

import dagster as dg

from cdr_platform.defs.rating.assets import RATING_CDRS_KEY

# Daily-partitioned stages run per day (job rate_cdrs); the demo rates each day afterwards.
cdr_pipeline_job = dg.define_asset_job(
    "cdr_pipeline",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(RATING_CDRS_KEY),
    description="End to end: reference data, tariff seeds, CDR generation into raw-cdrs, mediation, "
    "and every later unpartitioned stage (rating runs per day: job rate_cdrs).",
)
