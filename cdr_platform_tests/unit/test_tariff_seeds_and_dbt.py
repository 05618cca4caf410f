"""The default tariff as dbt seeds: generated from the numbering plan, loadable, portable."""

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from cdr_platform.defs.dbt.project import DBT_PROJECT_DIR, dbt_executable
from cdr_platform.lib.rating.cdr import rate_cdr
from cdr_platform.lib.rating.default_plan import SEEDS_DIR, write_seeds
from cdr_platform.lib.rating.engine import RatingEngine
from cdr_platform.lib.rating.plan import load_tariff_plan


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


def test_dbt_compiles_for_sql_server_without_a_server():
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
            "target_sqlserver",  # keep the local manifest as it is
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent), "HOME": "/tmp"},
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
