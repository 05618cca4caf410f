"""Mediation through Dagster: the sensor launches it, Pipes runs Spark, checks judge the result."""

import re

import dagster as dg
import pytest

from cdr_platform.defs.ingest.assets import RAW_CDRS_KEY
from cdr_platform.defs.mediation.assets import mediation, mediation_job
from cdr_platform.defs.mediation.checks import (
    clean_cdrs_complete_and_typed,
    clean_cdrs_unique_record_id,
    mediation_balances,
    mediation_source_offsets_consistent,
    rejection_rate,
)
from cdr_platform.defs.mediation.sensors import raw_cdrs_sensor
from cdr_platform.defs.resources import resources_for
from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.settings import load_settings
from cdr_platform.utils.environment_helpers import Environment
from cdr_platform_tests.integration.mediation_support import START, MediationSandbox, expected_outcome

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def sandbox(local_stack, tmp_path, monkeypatch):
    box = MediationSandbox.create(local_stack, tmp_path)
    for key, value in box.env().items():  # the code location and the Spark subprocess read these
        if key.startswith("CDR_"):
            monkeypatch.setenv(key, value)
    yield box
    box.drop()


@pytest.fixture
def sasl_ssl_sandbox(sasl_ssl_stack, sasl_ssl_environment, tmp_path, monkeypatch):
    """The sandbox with every Kafka client - the sensor's, the producer's, Spark's source and sink,
    the checks' - on the broker's SASL_SSL listener."""
    for key, value in sasl_ssl_environment.items():
        monkeypatch.setenv(key, value)
    box = MediationSandbox.create(sasl_ssl_stack, tmp_path)
    for key, value in box.env().items():
        if key.startswith("CDR_"):
            monkeypatch.setenv(key, value)
    yield box
    box.drop()


def resources() -> dict:
    """The code location's own resources, built from the sandbox's environment."""
    return resources_for(load_settings(), Environment.LOCAL)


def test_over_sasl_ssl_the_sensor_requests_a_run_for_new_data_and_pipes_mediation_passes_its_checks(
    sasl_ssl_sandbox,
):
    sandbox = sasl_ssl_sandbox
    assert resources()["kafka"].security_protocol == "SASL_SSL"
    config = GeneratorConfig(count=6_000, seed=41, error_rate=0.05, start_time=START)
    sandbox.produce(config)
    expected = expected_outcome(config)

    with dg.instance_for_test() as instance:
        request = raw_cdrs_sensor(dg.build_sensor_context(instance=instance, resources=resources()))
        assert isinstance(request, dg.RunRequest)
        assert request.run_key.startswith("raw-cdrs@") and int(request.tags["raw_cdrs_pending"]) == 6_000

        result = dg.materialize(
            [mediation, mediation_balances, clean_cdrs_unique_record_id, clean_cdrs_complete_and_typed, rejection_rate],
            instance=instance,
            resources=resources(),
            selection=dg.AssetSelection.assets(
                "clean_cdrs", "error_cdrs", "mediation_ledger", "mediation_ledger_reasons", "reject_store"
            ),
        )
        assert result.success
        clean = result.asset_materializations_for_node("mediation")
        meta = {m.asset_key.to_user_string(): m.metadata for m in clean}
        assert meta["clean_cdrs"]["clean"].value == expected["clean"]
        assert meta["clean_cdrs"]["duplicates"].value == expected["duplicates"]
        assert meta["error_cdrs"]["rejected"].value == expected["rejected"]
        assert "UNKNOWN_CELL" in meta["error_cdrs"]["rejected_by_reason"].value
        # error-cdrs, read back over SASL_SSL: one reject per rejected CDR or duplicate, with its reason
        rejects = sandbox.rejects()
        assert len(rejects) == expected["rejected"] + expected["duplicates"]
        assert all(r["reason_codes"] for r in rejects.values())
        # the reject store holds every reject and duplicate, whole
        assert meta["reject_store"]["dagster/row_count"].value == expected["rejected"] + expected["duplicates"]
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert set(checks) == {
            "mediation_balances",
            "clean_cdrs_unique_record_id",
            "clean_cdrs_complete_and_typed",
            "rejection_rate",
        }
        assert all(c.passed for c in checks.values()), {k: c.metadata for k, c in checks.items()}

        # Everything consumed: the sensor now skips and says why.
        skipped = raw_cdrs_sensor(dg.build_sensor_context(instance=instance, resources=resources()))
        assert isinstance(skipped, dg.SkipReason) and "nothing new" in skipped.skip_message
        assert (
            dg.materialize(
                [mediation, mediation_source_offsets_consistent],
                instance=instance,
                resources=resources(),
                selection=dg.AssetSelection.checks(mediation_source_offsets_consistent),
            )
            .get_asset_check_evaluations()[0]
            .passed
        )

        # The topic recreated behind mediation's back: the sensor does not mediate and says why, the check fails.
        sandbox.recreate_raw_topic()
        sandbox.produce(GeneratorConfig(count=10, seed=44, error_rate=0.0, start_time=START))
        refused = raw_cdrs_sensor(dg.build_sensor_context(instance=instance, resources=resources()))
        assert isinstance(refused, dg.SkipReason) and "recreated or truncated" in refused.skip_message
        checked = dg.materialize(
            [mediation, mediation_source_offsets_consistent],
            instance=instance,
            resources=resources(),
            selection=dg.AssetSelection.checks(mediation_source_offsets_consistent),
            raise_on_error=False,
        )
        (evaluation,) = checked.get_asset_check_evaluations()
        assert not evaluation.passed and "recreated" in evaluation.metadata["problems"].value


