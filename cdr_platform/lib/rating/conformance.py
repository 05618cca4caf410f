"""Rate the CGRateS conformance cases and compare with the costs CGRateS's tests assert.

    cdr rating conformance --plans DIR --cases FILE

DIR holds one folder per tariff plan (`tp_dir` of a case); FILE is a cases CSV
(case_id, tp_dir, global_rounding_decimals, tor, tenant, category, subject, destination,
setup_time_utc, usage, expected_cost, expected_connect_fee, ...). One line per case, then
"N passed, M failed"; exit code 1 if any failed. An expected cost of -1 means that no rating
profile applies: the case passes when the engine refuses to rate it.
"""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from cdr_platform.lib.rating.engine import NotRated, RatingEngine
from cdr_platform.lib.rating.plan import TariffPlanError, load_tariff_plan, parse_duration_ns, parse_time


def parse_setup_time(text: str) -> datetime:
    text = text.strip()
    if text == "*now":
        return datetime.now(UTC)
    return parse_time(text.removesuffix("(local)"))  # local time of the case: taken as UTC


def run_cases(plans_dir: Path, cases_file: Path, out=None) -> tuple[int, int]:
    out = out or sys.stdout
    passed = failed = 0
    plans: dict[str, object] = {}
    with cases_file.open(newline="", encoding="utf-8") as f:
        for case in csv.DictReader(f):
            case_id = case["case_id"]
            expected = Decimal(case["expected_cost"])
            try:
                key = case["tp_dir"]
                if key not in plans:
                    plans[key] = load_tariff_plan(plans_dir / key)
                engine = RatingEngine(plans[key], rounding_decimals=int(case["global_rounding_decimals"]))
                rating = engine.rate(
                    tor=case["tor"],
                    tenant=case["tenant"],
                    category=case["category"],
                    subject=case["subject"],
                    destination=case["destination"],
                    setup_time=parse_setup_time(case["setup_time_utc"]),
                    usage_ns=parse_duration_ns(case["usage"]),
                )
                got, fee = rating.cost, rating.connect_fee
                ok = got == expected and (
                    case.get("expected_connect_fee", "") == "" or fee == Decimal(case["expected_connect_fee"])
                )
                detail = f"got {got} (connect fee {fee})"
            except NotRated as exc:
                ok, detail = expected == -1, f"not rated: {exc}"
            except (TariffPlanError, ValueError) as exc:
                ok, detail = False, f"error: {exc}"
            passed, failed = passed + ok, failed + (not ok)
            print(
                f"{'PASS' if ok else 'FAIL'} {case_id}: expected {expected}"
                f" (connect fee {case.get('expected_connect_fee', '')}), {detail}",
                file=out,
            )
    print(f"{passed} passed, {failed} failed", file=out)
    return passed, failed
