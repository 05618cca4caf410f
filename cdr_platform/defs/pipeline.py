"""The main job: every unpartitioned stage up to mediation; the partitioned stages run per day
(rate_cdrs) and per month (bill_cdrs), and the marts after them (build_marts).

`cdr_pipeline` produces synthetic CDRs, so it exists locally only (CDR_ENV=local); production's
CDRs come from the network. `load_reference_data`, in both environments, is what production runs
when the operator's reference files, the tariff or the plans change: the reference data and the
seeds, nothing written to raw-cdrs. The `@dg.definitions` function picks them by environment.
"""

import dagster as dg

from cdr_platform.defs.ingest.assets import RAW_CDRS_KEY
from cdr_platform.utils.environment_helpers import Environment, get_environment

cdr_pipeline_job = dg.define_asset_job(
    "cdr_pipeline",
    selection=dg.AssetSelection.groups("ingest", "mediation", "tariff", "billing_reference"),
    description="Reference data, tariff and plan seeds, CDR generation into raw-cdrs and mediation. Rating runs per "
    "day (job rate_cdrs), billing per month (bill_cdrs), then the marts (build_marts); with `make dev` "
    "running they follow by themselves.",
)

load_reference_data_job = dg.define_asset_job(
    "load_reference_data",
    selection=dg.AssetSelection.groups("ingest", "tariff", "billing_reference")
    - dg.AssetSelection.assets(RAW_CDRS_KEY),
    description="The reference data (numbering plan, cells, subscribers: the operator's files in CDR_REFERENCE_DIR; "
    "locally, generated data stands in for a missing one) and the tariff and plan seeds. Nothing is written to "
    "raw-cdrs.",
)


@dg.definitions
def pipeline_jobs() -> dg.Definitions:
    if get_environment() is Environment.PROD:
        return dg.Definitions(jobs=[load_reference_data_job])
    return dg.Definitions(jobs=[cdr_pipeline_job, load_reference_data_job])
