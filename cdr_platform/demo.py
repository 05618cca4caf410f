"""`make demo`: run the main job on the local stack and print what each stage produced.

    python -m cdr_platform.demo [--count N] [--producer kafka-python|confluent]

Runs are recorded in DAGSTER_HOME (default .dagster_home/), so `make dev` shows them in the UI.
"""

from __future__ import annotations

import argparse
import os
import sys

from cdr_platform.lib.settings import REPO_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=int(os.environ.get("DEMO_CDR_COUNT", 100_000)))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("DEMO_SEED", 42)))
    parser.add_argument("--producer", default=os.environ.get("DEMO_PRODUCER", "kafka-python"))
    args = parser.parse_args(argv)

    os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home"))
    os.makedirs(os.environ["DAGSTER_HOME"], exist_ok=True)
    import dagster as dg

    from cdr_platform.definitions import defs

    job = defs.resolve_job_def("cdr_pipeline")
    run_config = {"ops": {"raw_cdrs": {"config": {"count": args.count, "seed": args.seed,
                                                  "producer": args.producer}}}}
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
        print()
        print(f"cdr_pipeline run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'}")
        print(f"{'stage':22} {'what it produced'}")
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization
            meta = {k: v.value for k, v in mat.metadata.items()}
            key = mat.asset_key.to_user_string()
            if "records" in meta:
                summary = (f"{meta['records']:,} CDRs to topic {meta['topic']} "
                           f"({meta['valid_records']:,} valid, {meta['injected_errors']:,} injected errors) "
                           f"at {meta['records_per_second']:,.0f}/s")
            elif key == "clean_cdrs":
                summary = (f"{meta['rows_in']:,} consumed from raw-cdrs in {meta['batches']} batch(es): "
                           f"{meta['clean']:,} clean into {meta['table']}, {meta['rejected']:,} rejected, "
                           f"{meta['duplicates']:,} duplicates, at {meta['rows_per_second']:,.0f} rows/s")
            elif key == "error_cdrs":
                summary = (f"{meta['rejected'] + meta['duplicates']:,} rejects and duplicates "
                           f"published to topic {meta['topic']}")
            elif "dagster/row_count" in meta and "table" in meta:
                summary = f"{meta['dagster/row_count']:,} rows in {meta['table']}"
            else:
                summary = "materialized"
            print(f"{key:22} {summary}")
        checks = list(result.get_asset_check_evaluations())
        if result.success:
            for day in _days_to_rate():
                rated = defs.resolve_job_def("rate_cdrs").execute_in_process(
                    instance=instance, partition_key=day, raise_on_error=False)
                for event in rated.get_asset_materialization_events():
                    meta = {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
                    print(f"{'rating_cdrs ' + day:22} {meta['input']:,} clean CDRs: {meta['rated']:,} rated, "
                          f"{meta['suspended']:,} in suspense; revenue {meta['revenue_total']:,.2f} MAD")
                    for line in meta["revenue_by_type"].splitlines()[2:]:
                        _, record_type, amount, _ = line.split("|")
                        print(f"{'':22}   {record_type.strip():6} {float(amount):>14,.2f} MAD")
                checks += list(rated.get_asset_check_evaluations())
                result = rated if not rated.success else result
        for check in checks:
            print(f"check {check.check_name}: {'passed' if check.passed else 'FAILED'}")
        if not result.success:
            for event in result.get_step_failure_events():
                print(f"step {event.step_key} failed: {event.step_failure_data.error.message.strip()}",
                      file=sys.stderr)
        return 0 if result.success else 1


def _days_to_rate() -> list[str]:
    """The days (UTC) that hold clean CDRs."""
    from cdr_platform.lib.mediation_store import tables_for
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.lib.warehouse import connect

    settings = load_settings()
    with connect(settings.warehouse) as conn:
        rows = conn.execute(f"select distinct cast(start_time as date) from {tables_for(settings).clean}"
                            "").fetchall()
    return sorted(d.isoformat() for (d,) in rows)


if __name__ == "__main__":
    sys.exit(main())
