"""Blocking checks that hold across runs: what a stage reads must have passed its blocking checks.

Within one run Dagster stops what a failed blocking check's asset feeds. Here mediation, rating,
billing, the marts and BI run in runs of their own, launched by sensors, so a failure in one
run would not stop the next. Before a stage builds (a billing month, the marts, BI) or is
requested (rating days, the marts), it asks Dagster's event log for the latest evaluation of
every blocking check on an asset upstream of what it builds, for the partitions it reads, and
does not go ahead when one failed with severity ERROR: a run fails with a `dg.Failure` naming
the check, a sensor skips saying which check stopped it. Only the latest evaluation counts: a
check that passes again (after a fix) lets the data through.

Which partitions an evaluation judged: a partitioned check's own partition; else what the check
wrote in its metadata (`checked_partitions`, `failed_partitions`: the checks of partitioned
assets in defs/*/checks.py write both, so an evaluation keeps its meaning after housekeeping
deleted its run); else its run's partition tags (a run of no partition checks every partition).
The upstream assets and their partitions come from the code location's asset graph: a billing
month reads the rating days of that month (the graph's partition mapping), the marts read every
day and month.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

# metadata of a check on a partitioned asset: the partition keys it judged, and those that failed
CHECKED_PARTITIONS = "checked_partitions"
FAILED_PARTITIONS = "failed_partitions"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
FAILED = {AssetCheckExecutionRecordStatus.FAILED}
RECENT_FAILURES = 200  # a check's failed evaluations looked at, newest first: what may still stop
PAGE = 200  # evaluations read per query while finding the latest of each partition

Partitions = frozenset[str] | None  # None: every partition (or an unpartitioned asset)


@dataclass(frozen=True)
class FailedCheck:
    """A blocking check whose latest evaluation failed, for the partitions listed (none: the
    asset is unpartitioned; `every_partition`: a run of every partition failed and nothing newer
    judged them)."""

    key: dg.AssetCheckKey
    run_id: str
    partitions: tuple[str, ...] = ()
    description: str | None = None
    every_partition: bool = False

    def __str__(self) -> str:
        where = ""
        if self.every_partition:
            where = " for every partition"
        elif self.partitions:
            shown = ", ".join(self.partitions[:5])
            more = len(self.partitions) - 5
            where = f" for {shown}" + (f" and {more} more" if more > 0 else "")
        run = f"run {self.run_id}" if self.run_id else "reported outside a run"
        why = f": {self.description}" if self.description else ""
        return f"the blocking check {self.key.name} on {self.key.asset_key.to_user_string()}{where} ({run}){why}"


def stop_message(failures: Sequence[FailedCheck]) -> str:
    """'stopped by the blocking check <name> on <asset> (run <id>): <why>; ...'"""
    return "stopped by " + "; ".join(str(f) for f in failures)


def partition_metadata(checked: Iterable[str], failed: Iterable[str]) -> dict[str, dg.MetadataValue]:
    """The metadata a check of a partitioned asset adds: the partitions it judged and those that
    failed (what the gate reads, whatever became of the run)."""
    return {
        CHECKED_PARTITIONS: dg.MetadataValue.json(sorted(set(checked))),
        FAILED_PARTITIONS: dg.MetadataValue.json(sorted(set(failed))),
    }


def run_partition_keys(tags: Mapping[str, str], partitions_def: dg.PartitionsDefinition) -> list[str] | None:
    """The partition keys a run targets, from its tags (one key, or a range); None: no partition."""
    if PARTITION_TAG in tags:
        return [tags[PARTITION_TAG]]
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        return list(
            partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(tags[RANGE_START_TAG], tags[RANGE_END_TAG]))
        )
    return None


def upstream_reads(
    asset_graph, targets: Iterable[dg.AssetKey], partition_keys: Sequence[str] | None = None
) -> dict[dg.AssetKey, Partitions]:
    """Every asset upstream of `targets` (the targets themselves excluded) -> the partitions of it
    they read, through the graph's partition mappings: a set of keys, or None for every partition
    (what an unpartitioned target, or a partitioned one built whole, reads of a partitioned asset;
    also None for an unpartitioned asset)."""
    targets = set(targets)
    reads: dict[dg.AssetKey, Partitions] = {}
    frontier: list[tuple[dg.AssetKey, Partitions]] = [
        (key, frozenset(partition_keys) if partition_keys is not None else None) for key in targets
    ]
    while frontier:
        child, child_keys = frontier.pop()
        child_node = asset_graph.get(child)
        for parent in sorted(child_node.parent_keys, key=str):
            if parent in targets or not asset_graph.has(parent):
                continue
            mapped = _mapped_partitions(asset_graph, child, child_keys, parent)
            if parent in reads:
                merged = None if reads[parent] is None or mapped is None else reads[parent] | mapped
                if merged == reads[parent]:
                    continue
                mapped = merged
            reads[parent] = mapped
            frontier.append((parent, mapped))
    return reads


def _mapped_partitions(asset_graph, child: dg.AssetKey, child_keys: Partitions, parent: dg.AssetKey) -> Partitions:
    parent_def = asset_graph.get(parent).partitions_def
    child_def = asset_graph.get(child).partitions_def
    if parent_def is None or child_def is None or child_keys is None:
        return None
    mapping = asset_graph.get_partition_mapping(child, parent)
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        child_def.subset_with_partition_keys(child_keys), child_def, parent_def
    )
    return frozenset(result.partitions_subset.get_partition_keys())


def failed_blocking_checks(
    instance: dg.DagsterInstance,
    asset_graph,
    targets: Iterable[dg.AssetKey],
    partition_keys: Sequence[str] | None = None,
) -> list[FailedCheck]:
    """The blocking checks upstream of `targets` whose latest evaluation failed (severity ERROR)
    for a partition the targets read (`partition_keys`: the targets' partitions; None: all).
    Blocking checks are those of the code location: this project's, and every dbt test of
    severity error (dagster-dbt makes those blocking)."""
    unpartitioned: list[dg.AssetCheckKey] = []
    partitioned: list[tuple[dg.AssetCheckKey, dg.PartitionsDefinition, Partitions]] = []
    for asset_key, partitions in sorted(upstream_reads(asset_graph, targets, partition_keys).items(), key=str):
        node = asset_graph.get(asset_key)
        for check_key in sorted(node.check_keys, key=lambda k: k.name):
            if not asset_graph.get(check_key).blocking:
                continue
            if node.partitions_def is None:
                unpartitioned.append(check_key)
            else:
                partitioned.append((check_key, node.partitions_def, partitions))
    failures = _latest_failed(instance, unpartitioned)
    for check_key, partitions_def, partitions in partitioned:
        failures += _failed_partitions(instance, check_key, partitions_def, partitions)
    return failures


def _stops(record: AssetCheckExecutionRecord) -> bool:
    """Whether an evaluation stops what reads its asset: failed, with severity ERROR."""
    evaluation = record.evaluation
    return evaluation is not None and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


def _latest_failed(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey]) -> list[FailedCheck]:
    """Checks of unpartitioned assets: each one's latest evaluation decides (one query for all;
    one more for a check being evaluated right now, whose evaluation before decides)."""
    storage = instance.event_log_storage
    failures = []
    latest = storage.get_latest_asset_check_execution_by_key(check_keys) if check_keys else {}
    for check_key in check_keys:
        record = latest.get(check_key)
        if record is not None and record.status not in COMPLETED:
            records = storage.get_asset_check_execution_history(check_key, limit=1, status=COMPLETED)
            record = records[0] if records else None
        if record is not None and _stops(record):
            failures.append(FailedCheck(check_key, record.run_id, description=record.evaluation.description))
    return failures


class _RunTags:
    """The tags of the runs evaluations belong to, fetched when an evaluation does not say itself
    what it judged (an evaluation made before the checks wrote it)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance, self.tags = instance, {}

    def of(self, run_id: str) -> Mapping[str, str] | None:
        if run_id and run_id not in self.tags:
            runs = self.instance.get_runs(filters=dg.RunsFilter(run_ids=[run_id]), limit=1)
            self.tags[run_id] = dict(runs[0].tags) if runs else None
        return self.tags.get(run_id)


