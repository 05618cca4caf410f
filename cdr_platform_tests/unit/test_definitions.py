import dagster as dg
from dagster._core.events import StepMaterializationData

from cdr_platform.definitions import defs


def test_definitions_load_with_the_expected_asset_graph():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"numbering_plan", "cell_catalogue", "subscribers", "raw_cdrs", "clean_cdrs", "error_cdrs"} <= keys
    for mediated in ("clean_cdrs", "error_cdrs"):
        assert dg.AssetKey("raw_cdrs") in graph.get(dg.AssetKey(mediated)).parent_keys
    # lineage raw-cdrs -> clean_cdrs -> rating_cdrs, with the tariff seeds
    rating_parents = graph.get(dg.AssetKey("rating_cdrs")).parent_keys
    assert dg.AssetKey("clean_cdrs") in rating_parents
    assert dg.AssetKey(["tariffs", "tp_rating_profiles"]) in rating_parents
    assert graph.get(dg.AssetKey("rating_cdrs")).partitions_def is not None
    assert dg.AssetKey("subscribers") in graph.get(dg.AssetKey("raw_cdrs")).parent_keys
    assert {dg.AssetKey("numbering_plan"), dg.AssetKey("cell_catalogue")} <= graph.get(
        dg.AssetKey("subscribers")
    ).parent_keys
    checks = {k.name for k in graph.asset_check_keys}
    assert {
        "subscribers_match_numbering_plan",
        "raw_cdrs_offsets_account_for_every_record",
        "mediation_balances",
        "clean_cdrs_unique_record_id",
        "clean_cdrs_complete_and_typed",
        "rejection_rate",
        "rating_covers_every_clean_cdr",
        "rating_no_negative_cost",
        "rating_rerate_sample_matches",
        "tariff_plan_is_consistent",
    } <= checks
    # the checks that stop what reads their asset: mediation's balance, rating's coverage, the
    # bills' reconciliation (and dbt's error-severity tests, which dagster-dbt makes blocking)
    blocking = {k.name for k in graph.asset_check_keys if graph.get(k).blocking}
    assert {"mediation_balances", "rating_covers_every_clean_cdr", "billing_reconciles_with_rating"} <= blocking
    assert not {"rejection_rate", "rating_no_negative_cost", "rating_rerate_sample_matches"} & blocking
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"generate_cdrs", "mediate_cdrs", "rate_cdrs", "cdr_pipeline"} <= jobs
    assert {s.name for s in defs.sensors} >= {"raw_cdrs_sensor", "clean_cdrs_days_sensor"}


def test_sensor_helpers():
    from cdr_platform.defs.mediation.sensors import mediation_run_key, pending_offsets, start_offsets_key

    assert pending_offsets({0: 10, 1: 5}, {0: 10}) == {1: 5}
    assert pending_offsets({0: 10}, {0: 10}) == {}
    assert mediation_run_key({1: 5, 0: 10}) == "raw-cdrs@0:10,1:5"
    # retries are counted by where a run starts, which live traffic does not move
    assert (
        start_offsets_key({0: 10, 1: 5}, {0: 4})
        == start_offsets_key({0: 99, 1: 70}, {0: 4})
        == ("raw-cdrs@from:0:4,1:0")
    )


def test_offsets_that_disagree_with_the_ledger_are_named():
    from cdr_platform.lib.kafka_io import offset_problems

    assert offset_problems({0: 0, 1: 0}, {0: 10, 1: 5}, {0: 10, 1: 3}) == []
    assert offset_problems({0: 0}, {0: 10}, {}) == []  # nothing consumed yet: whatever retention kept
    recreated = offset_problems({0: 0}, {0: 2}, {0: 10})
    assert len(recreated) == 1 and "recreated or truncated" in recreated[0]
    assert "gone" in offset_problems({0: 0}, {0: 2}, {0: 1, 3: 4})[0]
    expired = offset_problems({0: 50}, {0: 80}, {0: 20})
    assert expired == ["partition 0: offsets 20-49 expired unread (30 messages lost to retention)"]


def test_a_failed_mediation_is_retried_after_a_doubling_back_off_and_given_up_after_max_attempts():
    from cdr_platform.defs.mediation.sensors import Retry, retry_decision

    # no failure yet: the first attempt, now
    assert retry_decision(0, None, now=1_000, max_attempts=3, backoff_s=60) == Retry(1)
    # one failure that ended at t=1000: wait 60 s, then attempt 2
    assert retry_decision(1, 1_000, now=1_059, max_attempts=3, backoff_s=60) == Retry(0, wait_s=1)
    assert retry_decision(1, 1_000, now=1_060, max_attempts=3, backoff_s=60) == Retry(2)
    # two failures: the wait doubles to 120 s
    assert retry_decision(2, 1_000, now=1_119, max_attempts=3, backoff_s=60).wait_s == 1
    assert retry_decision(2, 1_000, now=1_120, max_attempts=3, backoff_s=60) == Retry(3)
    # three failures of three attempts: give up, however long ago
    assert retry_decision(3, 1_000, now=10**9, max_attempts=3, backoff_s=60) == Retry(0, give_up=True)


