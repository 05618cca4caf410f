"""Produce CDRs into a real broker and read every one back as it was sent."""

from collections import Counter
from datetime import UTC, datetime

import pytest

from cdr_platform.lib.ingest.generator import CdrGenerator, GeneratorConfig
from cdr_platform.lib.ingest.produce import produce_cdrs
from cdr_platform.lib.ingest.producers import make_producer
from cdr_platform.lib.kafka_io import consumer

START = datetime(2026, 11, 1, tzinfo=UTC)


def consume_all(kafka, topic: str, expected: int) -> list:
    reader = consumer(
        kafka,
        topic,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=10_000,
    )
    try:
        messages = []
        for message in reader:
            messages.append(message)
            if len(messages) >= expected:
                break
        return messages
    finally:
        reader.close()


@pytest.mark.parametrize("producer_kind, count", [("kafka-python", 10_000), ("confluent", 10_000)])
def test_every_record_key_and_header_arrives_as_sent(local_stack, fresh_topic, producer_kind, count):
    config = GeneratorConfig(
        count=count, seed=11, start_time=START, error_rate=0.05, reference_time=datetime(2026, 11, 20, tzinfo=UTC)
    )
    sent = Counter()
    by_key_order: dict[bytes, list[bytes]] = {}
    for chunk in CdrGenerator(config).chunks():
        for i in range(len(chunk)):
            sent[(chunk.keys[i], chunk.values[i], tuple(chunk.headers(i)))] += 1
            by_key_order.setdefault(chunk.keys[i], []).append(chunk.values[i])

    producer = make_producer(producer_kind, local_stack.kafka)
    try:
        report = produce_cdrs(config, producer, local_stack.kafka, fresh_topic)
    finally:
        producer.close()
    assert report.records == count
    assert sum(row["messages"] for row in report.offsets_table()) == count

    messages = consume_all(local_stack.kafka, fresh_topic, count)
    received = Counter((m.key, m.value, tuple((k, v) for k, v in m.headers)) for m in messages)
    assert len(messages) == count
    assert received == sent
    # Keyed by served MSISDN: one key lives in one partition, in the order it was sent.
    partitions_of_key: dict[bytes, set[int]] = {}
    received_order: dict[bytes, list[bytes]] = {}
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        partitions_of_key.setdefault(m.key, set()).add(m.partition)
        received_order.setdefault(m.key, []).append(m.value)
    assert all(len(p) == 1 for p in partitions_of_key.values())
    assert received_order == by_key_order
