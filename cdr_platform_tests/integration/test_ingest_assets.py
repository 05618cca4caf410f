"""The ingest assets materialize against the real stack, with their metadata and checks."""

import dagster as dg

from cdr_platform.defs.ingest.assets import cell_catalogue, numbering_plan, raw_cdrs, subscribers
from cdr_platform.defs.ingest.checks import (
    raw_cdrs_offsets_account_for_every_record,
    subscribers_match_numbering_plan,
)
from cdr_platform.defs.resources import KafkaResource, resources_for
from cdr_platform.lib.kafka_io import end_offsets
from cdr_platform.lib.warehouse import connect
from cdr_platform.utils.environment_helpers import Environment


def resources(settings, topic):
    """The code location's own resources, with the test's topic as raw-cdrs."""
    out = resources_for(settings, Environment.LOCAL)
    out["kafka"] = KafkaResource.for_settings(settings, raw_cdrs_topic=topic)
    return out


ASSETS = [
    numbering_plan,
    cell_catalogue,
    subscribers,
    raw_cdrs,
    subscribers_match_numbering_plan,
    raw_cdrs_offsets_account_for_every_record,
]


def test_generate_cdrs_materializes_reference_tables_and_raw_cdrs(local_stack, fresh_topic):
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(2):  # a re-run replaces the reference tables, never doubles them
            result = dg.materialize(
                ASSETS,
                instance=instance,
                resources=resources(local_stack, fresh_topic),
                run_config={
                    "ops": {
                        "raw_cdrs": {
                            "config": {"count": 5_000, "error_rate": 0.1, "start_time": "2026-11-01T00:00:00Z"}
                        }
                    }
                },
            )
            assert result.success
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("raw_cdrs")
        + result.asset_materializations_for_node("subscribers")
    }
    assert meta["raw_cdrs"]["records"].value == 5_000
    assert meta["raw_cdrs"]["injected_errors"].value == 500
    assert "duplicate_record" in meta["raw_cdrs"]["by_injected_error"].value
    assert meta["raw_cdrs"]["traffic_by_hour"].value.count("\n") == 25  # a bar per hour
    assert meta["subscribers"]["dagster/row_count"].value == 300
    assert sum(end_offsets(local_stack.kafka, fresh_topic).values()) == 10_000
    assert all(c.passed for c in result.get_asset_check_evaluations())
    with connect(local_stack.warehouse) as conn:  # the resource's password is an EnvVar, resolved in runs
        assert conn.execute("select count(*) from reference.subscribers").fetchone()[0] == 300
        assert conn.execute("select count(*) from reference.cell_catalogue").fetchone()[0] == 120


def test_bad_run_config_fails_before_anything_is_produced(local_stack, fresh_topic):
    before = end_offsets(local_stack.kafka, fresh_topic)
    result = dg.materialize(
        [raw_cdrs],
        resources=resources(local_stack, fresh_topic),
        run_config={"ops": {"raw_cdrs": {"config": {"count": 100, "error_rate": 1.5}}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "error_rate must be between 0 and 1" in str(failure.cause.message if failure.cause else failure.message)
    assert end_offsets(local_stack.kafka, fresh_topic) == before