def test_generate_cdrs_config_refuses_bad_settings_before_producing():
    from cdr_platform.defs.ingest.assets import GenerateCdrsConfig
    from cdr_platform.lib.ingest.generator import GeneratorConfigError

    for bad in ({"count": -5}, {"error_rate": 1.2}, {"error_classes": ["nope"]}):
        try:
            GenerateCdrsConfig(**bad).generator_config()
        except GeneratorConfigError:
            continue
        raise AssertionError(f"{bad} was accepted")


def test_each_mediation_run_gets_its_days_rated_and_requests_for_a_day_already_waiting_are_coalesced():
    from dagster._core.storage.dagster_run import DagsterRun

    from cdr_platform.defs.rating.sensors import clean_cdrs_days_sensor

    def mediation_run(clean_by_day: dict) -> None:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("clean_cdrs", metadata={"clean_by_day": dg.MetadataValue.json(clean_by_day)})
        )

    with dg.instance_for_test() as instance:
        first = clean_cdrs_days_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.SkipReason)
        mediation_run({"2026-11-24": 10, "2026-11-25": 3})
        mediation_run({"2026-11-25": 7, "2025-06-01": 2})  # a day before the first rating partition
        result = clean_cdrs_days_sensor(dg.build_sensor_context(instance=instance))
        # one run per day: the run requested for 2026-11-25 reads both mediation runs' CDRs
        assert [r.partition_key for r in result.run_requests] == ["2026-11-24", "2026-11-25"]
        assert len({r.run_key for r in result.run_requests}) == 2
        # the next tick starts after them: nothing is rated twice for the same run
        again = clean_cdrs_days_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
        mediation_run({})  # a run of rejects and duplicates only: nothing to rate
        quiet = clean_cdrs_days_sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor))
        assert not quiet.run_requests and "no clean CDR" in quiet.skip_reason.skip_message

        # live traffic: a day whose run waits to start gets no other; a day being rated gets one more
        def rating_run(run_id: str, day: str, status) -> None:
            instance.add_run(
                DagsterRun(job_name="rate_cdrs", run_id=run_id, status=status, tags={"dagster/partition": day})
            )

        rating_run("waiting", "2026-11-24", dg.DagsterRunStatus.NOT_STARTED)
        rating_run("running", "2026-11-25", dg.DagsterRunStatus.STARTED)
        mediation_run({"2026-11-24": 5, "2026-11-25": 5})
        busy = clean_cdrs_days_sensor(dg.build_sensor_context(instance=instance, cursor=quiet.cursor))
        assert [r.partition_key for r in busy.run_requests] == ["2026-11-25"]


def test_automation_bills_exactly_the_months_whose_days_were_rated_and_nothing_else():
    billing = dg.AssetKey(["billing", "billing_cdrs"])
    lines = dg.AssetKey(["billing", "invoice_lines"])
    allowance = dg.AssetKey(["billing", "allowance_usage"])

    with dg.instance_for_test() as instance:

        def tick(cursor):
            return dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)

        def materialized(key, partition=None):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

        first = tick(None)
        for key in ("clean_cdrs", "error_cdrs", "mediation_ledger", "mediation_ledger_reasons", "subscribers"):
            materialized(key)  # a mediation run and new reference data: no rating day changed
        after_mediation = tick(first.cursor)
        assert after_mediation.get_num_requested(billing) == 0

        materialized("rating_cdrs", "2026-10-15")  # a late day of October, and one of November
        materialized("rating_cdrs", "2026-11-24")
        after_rating = tick(after_mediation.cursor)
        assert after_rating.get_requested_partitions(billing) == {"2026-10-01", "2026-11-01"}
        assert after_rating.get_requested_partitions(lines) == {"2026-10-01", "2026-11-01"}  # with its bills
        assert after_rating.get_requested_partitions(allowance) == {"2026-10-01", "2026-11-01"}

        materialized(billing, "2026-10-01")
        materialized(billing, "2026-11-01")
        after_billing = tick(after_rating.cursor)
        assert after_billing.get_requested_partitions(billing) == set()  # billed: not again


