"""Benchmark: the pipeline under live traffic - `dagster dev` with its daemon, CDRs at a steady rate.

    python -m benchmarks.bench_soak                      # 2,000 CDRs/s for 15 minutes
    python -m benchmarks.bench_soak --profile short      # 2,000 CDRs/s for 2 minutes
    python -m benchmarks.bench_soak --rate 500 --seconds 300

Everything runs by itself, as under `make dev`: the mediation sensor, rating per day, billing per
month, the marts sensor (sensor interval 10 s). Reported (cdr_platform.utils.soak): the marts'
freshness lag from a CDR's production to the marts holding it (p50, p95, max), how long the marts
took to catch up once production stopped, runs by job and status, the most runs queued and running
at once, the peak memory of dagster dev's processes (webserver, daemon, code server, run workers,
Spark drivers) and the disk growth (warehouse database, DAGSTER_HOME, checkpoint).
Target on the 2-core build machine at 2,000 CDRs/s: marts p95 lag under 5 minutes, queue bounded,
no failed run, disk growth bounded. The figures go to stdout as JSON too (--json FILE).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from cdr_platform.defs.dbt.project import dbt_command
from cdr_platform.lib.settings import load_settings
from cdr_platform.utils.soak import Soak, summary_line

PROFILES = {"full": (2000.0, 900.0), "short": (2000.0, 120.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--rate", type=float, default=None, help="CDRs per second (default: the profile's)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of traffic (default: the profile's)")
    parser.add_argument("--sensor-interval", type=int, default=10)
    parser.add_argument("--catch-up-timeout", type=float, default=900)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    rate, seconds = PROFILES[args.profile]
    rate, seconds = args.rate or rate, args.seconds or seconds

    # a run worker may still write into DAGSTER_HOME as dagster dev stops: never lose the report to it
    with tempfile.TemporaryDirectory(prefix="cdr-soak-", ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        soak = Soak(load_settings(), work, rate=rate, seconds=seconds, sensor_interval_s=args.sensor_interval)
        try:
            soak.prepare_warehouse(dbt_command("seed", "--quiet", target_path=work / "dbt_target"))
            soak.start_dagster()
            print(f"dagster dev up; producing {rate:,.0f} CDRs/s for {seconds:,.0f} s", flush=True)
            soak.start_producing()
            last = 0.0

            def progress(s: Soak, counts) -> None:
                nonlocal last
                if time.monotonic() - last >= 30:
                    last = time.monotonic()
                    held = counts[0] if counts else 0
                    print(
                        f"  sent {s.sent:,}, marts hold {held:,}, queued at most {s.report.max_queued},"
                        f" failed {s.report.failed_runs}, memory {s.report.rss_end_mb:,.0f} MB",
                        flush=True,
                    )

            soak.wait_caught_up(seconds + args.catch_up_timeout, on_poll=progress)
            report = soak.finish()
            print(summary_line(report))
            figures = report.as_dict()
            print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2), flush=True)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2))
        finally:
            soak.cleanup()
    return 0 if report.caught_up else 1


if __name__ == "__main__":
    sys.exit(main())