def test_the_balance_check_fails_when_the_warehouse_and_the_ledger_disagree(sandbox):
    config = GeneratorConfig(count=3_000, seed=42, error_rate=0.0, start_time=START)
    sandbox.produce(config)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [mediation, mediation_balances, clean_cdrs_complete_and_typed],
            instance=instance,
            resources=resources(),
        )
        assert result.success
        # a row lost behind mediation's back, and one corrupted
        with sandbox.connect() as conn:
            conn.execute(
                f"delete from {sandbox.tables.clean} where record_id in "
                f"(select record_id from {sandbox.tables.clean} order by record_id fetch first 1 rows only)"
            )
            conn.execute(
                f"update {sandbox.tables.clean} set technology = 'LTE' where record_id in "
                f"(select record_id from {sandbox.tables.clean} order by record_id fetch first 1 rows only)"
            )
        checked = dg.materialize(
            [mediation, mediation_balances, clean_cdrs_complete_and_typed],
            instance=instance,
            resources=resources(),
            selection=dg.AssetSelection.checks(mediation_balances, clean_cdrs_complete_and_typed),
            raise_on_error=False,
        )
        evaluations = {c.check_name: c for c in checked.get_asset_check_evaluations()}
        assert not evaluations["mediation_balances"].passed
        assert not evaluations["clean_cdrs_complete_and_typed"].passed


def test_a_failure_inside_the_spark_tasks_fails_the_run_with_its_cause_and_the_sensor_retries_then_gives_up(
    sandbox, monkeypatch
):
    # The warehouse refuses every clean row: the Spark tasks' COPY raises inside Spark.
    with sandbox.connect() as conn:
        for statement in sandbox.tables.ddl():
            conn.execute(statement)
        conn.execute(
            f"create function {sandbox.schema}.refuse() returns trigger language plpgsql as "
            "$$ begin raise exception 'sandbox refuses clean rows'; end $$"
        )
        conn.execute(
            f"create trigger refuse before insert on {sandbox.tables.clean} "
            f"for each row execute function {sandbox.schema}.refuse()"
        )
    sandbox.produce(GeneratorConfig(count=200, seed=43, error_rate=0.0, start_time=START))
    monkeypatch.setenv("CDR_MEDIATION_RETRY_BACKOFF_S", "0")
    monkeypatch.setenv("CDR_MEDIATION_MAX_ATTEMPTS", "2")

    with dg.instance_for_test() as instance:

        def sensor_says():
            return raw_cdrs_sensor(dg.build_sensor_context(instance=instance, resources=resources()))

        job = dg.Definitions(assets=[mediation], jobs=[mediation_job], resources=resources()).resolve_job_def(
            mediation_job.name
        )

        def launch(request: dg.RunRequest) -> dg.ExecuteInProcessResult:  # as the daemon would
            return job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)

        first = sensor_says()
        assert isinstance(first, dg.RunRequest) and first.tags["cdr/attempt"] == "1"
        failed = launch(first)
        assert not failed.success
        # the run's error is the job's one-line cause: the warehouse's own message, and where the batch was
        failure = next(e for e in failed.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
        message = failure.step_failure_data.error.message
        assert "sandbox refuses clean rows" in message, message
        assert re.search(r"batch \d+ \(partition \d+ offsets \d+-\d+", message), message

        second = sensor_says()  # the same data, after the (zero) back-off: attempt 2
        assert isinstance(second, dg.RunRequest) and second.tags["cdr/attempt"] == "2"
        assert second.run_key != first.run_key  # Dagster never launches one run key twice
        assert not launch(second).success

        gave_up = sensor_says()  # two attempts failed: the sensor stops and says why
        assert isinstance(gave_up, dg.SkipReason)
        assert "gave up" in gave_up.skip_message and "sandbox refuses clean rows" in gave_up.skip_message


def test_asset_graph_has_lineage_from_raw_cdrs_to_mediation(sandbox):
    from cdr_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in ("clean_cdrs", "error_cdrs"):
        assert RAW_CDRS_KEY in graph.get(dg.AssetKey(key)).parent_keys