def _judged(
    record: AssetCheckExecutionRecord, partitions_def: dg.PartitionsDefinition, runs: _RunTags
) -> tuple[Partitions, Partitions] | None:
    """(checked, failed) partitions of one evaluation (None: every partition); None when that
    cannot be told any more (an evaluation without the metadata whose run was deleted)."""
    evaluation = record.evaluation
    metadata = evaluation.metadata if evaluation else {}
    if record.partition is not None:
        checked: Partitions = frozenset([record.partition])
    elif CHECKED_PARTITIONS in metadata:
        checked = frozenset(metadata[CHECKED_PARTITIONS].value or [])
    else:
        tags = runs.of(record.run_id)
        if tags is None:
            return None
        keys = run_partition_keys(tags, partitions_def)
        checked = frozenset(keys) if keys is not None else None
    if not _stops(record):
        return checked, frozenset()
    if FAILED_PARTITIONS in metadata:
        failed = frozenset(metadata[FAILED_PARTITIONS].value or [])
        return checked, failed if checked is None else failed & checked
    return checked, checked


def _failed_partitions(
    instance: dg.DagsterInstance,
    check_key: dg.AssetCheckKey,
    partitions_def: dg.PartitionsDefinition,
    wanted: Partitions,
) -> list[FailedCheck]:
    """A partitioned asset's check: per partition read, the latest evaluation that judged it.

    Only a partition that failed in one of the check's recent failed evaluations can be failing
    now; those candidates are then decided by walking the evaluations newest first, until each
    has met the latest evaluation that judged it (at the latest its failed one)."""
    storage = instance.event_log_storage
    runs = _RunTags(instance)
    candidates: Partitions = frozenset()
    for record in storage.get_asset_check_execution_history(check_key, limit=RECENT_FAILURES, status=FAILED):
        judged = _judged(record, partitions_def, runs) if _stops(record) else None
        if judged is not None:
            failed = judged[1]
            candidates = None if candidates is None or failed is None else candidates | failed
    if candidates is not None and wanted is not None:
        candidates &= wanted
    elif candidates is None:
        candidates = wanted
    if candidates is not None and not candidates:
        return []

    decided: dict[str, AssetCheckExecutionRecord | None] = {}
    every: AssetCheckExecutionRecord | None = None  # a failed run of every partition, not judged since
    cursor = None
    while True:
        page = storage.get_asset_check_execution_history(check_key, limit=PAGE, cursor=cursor, status=COMPLETED)
        done = not page
        for record in page:
            judged = _judged(record, partitions_def, runs)
            if judged is None:
                continue
            checked, failed = judged
            if checked is None:  # judged every partition: it decides all that newer ones did not
                if candidates is not None:
                    for key in candidates - decided.keys():
                        decided[key] = record if failed is None or key in failed else None
                elif failed is None:
                    every = record
                else:
                    for key in failed - decided.keys():
                        decided[key] = record
                done = True
                break
            for key in checked - decided.keys():
                if candidates is None or key in candidates:
                    decided[key] = record if failed is None or key in failed else None
            if candidates is not None and candidates <= decided.keys():
                done = True
                break
        if done:
            break
        cursor = page[-1].id

    by_record: dict[int, tuple[AssetCheckExecutionRecord, list[str]]] = {}
    for key, record in decided.items():
        if record is not None:
            by_record.setdefault(record.id, (record, []))[1].append(key)
    failures = [
        FailedCheck(check_key, record.run_id, tuple(sorted(keys)), record.evaluation.description)
        for record, keys in sorted(by_record.values(), key=lambda item: -item[0].id)
    ]
    if every is not None:
        failures.append(
            FailedCheck(check_key, every.run_id, description=every.evaluation.description, every_partition=True)
        )
    return failures


