"""The reject store's correction loop in Dagster: replay the open rejects of a reason, or discard them.

The jobs run in the Dagster process (no Spark: a replay is a few thousand records per chunk through
the stream's own rules, lib.mediation.reject_store). A replay that recovers records reports a
materialization of clean_cdrs with `clean_by_day`, so the rating sensor rates exactly those days,
as it does after a mediation run.
"""

from datetime import date

import dagster as dg

from cdr_platform.defs.mediation.assets import CLEAN_CDRS_KEY, REJECT_STORE_KEY
from cdr_platform.defs.resources import MediationResource, TariffResource, WarehouseResource
from cdr_platform.lib.markdown import markdown_table
from cdr_platform.lib.mediation import reject_store
from cdr_platform.lib.mediation.job import load_known_cells
from cdr_platform.lib.mediation.store import create_tables
from cdr_platform.utils.dagster_instance import STAGE_TAG


class ReplayConfig(dg.Config):
    reason: str  # a reason code of the catalogue, e.g. UNKNOWN_CELL
    since: str | None = None  # YYYY-MM-DD: rejected on or after this local day
    dry_run: bool = False


class DiscardConfig(dg.Config):
    reason: str
    note: str  # why they are given up: kept with each record
    since: str | None = None


def _since(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _store_metadata(conn, tables) -> dict:
    counts = reject_store.balance(conn, tables)
    return {
        "by_status": dg.MetadataValue.md(
            markdown_table([{"status": k, "records": v} for k, v in counts["by_status"].items()])
        ),
        "dagster/row_count": counts["stored_rejects"],
        "balanced": counts["balanced"],
    }


@dg.op(description="Send the open rejects of a reason back through mediation (after a correction).")
def replay_rejects_op(
    context: dg.OpExecutionContext,
    config: ReplayConfig,
    warehouse: WarehouseResource,
    mediation_settings: MediationResource,
    tariff: TariffResource,
):
    tables = warehouse.mediation_tables()
    with warehouse.connect() as conn:
        create_tables(conn, tables)
        outcome = reject_store.replay(
            conn,
            tables,
            reason=reject_store.check_reason(config.reason),
            since=_since(config.since),
            dry_run=config.dry_run,
            limits=mediation_settings.limits(load_known_cells(conn)),
            clock=tariff.clock(),
            progress=lambda o: context.log.info(f"{o.selected:,} replayed: {o.recovered:,} recovered so far"),
        )
        store = _store_metadata(conn, tables)
    summary = outcome.as_dict()
    context.log.info(
        f"{outcome.replay_id}: {outcome.selected:,} {config.reason} rejects, {outcome.recovered:,} recovered,"
        f" {outcome.still_open:,} still open, {outcome.duplicates:,} duplicates{' (dry run)' if config.dry_run else ''}"
    )
    if not config.dry_run:
        yield dg.AssetMaterialization(
            REJECT_STORE_KEY,
            metadata={
                **store,
                "replay_id": outcome.replay_id,
                "replayed": outcome.selected,
                "recovered": outcome.recovered,
                "still_open": outcome.still_open,
                "still_failing": dg.MetadataValue.md(
                    markdown_table([{"reason": k, "records": v} for k, v in summary["reasons_now"].items()])
                ),
            },
        )
        if outcome.recovered:
            # the rating sensor rates the days a clean_cdrs materialization says it changed
            yield dg.AssetMaterialization(
                CLEAN_CDRS_KEY,
                metadata={
                    "recovered_by_replay": outcome.recovered,
                    "replay_id": outcome.replay_id,
                    "clean_by_day": dg.MetadataValue.json(summary["clean_by_day"]),
                },
            )
    yield dg.Output(summary)


@dg.op(description="Give up the open rejects of a reason, with a note.")
def discard_rejects_op(context: dg.OpExecutionContext, config: DiscardConfig, warehouse: WarehouseResource):
    tables = warehouse.mediation_tables()
    with warehouse.connect() as conn:
        create_tables(conn, tables)
        count = reject_store.discard(
            conn, tables, reason=reject_store.check_reason(config.reason), note=config.note, since=_since(config.since)
        )
        store = _store_metadata(conn, tables)
    context.log.info(f"{count:,} {config.reason} rejects discarded")
    yield dg.AssetMaterialization(
        REJECT_STORE_KEY, metadata={**store, "discarded": count, "reason": config.reason, "note": config.note}
    )
    yield dg.Output(count)


@dg.job(
    description="Replay the open rejects of a reason through mediation (config: reason, since, dry_run).",
    tags={STAGE_TAG: "rejects"},
)
def replay_rejects():
    replay_rejects_op()


@dg.job(
    description="Discard the open rejects of a reason, with a note (config: reason, note, since).",
    tags={STAGE_TAG: "rejects"},
)
def discard_rejects():
    discard_rejects_op()
