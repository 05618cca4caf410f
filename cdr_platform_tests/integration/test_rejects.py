"""Oversized messages and the reject store on the real job: Kafka, Spark, PostgreSQL.

Messages of 0.5-1 MB (binary, escape-heavy, valid JSON with a huge field) are each rejected as
PAYLOAD_TOO_LARGE, their reject fits error-cdrs, the reject store keeps them whole, and the stream
goes on with the valid ones. Rejects from a cell missing from the catalogue are recovered by a
replay once the operator has loaded a catalogue with the cell, and rated once.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import uuid

import orjson
import pytest

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.mediation.reject_store import REPLAY_SUMMARY_PREFIX, balance
from cdr_platform.lib.mediation.rejects import max_reject_bytes
from cdr_platform.lib.reference.network import CELL_CATALOGUE
from cdr_platform.lib.settings import REPO_ROOT
from cdr_platform_tests.integration.mediation_support import START, MediationSandbox
from cdr_platform_tests.integration.test_rating import rate
from cdr_platform_tests.integration.test_rating import seeded as seeded  # noqa: PLC0414 (the seeded tariff fixture)

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def sandbox(local_stack, tmp_path):
    box = MediationSandbox.create(local_stack, tmp_path)
    yield box
    box.drop()


def _valid_messages(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    config = GeneratorConfig(count=count, seed=seed, error_rate=0.0, start_time=START, span_hours=2)
    out = []
    for chunk in CdrGenerator(config).chunks():
        out += list(zip(chunk.keys, chunk.values))
    return out


def _oversized_messages() -> list[tuple[bytes, bytes]]:
    rng = random.Random(19)
    valid = json.loads(_valid_messages(1, seed=3)[0][1])
    return [
        (b"k-binary", rng.randbytes(800_000)),  # not UTF-8: base64 would echo it 4/3 bigger
        (b"k-control", b"\x01\x1f" * 100_000),  # valid UTF-8, every byte escaped as \u00XX in JSON
        (b"k-huge-field", orjson.dumps({**valid, "record_id": "huge", "note": "x" * 900_000})),
        (b"k-half", orjson.dumps({**valid, "record_id": "half", "cell_id": "\x00" * 150_000})),
        (b"\xff" * 100_000, b"{}"),  # a small payload with an oversized, binary key
    ]


@pytest.mark.parametrize("staging_via", ["direct", "jdbc"])
def test_messages_of_half_a_megabyte_and_more_are_rejected_whole_and_the_stream_goes_on(
    sandbox, staging_via, record_property
):
    oversized = _oversized_messages()
    valid = _valid_messages(2_000, seed=8)
    sandbox.produce_raw(oversized + valid)

    first = sandbox.run(CDR_MEDIATION_STAGING=staging_via)
    assert first.returncode == 0, first.stderr[-3000:]
    s = first.summary
    assert s["rows_in"] == len(oversized) + len(valid) and s["balanced"]
    assert s["clean"] == len(valid)
    assert s["rejected_by_reason"]["PAYLOAD_TOO_LARGE"] == 4  # the key-only one is MALFORMED/MISSING_FIELD
    assert s["rejected"] == 5

    # error-cdrs: every reject fits the topic, echoes a bounded part and says what it cut
    limit = max_reject_bytes(sandbox.settings.reject_echo_bytes)
    messages = sandbox.consume(sandbox.error_topic)
    assert len(messages) == 5
    raw = {f"{sandbox.raw_topic}:{m.partition}:{m.offset}": m for m in sandbox.consume(sandbox.raw_topic)}
    for m in messages:
        assert len(m.value) <= limit < sandbox.settings.kafka.max_message_bytes
        reject = orjson.loads(m.value)
        source = raw[m.key.decode()]
        assert reject["payload_bytes"] == len(source.value)
        assert reject["payload_sha256"] == hashlib.sha256(source.value).hexdigest()
        if len(source.value) > sandbox.settings.mediation_max_payload_bytes:
            assert reject["reason_codes"] == ["PAYLOAD_TOO_LARGE"] and reject["payload_truncated"]

    # the reject store keeps each whole, key and payload, byte for byte
    stored = sandbox.query(
        f"select source_partition, source_offset, message_key, payload, payload_sha256, reasons, status"
        f" from {sandbox.tables.rejects}"
    )
    assert len(stored) == 5
    for partition, offset, key, payload, digest, _reasons, status in stored:
        source = raw[f"{sandbox.raw_topic}:{partition}:{offset}"]
        assert bytes(payload) == source.value and bytes(key) == source.key
        assert digest == hashlib.sha256(source.value).hexdigest() and status == "open"
    with sandbox.connect() as conn:
        assert balance(conn, sandbox.tables)["balanced"]

    # the stream is alive: the next messages are mediated by the same checkpoint (once: the path
    # does not matter to what follows)
    if staging_via == "direct":
        sandbox.produce_raw(_valid_messages(50, seed=9))
        second = sandbox.run(CDR_MEDIATION_STAGING=staging_via)
        assert second.returncode == 0 and second.summary["clean"] == 50
    # the largest resident set of the driver, its JVM and Spark's Python workers (reported, not asserted)
    record_property("largest_child_rss_mb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)


NEW_CELL = "604-01-01000-00099"  # a home-network CGI the generated catalogue does not have


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cdr_platform.cli", *args],
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _replay_summary(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith(REPLAY_SUMMARY_PREFIX))
    return json.loads(line[len(REPLAY_SUMMARY_PREFIX) :])


@pytest.fixture
def generated_catalogue_restored(local_stack):
    """The test loads an operator's catalogue into reference.cell_catalogue: the generated one is
    loaded before (as a version, so the operator's file is a change) and put back after."""
    import psycopg

    from cdr_platform.lib.reference.loads import load_generated

    with psycopg.connect(local_stack.warehouse.conninfo()) as conn:
        load_generated(conn, "cells", source="test_rejects")
    yield
    with psycopg.connect(local_stack.warehouse.conninfo()) as conn:
        load_generated(conn, "cells", source="test_rejects")


def test_unknown_cell_rejects_are_recovered_by_a_replay_after_the_catalogue_is_loaded_and_rated_once(
    sandbox,
    seeded,
    generated_catalogue_restored,
    tmp_path,  # noqa: F811
):
    messages = _valid_messages(600, seed=12)
    moved = set()
    for i in range(0, len(messages), 4):  # every fourth call made on the new cell
        doc = json.loads(messages[i][1])
        doc["cell_id"] = NEW_CELL
        messages[i] = (messages[i][0], orjson.dumps(doc))
        moved.add(doc["record_id"])
    env = sandbox.env()
    sandbox.produce_raw(messages)  # mediated against the generated catalogue (the fixture's)
    first = sandbox.run()
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.summary["rejected_by_reason"] == {"UNKNOWN_CELL": len(moved)}

    # before the correction a dry run recovers nothing, and changes nothing
    dry = _replay_summary(_cli(env, "rejects", "replay", "--reason", "UNKNOWN_CELL", "--dry-run"))
    assert (dry["selected"], dry["recovered"], dry["still_open"]) == (len(moved), 0, len(moved))
    assert dry["reasons_now"] == {"UNKNOWN_CELL": len(moved)}

    # the operator loads its catalogue: the cells it had, and the new one
    cells = tmp_path / "cells.csv"
    exported = _cli(env, "reference", "export", "cells", str(cells))
    assert exported.returncode == 0, exported.stderr[-2000:]
    with cells.open("a", newline="") as f:
        template = CELL_CATALOGUE[0]
        csv.DictWriter(f, fieldnames=next(csv.reader(cells.open()))).writerow(
            {
                "cell_id": NEW_CELL,
                "operator_id": template.operator_id,
                "network": NEW_CELL[:6],
                "region": "Casablanca",
                "lac": 1000,
                "ci": 99,
                "max_technology": "4G",
                "valid_from": "2026-11-01",
                "valid_to": "",
            }
        )
    loaded = _cli(env, "reference", "load", "cells", str(cells))
    assert loaded.returncode == 0 and "loaded" in loaded.stdout, loaded.stdout + loaded.stderr[-2000:]

    replayed = _replay_summary(_cli(env, "rejects", "replay", "--reason", "UNKNOWN_CELL"))
    assert (replayed["recovered"], replayed["still_open"], replayed["duplicates"]) == (len(moved), 0, 0)
    stored = {r[0] for r in sandbox.query(f"select record_id from {sandbox.tables.clean}")}
    assert moved <= stored and len(stored) == len(messages)
    statuses = dict(sandbox.query(f"select status, count(*) from {sandbox.tables.rejects} group by status"))
    assert statuses == {"recovered": len(moved)}
    with sandbox.connect() as conn:
        assert balance(conn, sandbox.tables)["balanced"]
    # a second replay finds nothing to do, and stores nothing twice
    again = _replay_summary(_cli(env, "rejects", "replay", "--reason", "UNKNOWN_CELL"))
    assert again["selected"] == 0
    assert sandbox.query(f"select count(*) from {sandbox.tables.clean}")[0][0] == len(messages)

    # rated once: the recovered calls are rated with their day (rating replaces a day: a re-run
    # changes nothing, test_rating shows)
    rating_schema = f"rat_{uuid.uuid4().hex[:8]}"
    rating_env = {**env, "CDR_RATING_SCHEMA": rating_schema}
    try:
        for day in replayed["clean_by_day"]:
            done = rate(rating_env, day)
            assert done.returncode == 0, done.stderr[-3000:]
        rated = sandbox.query(f"select record_id from {rating_schema}.rating_cdrs")
        assert len(rated) == len({r[0] for r in rated})
        assert moved <= {r[0] for r in rated}
    finally:
        with sandbox.connect() as conn:
            conn.execute(f"drop schema if exists {rating_schema} cascade")
