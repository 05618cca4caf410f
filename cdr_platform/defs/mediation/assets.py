"""Mediation: the Spark streaming job, run bounded (availableNow) through Dagster Pipes."""

import dagster as dg

from cdr_platform.defs.ingest.assets import RAW_CDRS_KEY
from cdr_platform.defs.resources import KafkaResource, MediationResource, SparkResource, WarehouseResource
from cdr_platform.lib import asset_keys
from cdr_platform.utils.dagster_instance import STAGE_TAG

GROUP = "mediation"
CLEAN_CDRS_KEY = dg.AssetKey(asset_keys.CLEAN_CDRS)
ERROR_CDRS_KEY = dg.AssetKey(asset_keys.ERROR_CDRS)
MEDIATION_LEDGER_KEY = dg.AssetKey(asset_keys.MEDIATION_LEDGER)
LEDGER_REASONS_KEY = dg.AssetKey(asset_keys.LEDGER_REASONS)
REJECT_STORE_KEY = dg.AssetKey(asset_keys.REJECT_STORE)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CLEAN_CDRS_KEY,
            deps=[RAW_CDRS_KEY],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse table mediation.clean_cdrs: validated, normalised, "
            "de-duplicated CDRs, exactly once (primary key record_id).",
        ),
        dg.AssetSpec(
            ERROR_CDRS_KEY,
            deps=[RAW_CDRS_KEY],
            group_name=GROUP,
            kinds={"spark", "kafka"},
            description="Kafka topic error-cdrs: every rejected or duplicate CDR with its "
            "original payload, reason codes and source offset (key: "
            "topic:partition:offset, stable across replays).",
        ),
        dg.AssetSpec(
            MEDIATION_LEDGER_KEY,
            deps=[RAW_CDRS_KEY],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse tables mediation.mediation_ledger (+ _offsets): per micro-batch, the "
            "raw-cdrs offsets consumed and how many were clean, rejected or duplicates; replaced with the "
            "batch, so a replay never counts twice. The revenue-assurance mart reads it.",
        ),
        dg.AssetSpec(
            LEDGER_REASONS_KEY,
            deps=[RAW_CDRS_KEY],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse table mediation.mediation_ledger_reasons: the ledger's rejects per batch and "
            "reason code, written in the ledger's transaction. The rejections mart reads it.",
        ),
        dg.AssetSpec(
            REJECT_STORE_KEY,
            deps=[RAW_CDRS_KEY],
            group_name=GROUP,
            kinds={"spark", "postgres"},
            description="Warehouse table mediation.rejects: every rejected and duplicate message with its whole "
            "payload, reasons and status (open, replayed, recovered, discarded, duplicate), stored in the batch's "
            "transaction; kept past Kafka's retention, replayed after a correction (job replay_rejects).",
        ),
    ],
    can_subset=False,
)
def mediation(
    context: dg.AssetExecutionContext,
    pipes_subprocess_client: dg.PipesSubprocessClient,
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    spark: SparkResource,
    mediation_settings: MediationResource,
):
    """Consume everything new in raw-cdrs (availableNow trigger), then stop.

    The Spark driver (`cdr mediate`) is a subprocess speaking Dagster Pipes: its progress lands
    in this run's logs, its counts in the materializations, and a non-zero exit fails the run.
    """
    return spark.run_job(
        context,
        pipes_subprocess_client,
        ["mediate", "--max-offsets-per-trigger", str(mediation_settings.max_offsets_per_trigger)],
        env={**kafka.subprocess_env(), **warehouse.subprocess_env(), **mediation_settings.subprocess_env()},
    )


mediation_job = dg.define_asset_job(
    "mediate_cdrs",
    selection=dg.AssetSelection.assets(
        CLEAN_CDRS_KEY, ERROR_CDRS_KEY, MEDIATION_LEDGER_KEY, LEDGER_REASONS_KEY, REJECT_STORE_KEY
    ),
    description="Mediate what is new in raw-cdrs into clean_cdrs and error-cdrs (bounded run).",
    tags={STAGE_TAG: "mediation"},
)
