"""The main job: every unpartitioned stage up to mediation; the partitioned stages run per day
(rate_cdrs) and per month (bill_cdrs), and the marts after them (build_marts)."""

import dagster as dg

cdr_pipeline_job = dg.define_asset_job(
    "cdr_pipeline",
    selection=dg.AssetSelection.groups("ingest", "mediation", "tariff", "billing_reference"),
    description="Reference data, tariff and plan seeds, CDR generation into raw-cdrs and mediation. Rating runs per "
    "day (job rate_cdrs), billing per month (bill_cdrs), then the marts (build_marts); with `make dev` "
    "running they follow by themselves.",
)
