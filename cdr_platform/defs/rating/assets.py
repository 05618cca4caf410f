"""Rating: the Spark batch job per day, run through Dagster Pipes, into rating_cdrs."""

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
    ],
    partitions_def=RATING_DAYS,
    can_subset=False,
)
def rating_cdrs(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    warehouse: WarehouseResource,
    tariff: TariffResource,
    spark: SparkResource,
):
    """Rate one local day (`cdr rate --day`), through Dagster Pipes."""
    return spark.run_job(
        context,
        pipes_subprocess_client,
        ["rate", "--day", context.partition_key],
        env={**warehouse.subprocess_env(), **tariff.subprocess_env()},
    )


# The job takes its partitions from the asset it selects.
rate_cdrs_job = dg.define_asset_job(
    "rate_cdrs",
    selection=dg.AssetSelection.assets(RATING_CDRS_KEY, RATING_SUSPENSE_KEY),
    description="Rate one day of clean CDRs into rating_cdrs (and suspense).",
    tags={STAGE_TAG: "rating"},
)
