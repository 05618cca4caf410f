"""The default tariff as dbt seeds: generated from the numbering plan, loadable, portable."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_executable
from cdr_platform.lib.rating.cdr import rate_cdr
from cdr_platform.lib.rating.default_plan import SEEDS_DIR, write_seeds
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import load_tariff_plan
from cdr_platform.lib.warehouse.sql_lint import tsql_model_problems


def test_committed_seeds_are_what_the_default_plan_generates(tmp_path):
    for generated in write_seeds(tmp_path):
        assert generated.read_text() == (SEEDS_DIR / generated.name).read_text(), (
            f"{generated.name} is stale: run cdr rating write-default-plan"
        )


def test_the_default_tariff_prices_every_kind_of_demo_traffic():
    engine = RatingEngine(load_tariff_plan(SEEDS_DIR))
    peak = datetime(2026, 11, 25, 10, tzinfo=UTC)  # a Wednesday
    weekend = datetime(2026, 11, 28, 10, tzinfo=UTC)

    def cost(**kw):
        args = {
            "record_type": "voice",
            "direction": "outgoing",
            "served_operator_id": "IAM",
            "segment": "consumer_prepaid",
            "other_msisdn": "+212661234567",
            "technology": "4G",
            "start_time": peak,
            "duration_s": 90,
            "data_volume_bytes": None,
        }
        args.update(kw)
        return rate_cdr(engine, **args)

    assert cost().cost == cost(duration_s=90).cost and cost().category == "call"  # on-net 1/1: 90 s at 0.50
    assert str(cost().cost) == "0.75"
    assert str(cost(other_msisdn="+212612345678").cost) == "1.90"  # off-net 60/1 + 0.10 connect
    assert cost(start_time=weekend).cost < cost().cost  # weekend band
    assert cost(other_msisdn="+33612345678").destination_id == "INTL_EUROPE"
    assert cost(direction="incoming").cost == 0
    assert str(cost(record_type="sms", duration_s=None).cost) == "0.20"
    assert str(cost(record_type="data", duration_s=300, data_volume_bytes=10_000_000).cost) == "0.50"
    # the seed's prices by technology: categories call_2G..call_5G (business segment, on-net)
    assert cost(segment="business", technology="2G").category == "call_2G"
    assert cost(segment="business", technology="2G").cost > cost(segment="business", technology="5G").cost


SQLSERVER_TARGET_PATH = "target_sqlserver"  # beside the local manifest, which stays as it is


@pytest.fixture(scope="module")
def compiled_for_sql_server() -> Path:
    """Every model, test and hook of the project compiled for the sqlserver target, no server."""
    result = subprocess.run(
        [
            dbt_executable(),
            "compile",
            "--target",
            "sqlserver",
            "--no-populate-cache",
            "--no-introspect",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            SQLSERVER_TARGET_PATH,
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent), "HOME": "/tmp"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return DBT_PROJECT_DIR / SQLSERVER_TARGET_PATH / "compiled" / "cdr_platform"


def test_every_model_test_and_hook_compiles_to_portable_tsql(compiled_for_sql_server):
    compiled = [f for f in compiled_for_sql_server.rglob("*.sql") if f.is_file()]
    models = {f.stem for f in compiled if "models" in f.parts}
    # every model of the project, billing and marts included, is in the compiled set
    assert {"billing_cdrs", "invoice_lines", "dim_date", "fct_revenue_daily", "fct_revenue_assurance_daily"} <= models
    problems = {str(f.relative_to(compiled_for_sql_server)): tsql_model_problems(f.read_text()) for f in compiled}
    assert {name: found for name, found in problems.items() if found} == {}
    # the BI role's grants, as SQL Server gets them
    hook = next(f for f in compiled if "hooks" in f.parts).read_text()
    assert "grant select on schema::marts to cdr_bi" in hook


@pytest.mark.parametrize(
    "sql, problem",
    [
        ("select a = b as flag from t", "boolean expression as a column"),
        ("select x from t order by x", "order by without top"),
        ("with a as (with b as (select 1 as x) select x from b) select x from a", "a WITH inside the CTE"),
        ("select true as x", "true/false literal"),
        ("select cast(x as varchar(max)) as y from t", "varchar(max)"),
        ("select x::int from t", "'::' cast"),
        ("select * from t limit 5", "limit"),
        ("select * from t where a ilike 'x%'", "ilike"),
        ("select a, count(*) as n from t group by 1", "group by ordinal"),
    ],
)
def test_the_tsql_lint_refuses_what_only_postgresql_takes(sql, problem):
    assert any(p.startswith(problem) for p in tsql_model_problems(sql)), tsql_model_problems(sql)


def test_the_tsql_lint_accepts_top_window_ordering_and_grant_scopes():
    assert tsql_model_problems("select top 5 x from t order by x") == []
    assert tsql_model_problems("select row_number() over (order by x) as r from t") == []
    assert tsql_model_problems("select case when a = b then 1 else 0 end as flag from t") == []
