"""Mediation end to end on real Kafka, Spark and PostgreSQL: exact partition, replays, faults."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.kafka_io import end_offsets
from cdr_platform.lib.mediation.rejects import original_payload
from cdr_platform.lib.mediation.rules import mediate
from cdr_platform.lib.schema import FIELD_TYPES, INJECTED_ERROR_HEADER
from cdr_platform.lib.tariff_clock import TariffClock
from cdr_platform_tests.integration.mediation_support import START, MediationSandbox, expected_outcome
from cdr_platform_tests.unit.message_corpus import fuzz_messages
from cdr_platform_tests.unit.test_validation import EXPECTED_REASON

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def sandbox(local_stack, tmp_path):
    box = MediationSandbox.create(local_stack, tmp_path)
    yield box
    box.drop()


def assert_exactly_once(box: MediationSandbox, expected: dict) -> None:
    stored = box.query(f"select record_id from {box.tables.clean}")
    ids = [r[0] for r in stored]
    assert len(ids) == len(set(ids)) == expected["clean"]
    assert set(ids) == expected["valid_ids"]
    totals = box.ledger_totals()
    assert totals["rows_in"] == totals["clean"] + totals["rejected"] + totals["duplicates"]
    assert totals["clean"] == expected["clean"]
    assert totals["duplicates"] == expected["duplicates"]
    assert totals["rejected"] == expected["rejected"]
    box.assert_offsets_contiguous(end_offsets(box.settings.kafka, box.raw_topic))
    rejects = box.rejects()
    assert len(rejects) == expected["rejected"] + expected["duplicates"]
    assert_reject_store_holds_each_reject_once(box, expected["rejected"], expected["duplicates"])


def assert_reject_store_holds_each_reject_once(box: MediationSandbox, rejected: int, duplicates: int) -> None:
    """The reject store: one row per rejected or duplicate message, its payload verbatim, open or
    duplicate; and it balances with the ledger and clean_cdrs."""
    from cdr_platform.lib.mediation.reject_store import balance

    stored = box.query(f"select source_partition, source_offset, status, payload from {box.tables.rejects}")
    positions = [(p, o) for p, o, _, _ in stored]
    assert len(positions) == len(set(positions)) == rejected + duplicates
    assert Counter(status for _, _, status, _ in stored) == Counter(
        {k: v for k, v in (("open", rejected), ("duplicate", duplicates)) if v}
    )
    raw = {(m.partition, m.offset): m.value for m in box.consume(box.raw_topic)}
    assert all((bytes(p) if p is not None else None) == raw[(part, off)] for part, off, _, p in stored)
    with box.connect() as conn:
        assert balance(conn, box.tables)["balanced"]


def assert_echo_is_faithful(reject: dict, raw: bytes | None) -> None:
    """A reject's payload: verbatim (base64 where not UTF-8) when short, else a prefix with the
    whole payload's length and SHA-256 (the reject store has it whole)."""
    import base64
    import hashlib

    if not reject["payload_truncated"]:
        assert original_payload(reject) == raw
        return
    echoed = base64.b64decode(reject["payload"]) if reject["payload_encoding"] == "base64" else reject["payload"]
    assert raw.startswith(echoed if isinstance(echoed, bytes) else echoed.encode())
    assert reject["payload_bytes"] == len(raw) and reject["payload_sha256"] == hashlib.sha256(raw).hexdigest()


def assert_stored_as_validation_normalises(box: MediationSandbox) -> None:
    """Every stored clean row, column for column, is what `mediate` makes of its source message:
    what the bulk rules, the Arrow columns and the warehouse write (binary COPY or JDBC) did to
    it changed nothing."""
    from cdr_platform.lib.schema import CLEAN_COLUMNS

    messages = {(m.partition, m.offset): m for m in box.consume(box.raw_topic)}
    columns = ", ".join(CLEAN_COLUMNS + ("src_partition", "src_offset", "kafka_timestamp"))
    stored = box.query(f"select {columns} from {box.tables.clean}")
    assert stored
    for row in stored:
        *values, partition, offset, kafka_timestamp = row
        message = messages[(partition, offset)]
        received = datetime.fromtimestamp(message.timestamp / 1000, UTC)
        assert kafka_timestamp == received.replace(tzinfo=None)
        record = mediate(message.value, received).record
        assert record is not None
        expected = [
            record[c].astimezone(UTC).replace(tzinfo=None) if c == "start_time" else record[c] for c in CLEAN_COLUMNS
        ]
        assert values == expected, (partition, offset)


