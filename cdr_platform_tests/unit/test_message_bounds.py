"""Size bounds and the operator's cells in the rules, and rejects that always fit error-cdrs."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr_platform.lib.mediation.bulk import mediate_batch
from cdr_platform.lib.mediation.reasons import Reason
from cdr_platform.lib.mediation.rejects import (
    DEFAULT_ECHO_BYTES,
    max_reject_bytes,
    original_payload,
    parse_reject_key,
    reject_key,
    reject_message,
)
from cdr_platform.lib.mediation.rules import DEFAULT_LIMITS, Limits, mediate
from cdr_platform.lib.settings import load_settings
from cdr_platform_tests.unit.test_mediation_bulk import GOOD, RECEIVED

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)


def _received_us(n: int) -> np.ndarray:
    return np.full(n, (RECEIVED - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1), np.int64)


def _padded_to(size: int) -> bytes:
    """A valid record whose JSON is exactly `size` bytes long (padding in an extra field)."""
    base = orjson.dumps({**GOOD, "pad": ""})
    return orjson.dumps({**GOOD, "pad": "x" * (size - len(base))})


def test_a_message_over_the_limit_is_payload_too_large_and_one_at_the_limit_is_mediated():
    limit = DEFAULT_LIMITS.max_payload_bytes
    at_limit, over = _padded_to(limit), _padded_to(limit + 1)
    assert len(at_limit) == limit and len(over) == limit + 1
    assert mediate(at_limit, RECEIVED).record is not None
    assert mediate(over, RECEIVED).reasons == (Reason.PAYLOAD_TOO_LARGE,)
    bulk = mediate_batch([at_limit, over], _received_us(2))
    assert bulk.clean_rows.tolist() == [0] and bulk.rejected == [(1, (Reason.PAYLOAD_TOO_LARGE,))]


def test_an_oversized_message_is_rejected_on_its_length_without_being_parsed(monkeypatch):
    import cdr_platform.lib.mediation.bulk as bulk_module
    import cdr_platform.lib.mediation.rules as rules_module

    def no_parsing(_):
        raise AssertionError("an oversized message was parsed")

    monkeypatch.setattr(rules_module.orjson, "loads", no_parsing)
    monkeypatch.setattr(bulk_module, "_load", no_parsing)
    huge = b"{" + b" " * 2_000_000 + b"}"
    assert mediate(huge, RECEIVED).reasons == (Reason.PAYLOAD_TOO_LARGE,)
    assert mediate_batch([huge], _received_us(1)).rejected == [(0, (Reason.PAYLOAD_TOO_LARGE,))]


def test_a_cell_is_known_when_the_operators_catalogue_has_it_on_both_paths():
    new_cell = orjson.dumps({**GOOD, "cell_id": "604-01-01000-00099"})
    assert mediate(new_cell, RECEIVED).reasons == (Reason.UNKNOWN_CELL,)
    assert mediate_batch([new_cell], _received_us(1)).rejected == [(0, (Reason.UNKNOWN_CELL,))]
    operators = Limits(known_cells=frozenset({"604-01-01000-00099"}))
    assert mediate(new_cell, RECEIVED, operators).record["cell_id"] == "604-01-01000-00099"
    assert mediate_batch([new_cell], _received_us(1), operators).clean_rows.tolist() == [0]
    # a cell the operator's catalogue no longer has is unknown, though the generated one had it
    assert mediate(orjson.dumps(GOOD), RECEIVED, operators).reasons == (Reason.UNKNOWN_CELL,)


def _reject(payload: bytes | None, key: bytes | None = b"k", error: str | None = None, echo=DEFAULT_ECHO_BYTES):
    return reject_message(
        topic="raw-cdrs",
        partition=3,
        offset=2**40,
        kafka_timestamp=NOW,
        key=key,
        payload=payload,
        reasons=["PAYLOAD_TOO_LARGE", "UNPROCESSABLE"],
        batch_id=2**40,
        query_id="q" * 64,
        rejected_at=NOW,
        error=error,
        echo_bytes=echo,
    )


payloads = st.one_of(
    st.none(),
    st.binary(max_size=20_000),
    st.text(max_size=8_000).map(str.encode),
    st.integers(0, 300_000).map(lambda n: b"\x01" * n),  # control characters: six bytes each in JSON
    st.integers(0, 300_000).map(lambda n: "é".encode() * n),  # a cut may fall inside a character
)


@settings(max_examples=150, deadline=None)
@given(payload=payloads, key=payloads, error=st.one_of(st.none(), st.text(max_size=2_000)))
def test_a_reject_never_exceeds_its_bound_and_says_what_it_left_out(payload, key, error):
    message = _reject(payload, key, error)
    assert len(message) <= max_reject_bytes(DEFAULT_ECHO_BYTES)
    doc = orjson.loads(message)
    assert doc["payload_bytes"] == (len(payload) if payload is not None else None)
    assert doc["payload_sha256"] == (hashlib.sha256(payload).hexdigest() if payload is not None else None)
    if payload is not None and len(payload) <= DEFAULT_ECHO_BYTES:
        assert original_payload(doc) == payload  # short enough: echoed verbatim
    elif payload is not None:
        assert doc["payload_truncated"]
        echoed = base64.b64decode(doc["payload"]) if doc["payload_encoding"] == "base64" else doc["payload"].encode()
        assert payload.startswith(echoed) and len(echoed) <= DEFAULT_ECHO_BYTES
        with pytest.raises(ValueError, match="reject store"):
            original_payload(doc)


def test_the_default_settings_keep_every_reject_under_the_topics_message_limit():
    from cdr_platform.lib.mediation.job import check_message_bounds

    s = load_settings()
    assert max_reject_bytes(s.reject_echo_bytes) < s.kafka.max_message_bytes
    check_message_bounds(s)  # refuses nothing


def test_an_echo_too_big_for_the_topic_is_refused_before_the_job_starts(monkeypatch):
    from cdr_platform.lib.mediation.job import check_message_bounds

    monkeypatch.setenv("CDR_REJECT_ECHO_BYTES", "500000")
    with pytest.raises(ValueError, match="CDR_REJECT_ECHO_BYTES"):
        check_message_bounds(load_settings())


def test_a_reject_key_reads_back_into_its_source_position():
    assert parse_reject_key(reject_key("raw-cdrs", 3, 17)) == ("raw-cdrs", 3, 17)
