"""Helpers of the mediation tests: isolated topics/schema/checkpoint, running the job, reading results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import psycopg

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.ingest.produce import produce_cdrs
from cdr_platform.lib.ingest.producers import make_producer
from cdr_platform.lib.kafka_clients import CONFLUENT, client_options
from cdr_platform.lib.kafka_io import BROKER_CLOCK, admin_client, consumer, ensure_topics
from cdr_platform.lib.mediation.job import SUMMARY_PREFIX
from cdr_platform.lib.mediation.store import MediationTables
from cdr_platform.lib.settings import REPO_ROOT, Settings


@dataclass
class MediationSandbox:
    """Topics, warehouse schema and checkpoint of one test, so tests never see each other."""

    settings: Settings
    raw_topic: str
    error_topic: str
    schema: str
    checkpoint: str

    @classmethod
    def create(cls, settings: Settings, tmp_path) -> MediationSandbox:
        tag = uuid.uuid4().hex[:8]
        box = cls(settings, f"raw-{tag}", f"err-{tag}", f"med_{tag}", str(tmp_path / "checkpoint"))
        # as the stack creates raw-cdrs: on the broker's clock
        ensure_topics(settings.kafka, [box.raw_topic, box.error_topic], 3, {box.raw_topic: BROKER_CLOCK})
        return box

    @property
    def tables(self) -> MediationTables:
        return MediationTables(self.schema)

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "CDR_RAW_TOPIC": self.raw_topic,
            "CDR_ERROR_TOPIC": self.error_topic,
            "CDR_MEDIATION_SCHEMA": self.schema,
            "CDR_MEDIATION_CHECKPOINT": self.checkpoint,
            # the tests' traffic has fixed dates (START): no late-arrival window for it, so they
            # keep passing as the calendar moves on (STALE_TIMESTAMP has tests of its own)
            "CDR_LATE_ARRIVAL_DAYS": "36500",
            "PYSPARK_PYTHON": sys.executable,
            **extra,
        }

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cdr_platform.cli", "mediate", *args]

    def run(self, *args: str, timeout: float = 300, **env: str) -> JobResult:
        proc = subprocess.run(
            self.command(*args),
            env=self.env(**env),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        summary = None
        for line in proc.stdout.splitlines():
            if line.startswith(SUMMARY_PREFIX):
                summary = json.loads(line[len(SUMMARY_PREFIX) :])
        return JobResult(proc.returncode, summary, proc.stderr)

    def recreate_raw_topic(self) -> None:
        """Delete raw-cdrs and create it again, empty (as an operator's mistake would)."""
        admin = admin_client(self.settings.kafka)
        try:
            admin.delete_topics([self.raw_topic])
        finally:
            admin.close()
        deadline = time.monotonic() + 30
        while True:  # the broker deletes asynchronously: creating too soon fails
            try:
                ensure_topics(self.settings.kafka, [self.raw_topic], 3, {self.raw_topic: BROKER_CLOCK})
                from cdr_platform.lib.kafka_io import end_offsets

                if sum(end_offsets(self.settings.kafka, self.raw_topic).values()) == 0:
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def produce(self, config: GeneratorConfig, producer: str = "confluent", rate_limit: float | None = None):
        p = make_producer(producer, self.settings.kafka)
        try:
            return produce_cdrs(
                config,
                p,
                self.settings.kafka,
                self.raw_topic,
                rate_limit=rate_limit,
                progress=lambda _: None,
            )
        finally:
            p.close()

    def produce_raw(self, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        from confluent_kafka import Producer

        p = Producer({**client_options(self.settings.kafka, CONFLUENT), "acks": "all", "message.max.bytes": 2_000_000})
        for key, value in messages:
            p.produce(self.raw_topic, key=key, value=value)
            p.poll(0)
        assert p.flush(30) == 0

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.settings.warehouse.conninfo(), autocommit=True)

    def query(self, sql: str, params=None) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def consume(self, topic: str, expected: int | None = None, idle_ms: int = 5000) -> list:
        reader = consumer(
            self.settings.kafka,
            topic,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=idle_ms,
            max_partition_fetch_bytes=4_000_000,
            fetch_max_bytes=8_000_000,
        )
        try:
            out = []
            for m in reader:
                out.append(m)
                if expected is not None and len(out) >= expected:
                    break
            return out
        finally:
            reader.close()

    def rejects(self) -> dict[str, dict]:
        """error-cdrs by reject key, repeats (from replays) folded as a consumer does."""
        return {m.key.decode(): orjson.loads(m.value) for m in self.consume(self.error_topic)}

    def wait_for_first_batch(self, timeout_s: float = 180) -> None:
        """Until a running job has committed its first batch (its tables may not exist yet)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.query(f"select count(*) from {self.tables.ledger}")[0][0] >= 1:
                    return
            except psycopg.errors.UndefinedTable:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no batch committed within {timeout_s} s")

    def ledger_totals(self) -> dict[str, int]:
        row = self.query(
            f"select coalesce(sum(rows_in),0), coalesce(sum(clean),0), coalesce(sum(rejected),0),"
            f" coalesce(sum(duplicates),0) from {self.tables.ledger}"
        )[0]
        return dict(zip(("rows_in", "clean", "rejected", "duplicates"), (int(v) for v in row)))

    def assert_offsets_contiguous(self, end: dict[int, int]) -> None:
        rows = self.query(
            f"select kafka_partition, from_offset, until_offset from {self.tables.ledger_offsets}"
            " order by kafka_partition, from_offset"
        )
        reached: dict[int, int] = {}
        for partition, start, until in rows:
            assert start == reached.get(partition, 0), f"gap or overlap in partition {partition} at {start}"
            reached[partition] = until
        assert reached == {p: o for p, o in end.items() if o}

    def drop(self) -> None:
        with self.connect() as conn:
            conn.execute(f"drop schema if exists {self.schema} cascade")
        admin = admin_client(self.settings.kafka)
        try:
            admin.delete_topics([self.raw_topic, self.error_topic])
        finally:
            admin.close()


@dataclass
class JobResult:
    returncode: int
    summary: dict | None
    stderr: str


def expected_outcome(config: GeneratorConfig) -> dict:
    """What mediation must produce for a generated run, from the generator's own labels."""
    injected = Counter()
    valid_ids = set()
    for chunk in CdrGenerator(config).chunks():
        for value, error in zip(chunk.values, chunk.injected):
            injected[error] += 1
            if error is None:
                valid_ids.add(orjson.loads(value)["record_id"])
    duplicates = injected.pop("duplicate_record", 0)
    clean = injected.pop(None, 0)
    return {
        "clean": clean,
        "duplicates": duplicates,
        "rejected": sum(injected.values()),
        "valid_ids": valid_ids,
        "injected": injected,
    }


START = datetime(2026, 11, 1, tzinfo=UTC)