# two runs cover both staging paths and both task splits (the two are independent: pairwise)
@pytest.mark.parametrize("staging_via, min_partitions", [("direct", ""), ("jdbc", "7")])
def test_mixed_cdrs_are_partitioned_exactly_and_each_error_found_with_its_reason(sandbox, staging_via, min_partitions):
    config = GeneratorConfig(count=20_000, seed=21, error_rate=0.1, start_time=START)
    sandbox.produce(config)
    expected = expected_outcome(config)

    # min_partitions 7: Spark splits each Kafka partition's range over several tasks
    result = sandbox.run(
        "--max-offsets-per-trigger",
        "8000",
        CDR_MEDIATION_STAGING=staging_via,
        CDR_MEDIATION_MIN_PARTITIONS=min_partitions,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.summary["balanced"] and result.summary["batches"] == 3
    assert (result.summary["clean"], result.summary["rejected"], result.summary["duplicates"]) == (
        expected["clean"],
        expected["rejected"],
        expected["duplicates"],
    )
    assert_exactly_once(sandbox, expected)
    # the ledger's rejects per reason, one row each (what the marts count by reason)
    by_reason = dict(sandbox.query(f"select reason, sum(records) from {sandbox.tables.ledger_reasons} group by reason"))
    summary_reasons = {k: v for k, v in result.summary["rejected_by_reason"].items() if k != "DUPLICATE"}
    assert by_reason == summary_reasons and by_reason
    # which local days (the operator's zone) the run stored clean CDRs for: what rating must redo
    clock = TariffClock(sandbox.settings.tariff_timezone)
    by_day = Counter(
        clock.local_date(start.replace(tzinfo=UTC)).isoformat()
        for (start,) in sandbox.query(f"select start_time from {sandbox.tables.clean}")
    )
    if staging_via == "direct":  # the staged path counts what it staged, duplicates included
        assert result.summary["clean_by_day"] == dict(sorted(by_day.items()))
    else:
        assert set(result.summary["clean_by_day"]) == set(by_day)

    if min_partitions:
        # Split ranges: which copy of a duplicated record is stored is the first one stored,
        # not necessarily the lowest offset; the counts and ids above are what must hold.
        return
    # Every reject carries the reason that matches the error injected into its source message.
    injected_at = {
        f"{sandbox.raw_topic}:{m.partition}:{m.offset}": dict(m.headers).get(INJECTED_ERROR_HEADER)
        for m in sandbox.consume(sandbox.raw_topic, expected=20_000)
    }
    raw_by_position = {
        f"{sandbox.raw_topic}:{m.partition}:{m.offset}": m.value
        for m in sandbox.consume(sandbox.raw_topic, expected=20_000)
    }
    for key, reject in sandbox.rejects().items():
        label = injected_at[key].decode()
        want = EXPECTED_REASON_BY_LABEL[label]
        assert reject["reason_codes"] == [want], (key, label, reject["reason_codes"])
        assert original_payload(reject) == raw_by_position[key]  # verbatim
    clean_positions = {
        f"{sandbox.raw_topic}:{p}:{o}"
        for p, o in sandbox.query(f"select src_partition, src_offset from {sandbox.tables.clean}")
    }
    assert not any(injected_at[k] for k in clean_positions)  # no spoiled record got through
    assert_stored_as_validation_normalises(sandbox)

    # Nothing new: a rerun consumes nothing and changes nothing.
    again = sandbox.run()
    assert again.returncode == 0 and again.summary["rows_in"] == 0
    assert sandbox.ledger_totals()["clean"] == expected["clean"]


EXPECTED_REASON_BY_LABEL = {
    cls.value: (reason.value if reason else "DUPLICATE") for cls, reason in EXPECTED_REASON.items()
}


@pytest.mark.parametrize("crash_at", ["after_stage:1", "after_commit:1"])
def test_sigkill_of_the_driver_mid_batch_loses_and_duplicates_nothing(sandbox, crash_at):
    config = GeneratorConfig(count=15_000, seed=33, error_rate=0.05, start_time=START)
    sandbox.produce(config)
    expected = expected_outcome(config)

    crashed = sandbox.run("--max-offsets-per-trigger", "5000", CDR_MEDIATION_CRASH_AT=crash_at)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    committed = sandbox.query(f"select count(*) from {sandbox.tables.ledger}")[0][0]
    assert committed == (2 if crash_at.startswith("after_commit") else 1)  # died inside batch 1

    recovered = sandbox.run("--max-offsets-per-trigger", "5000")
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert_exactly_once(sandbox, expected)


def test_an_external_sigkill_at_any_moment_then_a_rerun_is_exactly_once(sandbox):
    config = GeneratorConfig(count=30_000, seed=34, error_rate=0.05, start_time=START)
    sandbox.produce(config)
    expected = expected_outcome(config)
    proc = subprocess.Popen(
        sandbox.command("--max-offsets-per-trigger", "4000"),
        env=sandbox.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    sandbox.wait_for_first_batch()
    time.sleep(random.uniform(0.2, 1.5))  # somewhere inside a later batch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    recovered = sandbox.run("--max-offsets-per-trigger", "4000")
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert_exactly_once(sandbox, expected)


def test_postgres_stopped_during_a_run_fails_clearly_then_a_rerun_is_exactly_once(sandbox):
    from cdr_platform.utils import local_stack as stack

    config = GeneratorConfig(count=20_000, seed=35, error_rate=0.05, start_time=START)
    sandbox.produce(config)
    expected = expected_outcome(config)
    proc = subprocess.Popen(
        sandbox.command("--max-offsets-per-trigger", "2000"),
        env=sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        sandbox.wait_for_first_batch()
        stack.down_postgres(sandbox.settings)
        _, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 1
        reported = [line for line in stderr.splitlines() if line.startswith("mediation failed")]
        assert len(reported) == 1, stderr[-3000:]
        assert "warehouse" in reported[0] and f":{sandbox.settings.warehouse.port}" in reported[0], reported
        # and where in raw-cdrs the failed batch was
        assert re.search(r"batch \d+ \(partition \d+ offsets \d+-\d+", reported[0]), reported
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stack.start_postgres(sandbox.settings)
    recovered = sandbox.run("--max-offsets-per-trigger", "2000")
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert_exactly_once(sandbox, expected)


def test_broker_restarted_during_production_loses_and_duplicates_nothing(sandbox):
    from cdr_platform.utils import local_stack as stack

    config = GeneratorConfig(count=20_000, seed=36, error_rate=0.05, start_time=START)
    expected = expected_outcome(config)
    errors = []

    def produce():
        try:
            sandbox.produce(config, producer="kafka-python", rate_limit=4_000)
        except Exception as exc:  # reported below
            errors.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(2)
    stack.restart_kafka(sandbox.settings)
    producer.join(180)
    assert not producer.is_alive() and not errors, errors
    messages = sandbox.consume(sandbox.raw_topic, expected=20_000)
    assert len(messages) == 20_000  # nothing lost, nothing written twice by the producer

    result = sandbox.run()
    assert result.returncode == 0, result.stderr[-3000:]
    assert_exactly_once(sandbox, expected)


def test_fuzzed_messages_never_crash_the_stream_and_are_each_accounted_for(sandbox):
    messages = fuzz_messages()
    sandbox.produce_raw(messages)
    result = sandbox.run()
    assert result.returncode == 0, result.stderr[-3000:]
    s = result.summary
    assert s["rows_in"] == len(messages) and s["balanced"]
    rejects = sandbox.rejects()
    assert len(rejects) == s["rejected"] + s["duplicates"]
    assert all(r["reason_codes"] for r in rejects.values())
    by_position = {f"{sandbox.raw_topic}:{m.partition}:{m.offset}": m.value for m in sandbox.consume(sandbox.raw_topic)}
    for key, reject in rejects.items():
        assert_echo_is_faithful(reject, by_position[key])
    assert_reject_store_holds_each_reject_once(sandbox, s["rejected"], s["duplicates"])
    # the oracle is the one definition of the rules, applied to the same messages
    received = {f"{sandbox.raw_topic}:{m.partition}:{m.offset}": m for m in sandbox.consume(sandbox.raw_topic)}
    valid = {
        orjson.loads(m.value)["record_id"]
        for m in received.values()
        if mediate(m.value, datetime.fromtimestamp(m.timestamp / 1000, UTC)).record
    }
    stored = sandbox.query(f"select record_id, cell_id from {sandbox.tables.clean}")
    assert len(stored) == s["clean"] == len(valid) >= 300  # the valid ones, once each
    assert {r[0] for r in stored} == valid
    # the injection strings were data, never SQL: the tables are all still there
    assert sandbox.query(f"select count(*) from {sandbox.tables.ledger}")[0][0] >= 1


def _hostile_messages(seed: int) -> list[tuple[bytes | None, bytes | None]]:
    """Records with hostile values in their fields, the kind the property tests draw: integers at
    and beyond 64 bits, floats, control characters, every Unicode category, nested JSON."""
    rng = random.Random(seed)
    pool = [
        2**63,
        2**64 - 1,
        -(2**63) - 1,
        10**30,
        1e308,
        -0.0,
        86_401,
        10**12 + 1,
        True,
        None,
        "",
        "\x00",
        "r1\n",
        "\u2028",
        "\u202e",
        "😀" * 20,
        "٣",
        "\ud7ff",
        [1, [2]],
        {"a": {"b": None}},
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
    ]
    good = {
        "schema_version": 1,
        "record_type": "voice",
        "served_msisdn": "+212661234567",
        "other_msisdn": "+212612345678",
        "direction": "outgoing",
        "start_time": "2026-11-01T10:00:00Z",
        "duration_s": 60,
        "cell_id": "604-01-01000-00010",
        "technology": "4G",
        "roaming": False,
    }
    out = []
    for i in range(400):
        doc = {**good, "record_id": f"hostile-{i}"}
        for field in rng.sample(sorted(FIELD_TYPES), rng.randint(1, 3)):
            doc[field] = rng.choice(pool)
        out.append((b"k", json.dumps(doc, ensure_ascii=False).encode()))
    return out


def test_hostile_values_end_each_in_exactly_one_place_and_the_stream_takes_the_next_valid_record(sandbox):
    messages = _hostile_messages(5) + [
        (
            b"k",
            json.dumps(
                {
                    "record_id": "killer",
                    "record_type": "voice",
                    "schema_version": 1,
                    "served_msisdn": "+212661234567",
                    "other_msisdn": "+212612345678",
                    "direction": "outgoing",
                    "start_time": "2026-11-01T10:00:00Z",
                    "duration_s": 2**63,
                    "cell_id": "604-01-01000-00010",
                    "technology": "4G",
                }
            ).encode(),
        )
    ]
    sandbox.produce_raw(messages)
    first = sandbox.run()
    assert first.returncode == 0, first.stderr[-3000:]
    s = first.summary
    assert s["rows_in"] == len(messages) and s["balanced"]
    rejects = sandbox.rejects()
    stored = {r[0] for r in sandbox.query(f"select record_id from {sandbox.tables.clean}")}
    assert len(rejects) + len(stored) == len(messages)  # each message once: stored, or on error-cdrs
    assert len(stored) == s["clean"] and len(rejects) == s["rejected"] + s["duplicates"]
    killer = next(r for r in rejects.values() if r["payload"] and '"killer"' in r["payload"])
    assert killer["reason_codes"] == ["VALUE_OUT_OF_RANGE"]

    # the stream is alive: the next valid record is mediated, by the same checkpoint
    sandbox.produce_raw([(b"k", orjson.dumps({**json.loads(messages[-1][1]), "record_id": "next", "duration_s": 60}))])
    second = sandbox.run()
    assert second.returncode == 0 and second.summary["clean"] == 1 and second.summary["rows_in"] == 1
    assert "next" in {r[0] for r in sandbox.query(f"select record_id from {sandbox.tables.clean}")}