def failed_checks_for_run(context: dg.AssetExecutionContext) -> list[FailedCheck]:
    """The failed upstream blocking checks of what this run builds, for its partitions. The graph
    is the one the run's job was made from (the code location's: a job's own graph holds only the
    checks of the assets it selects), so it is there in a run executed in process too."""
    partitions = list(context.partition_keys) if context.has_partition_key_range else None
    graph = context.job_def.asset_layer.asset_graph.source_asset_graph
    return failed_blocking_checks(context.instance, graph, context.selected_asset_keys, partitions)


def stop_if_upstream_checks_failed(context: dg.AssetExecutionContext) -> None:
    """Fail the run before it builds anything when an upstream blocking check's latest
    evaluation failed for what it reads (no retry: the data, not the run, has to change)."""
    failures = failed_checks_for_run(context)
    if failures:
        raise dg.Failure(
            description=stop_message(failures),
            metadata={
                "stopped_by": dg.MetadataValue.md(
                    "\n".join(f"- {f.key.asset_key.to_user_string()} / {f.key.name}: run {f.run_id}" for f in failures)
                )
            },
            allow_retries=False,
        )
    context.log.info("every upstream blocking check passed (or never ran) for what this run reads")


def sensor_stop_reason(
    context: dg.SensorEvaluationContext, targets: Iterable[dg.AssetKey], partition_keys: Sequence[str] | None = None
) -> str | None:
    """Why a sensor must not request `targets` (their partitions): the failed upstream blocking
    checks, as a skip reason; None when none failed. A sensor evaluated without its code
    location (a test's bare context) knows no graph, so nothing stops it."""
    repository = context.repository_def
    if repository is None:
        return None
    failures = failed_blocking_checks(context.instance, repository.asset_graph, targets, partition_keys)
    return stop_message(failures) if failures else None
