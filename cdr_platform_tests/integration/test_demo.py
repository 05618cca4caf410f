"""`cdr demo` (`make demo`) end to end: quiet stage lines and a summary on the terminal, the rest in a log file."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdr_platform_tests.independent_bills import billed_months, verify_months
from cdr_platform_tests.integration.mediation_support import MediationSandbox

pytestmark = pytest.mark.timeout(600)


def test_the_demo_runs_every_stage_quietly_over_sasl_ssl_and_its_output_and_log_hold_no_password(
    sasl_ssl_stack, sasl_ssl_environment, tmp_path
):
    local_stack = sasl_ssl_stack  # every Kafka client of the demo on the SASL_SSL listener
    box = MediationSandbox.create(local_stack, tmp_path)
    rating_schema, billing_schema, marts_schema = (f"{box.schema}_{part}" for part in ("rating", "billing", "marts"))
    env = box.env(
        **sasl_ssl_environment,
        CDR_RATING_SCHEMA=rating_schema,
        CDR_BILLING_SCHEMA=billing_schema,
        CDR_MARTS_SCHEMA=marts_schema,
        CDR_DATA_DIR=str(tmp_path / "data"),
        CDR_STACK_DIR=str(local_stack.stack.directory),
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
    )
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cdr_platform.cli", "demo", "--count", "3000", "--seed", "7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
        if result.returncode == 0:  # the demo's bills recomputed independently, before its schemas go
            with box.connect() as conn:
                rated = f"{rating_schema}.rating_cdrs"
                months = billed_months(conn, rated, billing_schema)
                bills_checked, differences = verify_months(conn, rated, billing_schema, months)
    finally:
        with box.connect() as conn:
            for schema in (rating_schema, billing_schema, marts_schema):
                conn.execute(f"drop schema if exists {schema} cascade")
        box.drop()
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    # every stage announced and finished, the summary, and nothing of Dagster's or Kafka's own logs
    for stage in ("numbering_plan", "subscribers", "raw_cdrs", "mediation"):
        assert re.search(rf"^  > {stage}$", out, re.M) and re.search(rf"^  ok {stage}\b", out, re.M), out
    assert "cdr_pipeline run" in out and "SUCCESS" in out and "rating_cdrs 20" in out
    for stage in ("rate_cdrs", "bill_cdrs", "build_marts", "publish_bi"):  # the flow to the dashboard
        assert re.search(rf"^stage {stage}:", out, re.M), out
    assert re.search(r"^  billing_cdrs 20\d\d-\d\d +\d+ bills", out, re.M), out
    # every bill of the months it billed agrees to the cent with an independent recomputation
    # (independent_bills: Python and Decimal from rating_cdrs, the plan periods, the plans and VAT)
    announced = re.findall(r"^  billing_cdrs (20\d\d-\d\d) +([\d,]+) bills", out, re.M)
    assert [f"{m:%Y-%m}" for m in months] == [month for month, _ in announced], (months, announced)
    assert differences == [], differences[:20]
    assert bills_checked == sum(int(n.replace(",", "")) for _, n in announced) > 0
    dashboard = Path(re.search(r"^dashboard: (\S+\.html)", out, re.M)[1])
    assert dashboard.is_file() and str(dashboard).startswith(str(tmp_path))
    # the demo months' bills as provisional PDF documents, in the folder it names
    rendered = re.findall(r"^bill documents \(provisional PDFs\): ([\d,]+) in (\S+)$", out, re.M)
    assert rendered, out
    for count, folder in rendered:
        assert folder.startswith(str(tmp_path / "data" / "bills"))
        assert len(list(Path(folder).glob("provisional-*.pdf"))) == int(count.replace(",", "")) > 0
    assert re.search(r"^checks: \d+ passed, 0 failed$", out, re.M), out
    assert not re.search(r"DEBUG|INFO|WARN", out), out
    assert len(out.splitlines()) < 70, out  # a line per stage and step, and the summary
    assert result.stderr.strip() == "", result.stderr[-2000:]
    log_path = Path(re.search(r"logs: (\S+\.log)", out)[1])
    logged = log_path.read_text()
    assert "STEP_START" in logged or "produced 3,000 CDRs" in logged
    # the passwords the demo ran with (the warehouse's, the Kafka login's) appear nowhere it wrote
    passwords = [local_stack.warehouse.password, local_stack.kafka.sasl_password]
    assert all(len(p) >= 16 for p in passwords)
    for text in (out, result.stderr, logged):
        assert not any(p in text for p in passwords)
    log_path.unlink()
