"""A soak of the whole pipeline under `dagster dev`: CDRs at a steady rate, the marts' freshness measured.

Used by the soak benchmark (benchmarks/bench_soak.py) and the end-to-end test's short soak. A soak
runs on throw-away topics, schemas, checkpoint and DAGSTER_HOME, with the project's own sensors
doing everything: mediation, rating per day, billing per month, the marts.

Freshness lag: production is recorded as a timeline of (second, CDRs sent by its end); the marts
are polled every few seconds for the CDRs they hold (rated or in suspense, in
fct_revenue_assurance_daily). A second's lag is the first poll at which the marts hold every CDR
sent by the end of that second, less the second's start: conservative by up to a second and a poll.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdr_platform.lib.settings import Settings, process_environment
from cdr_platform.lib.warehouse import postgres

RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId jobName status } } } }"
IN_QUEUE = ("QUEUED", "NOT_STARTED")
RUNNING = ("STARTING", "STARTED")


@dataclass
class SoakReport:
    rate: float
    seconds: float
    produced: int = 0
    landed: int = 0  # CDRs dropped into a landing folder as a file (collected by the landing sensor's runs)
    produce_seconds: float = 0.0
    lags_s: list[float] = field(default_factory=list)
    caught_up: bool = False
    catch_up_s: float | None = None  # from the end of production to the marts holding everything
    marts_held: int = 0
    billed: int = 0
    runs: dict[str, dict[str, int]] = field(default_factory=dict)  # job -> status -> runs
    max_queued: int = 0
    max_running: int = 0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    disk_start_mb: float = 0.0
    disk_end_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    def percentile(self, p: float) -> float | None:
        if not self.lags_s:
            return None
        ordered = sorted(self.lags_s)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def failed_runs(self) -> int:
        return sum(statuses.get("FAILURE", 0) for statuses in self.runs.values())

    def as_dict(self) -> dict:
        return {
            "rate": self.rate,
            "seconds": self.seconds,
            "produced": self.produced,
            "produce_seconds": round(self.produce_seconds, 1),
            "lag_p50_s": self.percentile(50),
            "lag_p95_s": self.percentile(95),
            "lag_max_s": max(self.lags_s) if self.lags_s else None,
            "lag_mean_s": round(statistics.fmean(self.lags_s), 1) if self.lags_s else None,
            "caught_up": self.caught_up,
            "catch_up_s": self.catch_up_s,
            "marts_held": self.marts_held,
            "billed": self.billed,
            "runs": self.runs,
            "failed_runs": self.failed_runs,
            "max_queued": self.max_queued,
            "max_running": self.max_running,
            "rss_peak_mb": round(self.rss_peak_mb),
            "rss_end_mb": round(self.rss_end_mb),
            "disk_start_mb": round(self.disk_start_mb, 1),
            "disk_end_mb": round(self.disk_end_mb, 1),
            "notes": self.notes,
        }


def session_rss_mb(session_id: int) -> float:
    """Resident memory of every process of a session (dagster dev, its code server, runs, Spark)."""
    import os

    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == session_id:  # field 6 of stat: the session id
            total += int(fields[21]) * page  # field 24: resident pages
    return total / 2**20


def _du_mb(*paths: Path) -> float:
    total = 0
    for root in paths:
        if root.exists():
            total += sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return total / 2**20


class Soak:
    """Sandbox, `dagster dev`, a steady producer and the marts' poller; `report` gathers the figures."""

    def __init__(self, settings: Settings, work_dir: Path, rate: float, seconds: float, sensor_interval_s: int = 10):
        from cdr_platform.lib.kafka_io import BROKER_CLOCK, ensure_topics, topic_size_config

        self.settings, self.work_dir = settings, work_dir
        tag = uuid.uuid4().hex[:8]
        self.raw_topic, self.error_topic = f"soak-raw-{tag}", f"soak-err-{tag}"
        self.partials_topic = f"soak-partials-{tag}"
        self.landing_dir = work_dir / "landing"
        self.schemas = {
            "CDR_MEDIATION_SCHEMA": f"soak_med_{tag}",
            "CDR_RATING_SCHEMA": f"soak_rat_{tag}",
            "CDR_TARIFF_SCHEMA": f"soak_tar_{tag}",
            "CDR_BILLING_SCHEMA": f"soak_bil_{tag}",
            "CDR_MARTS_SCHEMA": f"soak_mrt_{tag}",
        }
        self.dagster_home = work_dir / "dagster_home"
        self.checkpoint = work_dir / "checkpoint"
        self.env = {
            "CDR_RAW_TOPIC": self.raw_topic,
            "CDR_ERROR_TOPIC": self.error_topic,
            "CDR_MEDIATION_CHECKPOINT": str(self.checkpoint),
            "CDR_SENSOR_INTERVAL_S": str(sensor_interval_s),
            "CDR_PARTIALS_TOPIC": self.partials_topic,
            "CDR_LANDING_DIR": str(self.landing_dir),
            "CDR_COLLECTION_SETTLE_S": "0",
            **self.schemas,
        }
        self.report = SoakReport(rate=rate, seconds=seconds)
        self.timeline: list[tuple[float, int]] = []  # (window start, CDRs sent by its end)
        self.sent = 0
        self.seed = int(tag, 16) % 100_000
        self.dev = None
        self._producer_thread: threading.Thread | None = None
        self._produce_error: BaseException | None = None
        self.produce_ended_at: float | None = None
        ensure_topics(
            settings.kafka,
            [self.raw_topic, self.error_topic],
            settings.kafka.topic_partitions,
            {self.raw_topic: {**BROKER_CLOCK, **topic_size_config(settings.kafka)}},
        )

    # -- set-up ------------------------------------------------------------------------------

    def prepare_warehouse(self, seed_command: list[str]) -> None:
        """The reference data the pipeline reads, and the tariff seeded into the soak's schema by
        `seed_command` (defs.dbt.project.dbt_command("seed", ...): the caller's, utils know no defs)."""

        from cdr_platform.lib.reference.subscribers import generate_subscribers
        from cdr_platform.lib.reference.tables import (
            NUMBERING_PLAN_TABLE,
            SUBSCRIBER_PERIODS_TABLE,
            SUBSCRIBERS_TABLE,
            numbering_plan_rows,
            subscriber_period_rows,
            subscriber_rows,
        )
        from cdr_platform.lib.warehouse import replace_table

        with postgres.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            replace_table(conn, SUBSCRIBERS_TABLE, subscriber_rows(generate_subscribers()))
            replace_table(conn, SUBSCRIBER_PERIODS_TABLE, subscriber_period_rows(generate_subscribers()))
            replace_table(conn, NUMBERING_PLAN_TABLE, numbering_plan_rows())
        subprocess.run(
            seed_command,
            check=True,
            env=process_environment(**self.env),
            timeout=300,
            capture_output=True,
        )
        self.report.disk_start_mb = self._disk_mb()

    def start_dagster(self, log_name: str = "dagster-dev.log"):

        from cdr_platform.utils.dagster_dev import DagsterDev

        self.dev = DagsterDev(self.dagster_home, self.work_dir / log_name, env=process_environment(**self.env))
        loaded = self.dev.wait_until_loaded()
        if loaded.get("__typename") != "RepositoryLocation":
            raise RuntimeError(f"the code location did not load: {loaded}")
        return self.dev

    def stop_dagster(self) -> bool:
        stopped = self.dev.stop() if self.dev else True
        self.dev = None
        return stopped

    # -- traffic -----------------------------------------------------------------------------

    def start_producing(self, start_time: datetime | None = None, span_hours: float = 2.0) -> None:
        """CDRs at `rate` per second for `seconds`, in a thread; start times over the span (default:
        the last `span_hours` before now, all valid: the lag is measured on clean CDRs)."""
        start_time = start_time or datetime.now(UTC) - timedelta(hours=span_hours, minutes=5)
        self._producer_thread = threading.Thread(
            target=self._produce, args=(start_time, span_hours), name="soak-producer", daemon=True
        )
        self._producer_thread.start()

    def _produce(self, start_time: datetime, span_hours: float) -> None:
        from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
        from cdr_platform.lib.ingest.producers import make_producer

        rate, count = self.report.rate, int(self.report.rate * self.report.seconds)
        config = GeneratorConfig(
            count=count, seed=self.seed, error_rate=0.0, start_time=start_time, span_hours=span_hours
        )
        producer = make_producer("confluent", self.settings.kafka)
        try:
            started = window = time.monotonic()
            for chunk in CdrGenerator(config).chunks():
                for i in range(len(chunk)):
                    producer.send(self.raw_topic, chunk.keys[i], chunk.values[i], chunk.headers(i))
                    self.sent += 1
                    if self.sent % 50 == 0:
                        ahead = self.sent / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                        now = time.monotonic()
                        if now - window >= 1.0:
                            producer.flush(30)  # sent means on the broker
                            self.timeline.append((window, self.sent))
                            window = now
            producer.flush(60)
            self.timeline.append((window, self.sent))
            self.report.produced = self.sent
            self.report.produce_seconds = time.monotonic() - started
        except BaseException as exc:  # reported by wait_produced
            self._produce_error = exc
        finally:
            producer.close()
            self.produce_ended_at = time.monotonic()

    def land_file(self, source: str, name: str, count: int, start_time: datetime, span_hours: float) -> Path:
        """`count` valid CDRs as a cdr.v1 JSON Lines file dropped into `source`'s landing folder, as a
        network element delivers one: written under a temporary name, then renamed."""
        from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig

        config = GeneratorConfig(
            count=count, seed=self.seed + 1, error_rate=0.0, start_time=start_time, span_hours=span_hours
        )
        lines = [value for chunk in CdrGenerator(config).chunks() for value in chunk.values]
        folder = self.landing_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.part"
        partial.write_bytes(b"\n".join(lines) + b"\n")
        partial.rename(folder / name)
        self.report.landed += len(lines)
        return folder / name

    def producing(self) -> bool:
        return self._producer_thread is not None and self._producer_thread.is_alive()

    def wait_produced(self) -> None:
        if self._producer_thread:
            self._producer_thread.join()
        if self._produce_error:
            raise RuntimeError(f"the soak's producer failed: {self._produce_error}") from self._produce_error

    # -- observation -------------------------------------------------------------------------

    def marts_counts(self) -> tuple[int, int] | None:
        """(CDRs the marts hold - rated or in suspense -, CDRs billed), None before the marts exist."""
        marts = self.schemas["CDR_MARTS_SCHEMA"]
        with postgres.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            if conn.execute("select to_regclass(%s)", (f"{marts}.fct_revenue_assurance_daily",)).fetchone()[0] is None:
                return None
            held, billed = conn.execute(
                f"select coalesce(sum(rated + in_suspense), 0), coalesce(sum(billed), 0)"
                f" from {marts}.fct_revenue_assurance_daily"
            ).fetchone()
        return int(held), int(billed)

    def runs(self) -> list[dict]:
        try:
            return self.dev.graphql(RUNS_QUERY)["runsOrError"]["results"] if self.dev else []
        except OSError:  # the webserver is busy: ask again next time
            return []

    def poll(self) -> tuple[int, int] | None:
        """One look: the marts, the run queue, the memory of dagster dev's processes."""
        counts = self.marts_counts()
        now = time.monotonic()
        if counts:
            self.report.marts_held, self.report.billed = counts
            self._record_lags(now, counts[0])
        runs = self.runs()
        if runs:
            self.report.max_queued = max(self.report.max_queued, sum(r["status"] in IN_QUEUE for r in runs))
            self.report.max_running = max(self.report.max_running, sum(r["status"] in RUNNING for r in runs))
            by_job: dict[str, Counter] = {}
            for r in runs:
                by_job.setdefault(r["jobName"], Counter())[r["status"]] += 1
            self.report.runs = {job: dict(statuses) for job, statuses in sorted(by_job.items())}
        if self.dev:
            rss = session_rss_mb(self.dev.process.pid)
            self.report.rss_peak_mb = max(self.report.rss_peak_mb, rss)
            self.report.rss_end_mb = rss
        return counts

    def _record_lags(self, now: float, held: int) -> None:
        measured = len(self.report.lags_s)
        for window_start, sent_by in self.timeline[measured:]:
            if held < sent_by:
                break
            self.report.lags_s.append(round(now - window_start, 1))

    def wait_caught_up(self, timeout_s: float, poll_s: float = 5.0, on_poll=None) -> bool:
        """Poll until production has ended and the marts hold and bill every CDR sent and landed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            counts = self.poll()
            if on_poll:
                on_poll(self, counts)
            expected = self.sent + self.report.landed
            if not self.producing() and counts and counts[0] >= expected and counts[1] >= expected:
                self.wait_produced()
                self.report.caught_up = True
                self.report.catch_up_s = round(time.monotonic() - (self.produce_ended_at or time.monotonic()), 1)
                return True
            time.sleep(poll_s)
        return False

    def _disk_mb(self) -> float:
        with postgres.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            database = conn.execute("select pg_database_size(current_database())").fetchone()[0] / 2**20
        return database + _du_mb(self.dagster_home, self.checkpoint)

    def finish(self) -> SoakReport:
        self.report.disk_end_mb = self._disk_mb()
        unreached = self.timeline[len(self.report.lags_s) :]
        if unreached:  # never held by the marts: their lag is at least this (a lower bound)
            now = time.monotonic()
            self.report.lags_s += [round(now - start, 1) for start, _ in unreached]
            self.report.notes.append(f"{len(unreached)} seconds of traffic never reached the marts: lower bounds")
        return self.report

    def cleanup(self) -> None:
        from cdr_platform.lib.kafka_io import admin_client

        if self.dev:
            self.stop_dagster()
        with postgres.connect(self.settings.warehouse.conninfo(), autocommit=True) as conn:
            for schema in self.schemas.values():
                conn.execute(f"drop schema if exists {schema} cascade")
        admin = admin_client(self.settings.kafka)
        try:
            admin.delete_topics([self.raw_topic, self.error_topic])
            admin.delete_topics([self.partials_topic])  # made by the landing runs, if any ran
        except Exception:  # already gone: nothing to clean
            pass
        finally:
            admin.close()
        shutil.rmtree(self.checkpoint, ignore_errors=True)
        shutil.rmtree(f"{self.checkpoint}-partials", ignore_errors=True)  # the stitching query's


def summary_line(report: SoakReport) -> str:
    d = report.as_dict()
    return (
        f"{d['produced']:,} CDRs at {d['rate']:,.0f}/s: marts lag p50 {d['lag_p50_s']} s, p95 {d['lag_p95_s']} s,"
        f" max {d['lag_max_s']} s; caught up {d['caught_up']} ({d['catch_up_s']} s after production);"
        f" runs failed {d['failed_runs']}, queued at most {d['max_queued']}; memory peak {d['rss_peak_mb']} MB;"
        f" disk {d['disk_start_mb']} -> {d['disk_end_mb']} MB; " + json.dumps(d["runs"])
    )