def test_the_marts_are_rebuilt_together_after_a_change_once_a_month_is_billed_and_no_billing_is_pending():
    from dagster._core.storage.dagster_run import DagsterRun

    from cdr_platform.defs.dbt.sensors import marts_sensor

    with dg.instance_for_test() as instance:

        def evaluate(cursor=None):
            return marts_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))

        def materialized(key, partition=None):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))

        assert "nothing the marts read has changed" in evaluate().skip_message
        materialized("clean_cdrs")
        assert "no month is billed yet" in evaluate().skip_message
        materialized(dg.AssetKey(["billing", "billing_cdrs"]), "2026-11-01")
        # a billing month launched by the automation sensor: an __ASSET_JOB run, its stage tagged
        instance.add_run(
            DagsterRun(
                job_name="__ASSET_JOB",
                run_id="b-1",
                status=dg.DagsterRunStatus.NOT_STARTED,
                tags={"cdr/stage": "billing"},
            )
        )
        assert "waiting for run b-1" in evaluate().skip_message  # the bills are about to change
        instance.delete_run("b-1")  # the run is over
        # mediation and rating runs in progress do not hold the marts back (live traffic never stops)
        instance.add_run(DagsterRun(job_name="rate_cdrs", run_id="r-1", status=dg.DagsterRunStatus.STARTED))
        instance.add_run(DagsterRun(job_name="mediate_cdrs", run_id="m-1", status=dg.DagsterRunStatus.STARTED))
        result = evaluate()
        (request,) = result.run_requests  # one build of every mart
        assert "clean_cdrs" in request.tags["cdr/changed"]
        assert "nothing the marts read has changed" in evaluate(result.cursor).skip_message
        materialized("rating_suspense", "2026-11-24")
        assert len(evaluate(result.cursor).run_requests) == 1


def test_a_failed_blocking_check_holds_rating_and_the_marts_back_until_it_passes_again():
    """The sensors read the latest evaluation of the blocking checks upstream of what they
    request: they skip naming the check, keep their cursor, and go on once it passes again."""
    from dagster._core.storage.dagster_run import DagsterRun

    from cdr_platform.defs.dbt.sensors import marts_sensor
    from cdr_platform.defs.rating.sensors import clean_cdrs_days_sensor

    clean_cdrs, rating_cdrs = dg.AssetKey("clean_cdrs"), dg.AssetKey("rating_cdrs")
    with dg.instance_for_test() as instance:

        def evaluate(sensor, cursor=None):
            return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

        def evaluated(asset_key, check, passed, **metadata):
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=asset_key, check_name=check, passed=passed, description="why", metadata=metadata
                )
            )

        instance.report_runless_asset_event(
            dg.AssetMaterialization(clean_cdrs, metadata={"clean_by_day": dg.MetadataValue.json({"2026-11-24": 3})})
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(dg.AssetKey(["billing", "billing_cdrs"]), partition="2026-11-01")
        )
        evaluated(clean_cdrs, "mediation_balances", passed=False)
        for sensor in (clean_cdrs_days_sensor, marts_sensor):
            skipped = evaluate(sensor)
            assert isinstance(skipped, dg.SkipReason), skipped
            assert skipped.skip_message.startswith(
                "stopped by the blocking check mediation_balances on clean_cdrs (reported outside a run): why"
            )
        evaluated(clean_cdrs, "mediation_balances", passed=True)  # after a fix
        rated = evaluate(clean_cdrs_days_sensor)
        assert [r.partition_key for r in rated.run_requests] == ["2026-11-24"]  # the days waited, none lost
        assert len(evaluate(marts_sensor).run_requests) == 1

        # a day whose coverage failed holds back the marts (they read every day), not rating
        evaluated(
            rating_cdrs,
            "rating_covers_every_clean_cdr",
            passed=False,
            checked_partitions=dg.MetadataValue.json(["2026-11-24"]),
            failed_partitions=dg.MetadataValue.json(["2026-11-24"]),
        )
        held = evaluate(marts_sensor)
        assert "the blocking check rating_covers_every_clean_cdr on rating_cdrs for 2026-11-24" in held.skip_message

        # a mediation run still evaluating its checks: its days wait for it to finish
        instance.add_run(DagsterRun(job_name="mediate_cdrs", run_id="m-2", status=dg.DagsterRunStatus.STARTED))
        instance.store_event(
            dg.EventLogEntry(
                error_info=None,
                level="debug",
                user_message="",
                run_id="m-2",
                timestamp=1e9,
                dagster_event=dg.DagsterEvent(
                    dg.DagsterEventType.ASSET_MATERIALIZATION.value,
                    "mediate_cdrs",
                    event_specific_data=StepMaterializationData(
                        dg.AssetMaterialization(
                            clean_cdrs, metadata={"clean_by_day": dg.MetadataValue.json({"2026-11-25": 2})}
                        )
                    ),
                ),
            )
        )
        waiting = evaluate(clean_cdrs_days_sensor, rated.cursor)
        assert waiting.skip_message == "waiting for mediation run m-2 to finish (its checks)"
        instance.report_run_failed(instance.get_run_by_id("m-2"))  # finished (its checks evaluated)
        assert [r.partition_key for r in evaluate(clean_cdrs_days_sensor, rated.cursor).run_requests] == ["2026-11-25"]
