"""Rating: the Spark batch job per day (or range of days), run through Dagster Pipes, into rating_cdrs.

A run of a partition range (a backfill after a tariff correction) rates its days in order in one
Spark session (`cdr rate --from --to`): BACKFILL runs a week of days per run, so Spark starts once
a week rather than once a day, while a failed run leaves at most a week to re-run (the days it
swapped in stay re-rated; their report is kept under the failed run's id). The re-rating report
(what the run changed per subscriber) is the third asset of the run, as the same run produces it.
"""

import dagster as dg

from cdr_platform.defs.mediation.assets import CLEAN_CDRS_KEY
from cdr_platform.defs.resources import SparkResource, TariffResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.lib.rating.plan import SEED_FILES
from cdr_platform.lib.settings import setting
from cdr_platform.utils.dagster_instance import STAGE_TAG

GROUP = "rating"
RATING_CDRS_KEY = dg.AssetKey(asset_keys.RATING_CDRS)
RATING_SUSPENSE_KEY = dg.AssetKey(asset_keys.RATING_SUSPENSE)
RERATING_REPORT_KEY = dg.AssetKey(asset_keys.RERATING_REPORT)
DAYS_PER_BACKFILL_RUN = 7
BACKFILL = dg.BackfillPolicy.multi_run(max_partitions_per_run=DAYS_PER_BACKFILL_RUN)
TARIFF_KEYS = [dg.AssetKey(asset_keys.tariff_seed(seed.removesuffix(".csv"))) for seed in SEED_FILES]
# Days by call start, in the operator's time zone (CDR_TARIFF_TIMEZONE, read when the code
# location loads: a partition's day is structure, not a run's setting). The generator's
# default traffic is yesterday's.
RATING_DAYS = dg.DailyPartitionsDefinition(
    start_date="2026-01-01", end_offset=1, timezone=setting("CDR_TARIFF_TIMEZONE")
)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RATING_CDRS_KEY,
            deps=[CLEAN_CDRS_KEY, *TARIFF_KEYS],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse table rating.rating_cdrs: every clean CDR of the day priced with the tariff "
            "plan (CGRateS semantics). A re-run replaces the day.",
        ),
        dg.AssetSpec(
            RATING_SUSPENSE_KEY,
            deps=[CLEAN_CDRS_KEY, *TARIFF_KEYS],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse table rating.rating_suspense: the day's clean CDRs the tariff does not cover, "
            "with the reason (never rated zero). Replaced with the day.",
        ),
        dg.AssetSpec(
            RERATING_REPORT_KEY,
            deps=[CLEAN_CDRS_KEY, *TARIFF_KEYS],
            group_name=GROUP,
            kinds={"postgres"},
            description="Warehouse table rating.rerating_report: per subscriber whose rated CDRs or cost a "
            "re-rating changed (a tariff correction), old and new cost and the delta, over the run's days "
            "(rows keyed by run id). Its metadata shows the totals and the largest changes; a run of several "
            "days shows its whole report on each of them. A day's first rating is no re-rating: it adds no row.",
        ),
    ],
    partitions_def=RATING_DAYS,
    backfill_policy=BACKFILL,
    can_subset=False,
)
def rating_cdrs(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    warehouse: WarehouseResource,
    tariff: TariffResource,
    spark: SparkResource,
):
    """Rate the run's local days (`cdr rate --from --to`: one day, or a backfill's range), through Dagster Pipes."""
    days = context.partition_key_range
    return spark.run_job(
        context,
        pipes_subprocess_client,
        ["rate", "--from", days.start, "--to", days.end],
        env={**warehouse.subprocess_env(), **tariff.subprocess_env()},
    )


# The job takes its partitions from the asset it selects.
rate_cdrs_job = dg.define_asset_job(
    "rate_cdrs",
    selection=dg.AssetSelection.assets(RATING_CDRS_KEY, RATING_SUSPENSE_KEY, RERATING_REPORT_KEY),
    description="Rate one day (or a range) of clean CDRs into rating_cdrs (and suspense), with the re-rating report.",
    tags={STAGE_TAG: "rating"},
)
