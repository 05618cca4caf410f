"""Benchmark: bill a month of rated CDRs and build the marts, `dbt build` on PostgreSQL.

    python -m benchmarks.bench_billing [--count 10000000] [--generated 1000000] [--runs 3] [--no-verify]

Fills throw-away schemas: `generated` valid CDRs over the first three local days of November
2026 (the tariff time zone), from the generator through the mediation rules, rated by the
rating job (one run per day, as Dagster runs them); then copies of the clean and rated rows in
SQL, copy k three days later with new record ids, until the month holds about `count` rated
CDRs over 30 days. Subscribers, plans and the VAT rate are the demo's. Then `dbt build` of
the billing models and the marts for November: one first build (untimed in the median: it
creates the tables), then `runs` re-bills of the month, each replacing it. Times per model
from dbt's run_results.json; the median over the re-bills. Then every November bill is recomputed
independently of dbt (cdr_platform_tests/independent_bills.py) and compared to the cent: any
difference is printed and the benchmark exits non-zero (`--no-verify` skips it). Then the
billing cycles (`--no-cycles` skips them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

from benchmarks.synthetic_warehouse import (
    CLEAN_LOAD_COLUMNS,
    fan_out,
    fill_clean_cdrs,
    load_reference,
    quiet_warehouse,
    record_ledger,
)
from cdr_platform.lib.settings import REPO_ROOT, load_settings, process_environment

MONTH_START, MONTH_END = date(2026, 11, 1), date(2026, 12, 1)
GENERATED_DAYS = 3  # the rating job rates these; the copies move them along the month


def _span_s(results: list[dict], model_names: set[str]) -> tuple[float, float]:
    """(wall seconds from the first model's start to the last one's end, summed seconds)."""
    chosen = [
        r for r in results if r["unique_id"].split(".")[-1] in model_names and r["unique_id"].startswith("model.")
    ]
    if len(chosen) != len(model_names):
        raise RuntimeError(f"dbt ran {sorted(r['unique_id'] for r in chosen)}, expected {sorted(model_names)}")
    spans = [next(t for t in r["timing"] if t["name"] == "execute") for r in chosen]
    first = min(datetime.fromisoformat(s["started_at"].rstrip("Z")) for s in spans)
    last = max(datetime.fromisoformat(s["completed_at"].rstrip("Z")) for s in spans)
    return (last - first).total_seconds(), sum(r["execution_time"] for r in chosen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--generated", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the schemas (to study a plan), print their names")
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip recomputing every November bill independently (cdr_platform_tests/independent_bills.py)",
    )
    parser.add_argument(
        "--no-cycles", dest="cycles", action="store_false", help="skip closing the month and the late CDR's adjustment"
    )
    args = parser.parse_args()
    copies = -(-args.count // args.generated) - 1
    if (copies + 1) * GENERATED_DAYS > 30:
        parser.error("count / generated must be at most 10 (the copies fill one month)")

    import psycopg

    from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
    from cdr_platform.lib.ingest.generator import GeneratorConfig
    from cdr_platform.lib.mediation.store import MediationTables
    from cdr_platform.lib.rating.store import RATED_COLUMNS, SUSPENSE_COLUMNS, RatingTables
    from cdr_platform.lib.tariff_clock import TariffClock

    settings = load_settings()
    conninfo = settings.warehouse.conninfo()
    tag = uuid.uuid4().hex[:6]
    schemas = {
        "CDR_MEDIATION_SCHEMA": f"bench_clean_{tag}",
        "CDR_RATING_SCHEMA": f"bench_rating_{tag}",
        "CDR_BILLING_SCHEMA": f"bench_billing_{tag}",
        "CDR_MARTS_SCHEMA": f"bench_marts_{tag}",
    }
    env = {**process_environment(), **schemas, "PYSPARK_PYTHON": sys.executable}
    clock = TariffClock(settings.tariff_timezone)
    mediation = MediationTables(schemas["CDR_MEDIATION_SCHEMA"])
    rating = RatingTables(schemas["CDR_RATING_SCHEMA"])
    try:
        subprocess.run(dbt_command("seed", "--quiet", "--full-refresh"), check=True, cwd=DBT_PROJECT_DIR, env=env)
        started = time.perf_counter()
        with psycopg.connect(conninfo) as conn:
            load_reference(conn)
            config = GeneratorConfig(
                count=args.generated,
                seed=13,
                error_rate=0.0,
                start_time=clock.day_start(MONTH_START),
                span_hours=24 * GENERATED_DAYS,
            )
            generated, _ = fill_clean_cdrs(conn, mediation, config)
            conn.commit()
        for offset in range(GENERATED_DAYS):
            day = MONTH_START + timedelta(days=offset)
            proc = subprocess.run(
                [sys.executable, "-m", "cdr_platform.cli", "rate", "--day", day.isoformat()],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
        with psycopg.connect(conninfo) as conn:
            fan_out(conn, mediation.clean, CLEAN_LOAD_COLUMNS, copies, shift_days=GENERATED_DAYS)
            record_ledger(conn, mediation, MONTH_END)  # so the revenue-assurance mart joins every clean CDR
            for parent, columns in ((rating.rated, RATED_COLUMNS), (rating.suspense, SUSPENSE_COLUMNS)):
                for offset in range(GENERATED_DAYS, (copies + 1) * GENERATED_DAYS):
                    day = MONTH_START + timedelta(days=offset)
                    conn.execute(
                        f"create table {parent}_d{day:%Y%m%d} partition of {parent}"
                        f" for values from ('{day}') to ('{day + timedelta(days=1)}')"
                    )
                fan_out(conn, parent, [c.name for c in columns], copies, shift_days=GENERATED_DAYS)
            rated, rated_cost = conn.execute(f"select count(*), sum(cost) from {rating.rated}").fetchone()
            conn.commit()
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for table in (mediation.clean, mediation.ledger, rating.rated, rating.suspense):
                conn.execute(f"vacuum (analyze) {table}")
        print(
            f"{rated:,} rated CDRs over {(copies + 1) * GENERATED_DAYS} days of November "
            f"({generated:,} generated and rated, the rest copies), ready in {time.perf_counter() - started:.0f} s",
            flush=True,
        )

        dbt_vars = json.dumps({"billing_month_start": f"{MONTH_START}", "billing_month_end": f"{MONTH_END}"})
        billing_models = {"billing_cdrs", "allowance_usage", "invoice_lines"}
        runs = []
        for run in range(args.runs + 1):
            quiet_warehouse(conninfo)
            with tempfile.TemporaryDirectory(prefix="bench-billing-") as target:
                command = dbt_command(
                    "build",
                    "--quiet",
                    "--select",
                    "tag:billing",
                    "tag:marts",
                    "--vars",
                    dbt_vars,
                    target_path=Path(target),
                )
                started = time.perf_counter()
                proc = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
                wall = time.perf_counter() - started
                if proc.returncode != 0:
                    print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                    return 1
                results = json.loads((Path(target) / "run_results.json").read_text())["results"]
            marts = {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith("model.")}
            marts -= billing_models
            billing_cdrs = next(r["execution_time"] for r in results if r["unique_id"].endswith(".billing_cdrs"))
            billing_wall, _ = _span_s(results, billing_models)
            marts_wall, marts_sum = _span_s(results, marts)
            tests = sum(not r["unique_id"].startswith("model.") for r in results)
            label = "first build" if run == 0 else f"re-bill {run}"
            print(
                f"{label}: billing_cdrs {billing_cdrs:.1f} s, the 3 billing models {billing_wall:.1f} s, "
                f"{len(marts)} marts {marts_wall:.1f} s ({marts_sum:.1f} s summed over 2 threads), "
                f"dbt build {wall:.1f} s with its {tests} tests",
                flush=True,
            )
            per_model = sorted(
                (
                    (r["unique_id"].split(".")[-1], r["execution_time"])
                    for r in results
                    if r["unique_id"].startswith("model.")
                ),
                key=lambda item: -item[1],
            )
            print("  per model: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in per_model), flush=True)
            if run:
                runs.append((billing_cdrs, billing_wall, marts_wall, wall))
        with psycopg.connect(conninfo) as conn:
            bills, usage = conn.execute(
                f"select count(*), sum(usage_amount) from {schemas['CDR_BILLING_SCHEMA']}.billing_cdrs"
                f" where billing_month = '{MONTH_START}'"
            ).fetchone()
        verified = _verify_bills(conninfo, rating.rated, schemas["CDR_BILLING_SCHEMA"]) if args.verify else None
        differences = verified[2] if verified else []
        cycles = _bench_cycles(conninfo, env, schemas, rating.rated, args.runs, dbt_vars) if args.cycles else None
    finally:
        if args.keep:
            print(" ".join(f"{k}={v}" for k, v in schemas.items()))
        else:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                for schema in schemas.values():
                    conn.execute(f"drop schema if exists {schema} cascade")
    if not runs:
        return 1 if differences else 0
    median = [statistics.median(column) for column in zip(*runs, strict=True)]
    print(
        f"\n{rated:,} rated CDRs (cost {rated_cost:,.2f} MAD) -> {bills:,} bills (usage {usage:,.2f} MAD). "
        f"Median of {len(runs)} re-bills: billing_cdrs {median[0]:.1f} s (target < 10 s), the 3 billing models "
        f"{median[1]:.1f} s, all marts {median[2]:.1f} s (target < 60 s), whole dbt build {median[3]:.1f} s"
    )
    if cycles:
        print(
            f"Closing November ({cycles['documents']:,} documents): median {cycles['close']:.1f} s of {args.runs} "
            f"(target < 10 s); its PDFs {cycles['pdf']:.1f} s once. A late CDR's adjustment, end to end in dbt "
            f"(the month re-billed and billing_adjustments): median {cycles['late']:.1f} s of {args.runs} "
            f"(target < 5 s; billing_adjustments alone {cycles['adjustments']:.1f} s)"
        )
    if verified and not differences:
        print(
            f"Independent recomputation (Python, Decimal): {verified[0]:,} November bills agree to the cent "
            f"with billing_cdrs ({verified[1]:.1f} s)"
        )
    if differences:
        print(f"independent recomputation: {len(differences):,} difference(s), see above", file=sys.stderr)
        return 1
    return 0


def _verify_bills(conninfo: str, rated_table: str, billing_schema: str) -> tuple[int, float, list[str]]:
    """Every November bill recomputed independently of dbt (cdr_platform_tests/independent_bills.py:
    Python and Decimal from the rated CDRs, the plan periods, the plan catalogue and VAT) and
    compared with billing_cdrs; prints the outcome, returns (bills, seconds, differences)."""
    import psycopg

    from cdr_platform_tests.independent_bills import compare, recompute_bills

    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        expected = recompute_bills(conn, rated_table, billing_schema, MONTH_START)
        differences = compare(conn, billing_schema, MONTH_START, expected)
    seconds = time.perf_counter() - started
    if differences:
        print(
            f"independent recomputation: {len(differences):,} difference(s) over {len(expected):,} bills "
            f"({seconds:.1f} s):",
            flush=True,
        )
        for difference in differences[:50]:
            print(f"  {difference}", flush=True)
    else:
        print(f"independent recomputation: {len(expected):,} bills agree to the cent ({seconds:.1f} s)", flush=True)
    return len(expected), seconds, differences


def _bench_cycles(conninfo: str, env: dict, schemas: dict, rated_table: str, runs: int, dbt_vars: str) -> dict:
    """Close November `runs` times (its issued record removed between runs: a benchmark's undo, never
    the product's), render its PDFs once, then `runs` late CDRs each billed again in dbt up to
    billing_adjustments. Medians in seconds."""
    import psycopg

    from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_command
    from cdr_platform.lib.billing.bills import month_folder
    from cdr_platform.lib.billing.cycles import close_month, issued_documents, write_issued_documents
    from cdr_platform.lib.billing.documents import Operator
    from cdr_platform.lib.rating.store import RATED_COLUMNS
    from cdr_platform.lib.warehouse.dialects import POSTGRES

    billing = schemas["CDR_BILLING_SCHEMA"]
    closes, lates, adjustments = [], [], []
    for run in range(runs):
        quiet_warehouse(conninfo)
        with psycopg.connect(conninfo) as conn:
            result = close_month(
                conn,
                dialect=POSTGRES,
                billing_schema=billing,
                rating_table=rated_table,
                month=MONTH_START,
                issue_date=MONTH_END + timedelta(days=4),
                closed_by="bench_billing",
            )
            closes.append(result.seconds)
            print(f"close {run + 1}: {result.summary()}", flush=True)
            if run < runs - 1:  # undo, to close again
                for table in ("issued_invoice_lines", "issued_invoices", "billing_closed_batches"):
                    conn.execute(f"delete from {billing}.{table}")
                conn.execute(f"delete from {billing}.billing_closed_months")
                conn.commit()
    with psycopg.connect(conninfo) as conn:
        documents = issued_documents(conn, billing, MONTH_START, Operator(name="Benchmark operator"))
    with tempfile.TemporaryDirectory(prefix="bench-documents-") as folder:
        started = time.perf_counter()
        write_issued_documents(documents, month_folder(Path(folder), MONTH_START))
        pdf = time.perf_counter() - started
    models = ["allowance_usage", "billing_cdrs", "invoice_lines", "billing_adjustments"]
    for run in range(runs):
        with psycopg.connect(conninfo) as conn:  # a late CDR: a rated call of a later mediation batch
            names = [c.name for c in RATED_COLUMNS]
            chosen = {"record_id": "%(id)s", "batch_id": "batch_id + 1000000"}
            conn.execute(
                f"insert into {rated_table} ({', '.join(names)}) select "
                + ", ".join(chosen.get(n, n) for n in names)
                + f" from {rated_table} where rating_day = (select max(rating_day) from {rated_table})"
                " and destination_class = 'international' limit 1",
                {"id": f"late-{run}"},
            )
            conn.commit()
        quiet_warehouse(conninfo)
        with tempfile.TemporaryDirectory(prefix="bench-late-") as target:
            command = dbt_command("run", "--quiet", "--select", *models, "--vars", dbt_vars, target_path=Path(target))
            started = time.perf_counter()
            proc = subprocess.run(command, cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True)
            lates.append(time.perf_counter() - started)
            if proc.returncode != 0:
                raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
            results = json.loads((Path(target) / "run_results.json").read_text())["results"]
            adjustments.append(
                next(r["execution_time"] for r in results if r["unique_id"].endswith("billing_adjustments"))
            )
        with psycopg.connect(conninfo) as conn:
            pending = conn.execute(
                f"select count(*), sum(late_cdrs), sum(total_amount) from {billing}.billing_adjustments"
            ).fetchone()
        print(f"late CDR {run + 1}: dbt {lates[-1]:.1f} s; pending adjustments {pending}", flush=True)
    return {
        "documents": len(documents),
        "close": statistics.median(closes),
        "pdf": pdf,
        "late": statistics.median(lates),
        "adjustments": statistics.median(adjustments),
    }


if __name__ == "__main__":
    sys.exit(main())
