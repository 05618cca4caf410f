"""The cross-run gate of blocking checks (defs/blocking_checks.py), on a small graph shaped like the
pipeline's: an unpartitioned ledger, daily rated data, monthly bills, marts and a dashboard, each
run in runs of their own against a throwaway Dagster instance. No warehouse."""

import dagster as dg
import pytest

from cdr_platform.defs.blocking_checks import (
    FailedCheck,
    failed_blocking_checks,
    partition_metadata,
    run_partition_keys,
    sensor_stop_reason,
    stop_if_upstream_checks_failed,
    stop_message,
    upstream_reads,
)

DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
# what each check finds, set by the test before each run: the ledger's balance, the failing days
VERDICT: dict = {}


@dg.asset
def ledger() -> None:
    if VERDICT.get("ledger_raises"):
        raise RuntimeError("the ledger could not be written")


@dg.asset_check(asset=ledger, blocking=True)
def ledger_balances() -> dg.AssetCheckResult:
    ok = VERDICT.get("ledger", True)
    return dg.AssetCheckResult(passed=ok, description=None if ok else "3000 consumed, 3001 clean")


@dg.asset(partitions_def=DAYS, deps=[ledger])
def rated() -> None: ...


@dg.asset_check(asset=rated, blocking=True)
def rated_covered(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Like rating coverage: judges its run's day, or every day it knows in a run of no partition,
    and says which in its metadata."""
    days = run_partition_keys(context.run.tags, DAYS) or VERDICT.get("all_days", [])
    failed = [d for d in days if d in VERDICT.get("failing_days", ())]
    return dg.AssetCheckResult(
        passed=not failed,
        description=f"uncovered: {', '.join(failed)}" if failed else None,
        metadata=partition_metadata(days, failed),
    )


@dg.asset_check(asset=rated)  # not blocking: its failures stop nothing
def rated_looks_nice() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


@dg.asset_check(asset=rated, blocking=True)
def rated_warns() -> dg.AssetCheckResult:  # fails, but only warns: stops nothing
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset(partitions_def=MONTHS, deps=[rated])
def bills(context: dg.AssetExecutionContext) -> None:
    stop_if_upstream_checks_failed(context)


@dg.asset_check(asset=bills, blocking=True)
def bills_reconcile(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """Like a dbt test: no metadata, so its run's partition tag says which month it judged."""
    month = context.run.tags.get("dagster/partition")
    return dg.AssetCheckResult(passed=month not in VERDICT.get("failing_months", ()))


@dg.asset(deps=[bills])
def marts(context: dg.AssetExecutionContext) -> None:
    stop_if_upstream_checks_failed(context)


@dg.asset(deps=[marts])
def dashboard(context: dg.AssetExecutionContext) -> None:
    stop_if_upstream_checks_failed(context)


DEFS = dg.Definitions(
    assets=[ledger, rated, bills, marts, dashboard],
    asset_checks=[ledger_balances, rated_covered, rated_looks_nice, rated_warns, bills_reconcile],
)
GRAPH = DEFS.resolve_asset_graph()
SEPTEMBER, OCTOBER = "2026-09-01", "2026-10-01"


@pytest.fixture
def instance():
    VERDICT.clear()
    with dg.instance_for_test() as instance:
        yield instance


def run(instance, selection, partition=None, **verdict) -> dg.ExecuteInProcessResult:
    """One run of `selection` (assets with their checks, or checks alone) with the checks finding
    `verdict`."""
    VERDICT.update(verdict)
    assets = [s for s in selection if isinstance(s, dg.AssetKey)]
    checks = [s for s in selection if isinstance(s, dg.AssetCheckKey)]
    return dg.materialize(
        [ledger, rated, bills, marts, dashboard, ledger_balances, rated_covered, rated_looks_nice, rated_warns]
        + [bills_reconcile],
        instance=instance,
        partition_key=partition,
        selection=dg.AssetSelection.assets(*assets) | dg.AssetSelection.checks(*checks),
        raise_on_error=False,
    )


def stopped(instance, targets, partitions=None) -> list[FailedCheck]:
    return failed_blocking_checks(instance, GRAPH, [dg.AssetKey(t) for t in targets], partitions)


LEDGER, RATED, BILLS = dg.AssetKey("ledger"), dg.AssetKey("rated"), dg.AssetKey("bills")
COVERED = dg.AssetCheckKey(RATED, "rated_covered")
BALANCES = dg.AssetCheckKey(LEDGER, "ledger_balances")


def test_a_month_reads_its_days_and_the_marts_read_every_partition():
    month = upstream_reads(GRAPH, [BILLS], [SEPTEMBER])
    assert month[LEDGER] is None  # unpartitioned
    assert sorted(month[RATED]) == [f"2026-09-{d:02d}" for d in range(1, 31)]
    assert upstream_reads(GRAPH, [dg.AssetKey("marts")]) == {BILLS: None, RATED: None, LEDGER: None}
    assert BILLS not in upstream_reads(GRAPH, [BILLS], [SEPTEMBER])  # a target's own checks do not stop it


def test_nothing_evaluated_or_everything_passed_stops_nothing(instance):
    assert stopped(instance, ["bills"], [SEPTEMBER]) == []
    assert run(instance, [LEDGER], ledger=True).success
    assert run(instance, [RATED], "2026-09-20").success  # its non-blocking and WARN failures pass the run
    assert stopped(instance, ["bills"], [SEPTEMBER]) == stopped(instance, ["dashboard"]) == []


def test_a_failed_unpartitioned_check_stops_everything_downstream_until_it_passes_again(instance):
    failed = run(instance, [LEDGER], ledger=False)
    assert not failed.success  # within its own run, Dagster fails the blocking check
    (stop,) = stopped(instance, ["bills"], [SEPTEMBER])
    assert stop.key == BALANCES and stop.run_id == failed.run_id
    message = stop_message([stop])
    assert message == (
        f"stopped by the blocking check ledger_balances on ledger (run {failed.run_id}): 3000 consumed, 3001 clean"
    )
    assert [s.key for s in stopped(instance, ["rated"], ["2026-09-20"])] == [BALANCES]
    assert [s.key for s in stopped(instance, ["dashboard"])] == [BALANCES]
    # the checks alone again, after a fix: the latest evaluation passes, the data goes through
    assert run(instance, [BALANCES], ledger=True).success
    assert stopped(instance, ["bills"], [SEPTEMBER]) == stopped(instance, ["dashboard"]) == []


def test_a_failed_day_stops_its_month_and_the_marts_not_another_month(instance):
    assert run(instance, [RATED], "2026-09-20", failing_days={"2026-09-20"}).success is False
    assert run(instance, [RATED], "2026-09-21").success
    assert run(instance, [RATED], "2026-10-01").success
    (stop,) = stopped(instance, ["bills"], [SEPTEMBER])
    assert stop.key == COVERED and stop.partitions == ("2026-09-20",)
    assert "on rated for 2026-09-20 (run " in str(stop) and "uncovered: 2026-09-20" in str(stop)
    assert stopped(instance, ["bills"], [OCTOBER]) == []
    assert [s.partitions for s in stopped(instance, ["marts"])] == [("2026-09-20",)]
    # newer evaluations of other days do not hide it; its own day passing again clears it
    for day in ("2026-09-22", "2026-09-23"):
        assert run(instance, [RATED], day).success
    assert [s.partitions for s in stopped(instance, ["bills"], [SEPTEMBER])] == [("2026-09-20",)]
    VERDICT["failing_days"] = set()
    assert run(instance, [RATED], "2026-09-20").success
    assert stopped(instance, ["bills"], [SEPTEMBER]) == stopped(instance, ["marts"]) == []


def test_a_run_of_every_partition_stops_only_the_partitions_it_names(instance):
    days = ["2026-09-20", "2026-09-21", "2026-10-01"]
    checked = run(instance, [COVERED], all_days=days, failing_days={"2026-09-21"})
    assert not checked.success
    assert [s.partitions for s in stopped(instance, ["bills"], [SEPTEMBER])] == [("2026-09-21",)]
    assert stopped(instance, ["bills"], [OCTOBER]) == []
    # a day's own run afterwards decides that day
    VERDICT["failing_days"] = set()
    assert run(instance, [RATED], "2026-09-21").success
    assert stopped(instance, ["bills"], [SEPTEMBER]) == []


def test_an_evaluation_without_metadata_judged_its_runs_partition(instance):
    assert not run(instance, [BILLS], SEPTEMBER, failing_months={SEPTEMBER}).success
    assert run(instance, [BILLS], OCTOBER).success
    (stop,) = stopped(instance, ["marts"])
    assert stop.key == dg.AssetCheckKey(BILLS, "bills_reconcile") and stop.partitions == (SEPTEMBER,)
    # its run deleted (housekeeping): nothing says which month it judged, so it stops nothing
    instance.delete_run(stop.run_id)
    assert stopped(instance, ["marts"]) == []


def test_a_stopped_run_fails_naming_the_check_and_builds_nothing(instance):
    run(instance, [LEDGER], ledger=False)
    result = run(instance, [BILLS], SEPTEMBER)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.error.message
    assert "stopped by the blocking check ledger_balances on ledger" in message, message
    assert result.get_asset_materialization_events() == []
    assert not run(instance, [dg.AssetKey("dashboard")]).success
    run(instance, [BALANCES], ledger=True)
    assert run(instance, [BILLS], SEPTEMBER).success


def test_a_sensor_is_told_why_and_a_bare_context_knows_no_graph(instance):
    run(instance, [LEDGER], ledger=False)
    context = dg.build_sensor_context(instance=instance, definitions=DEFS)
    reason = sensor_stop_reason(context, [dg.AssetKey("marts")])
    assert reason is not None and reason.startswith("stopped by the blocking check ledger_balances on ledger (run ")
    assert sensor_stop_reason(dg.build_sensor_context(instance=instance), [dg.AssetKey("marts")]) is None


def test_a_check_that_did_not_run_since_does_not_hide_the_evaluation_before(instance):
    run(instance, [LEDGER], ledger=False)
    # a run whose asset failed: its check was planned, never evaluated (the latest record)
    assert not run(instance, [LEDGER, BALANCES], ledger_raises=True).success
    assert [s.key for s in stopped(instance, ["bills"], [SEPTEMBER])] == [BALANCES]
