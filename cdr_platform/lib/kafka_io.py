"""Kafka helpers shared by every domain: broker reachability, topics and offsets (kafka-python).

The CDR producers live with ingest (cdr_platform.lib.ingest.producers).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 10.0


class BrokerUnavailableError(RuntimeError):
    """The Kafka broker cannot be reached; the message names the address."""


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap_servers.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def wait_for_broker(bootstrap_servers: str, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Return once one bootstrap address accepts a TCP connection, else raise within timeout_s.

    A plain socket check first gives a clear, fast error instead of a client library's long
    retry loop and stack trace when the broker is down.
    """
    deadline = time.monotonic() + timeout_s
    last_error: OSError | None = None
    while True:
        for host, port in _addresses(bootstrap_servers):
            try:
                with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
                    return
            except OSError as exc:
                last_error = exc
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"Kafka broker at {bootstrap_servers} is not reachable after {timeout_s:.0f} s "
                f"({last_error}). Is the local stack up? Run `make up` (or set "
                f"CDR_KAFKA_BOOTSTRAP_SERVERS)."
            )
        time.sleep(0.25)


def admin_client(bootstrap_servers: str) -> KafkaAdminClient:
    wait_for_broker(bootstrap_servers)
    return KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="cdr-platform-admin", request_timeout_ms=15_000
    )


TIMESTAMP_TYPE = "message.timestamp.type"
# raw-cdrs takes the broker's clock: a message's timestamp is when the broker appended it, so
# mediation's "start time in the future" is measured against the broker, not the producer.
BROKER_CLOCK = {TIMESTAMP_TYPE: "LogAppendTime"}


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    partitions: int,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, int]:
    """Create the topics that are missing (with `configs[topic]`, if any); return the partition
    count of each (idempotent: an existing topic is left as it is)."""
    configs = configs or {}
    admin = admin_client(bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=partitions, replication_factor=1, topic_configs=dict(configs.get(t, {})))
            for t in topics
            if t not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=15_000)
            except TopicAlreadyExistsError:  # created concurrently: fine
                pass
        return topic_partitions(bootstrap_servers, topics)
    finally:
        admin.close()


def topic_config(bootstrap_servers: str, topic: str, name: str) -> str | None:
    """The value of one configuration entry of a topic (its default included), None if unknown."""
    admin = admin_client(bootstrap_servers)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=[name])], config_filter="all"
        )
    finally:
        admin.close()
    entry = described.get("topic", {}).get(topic, {}).get(name)
    return entry["value"] if entry else None


MAX_MESSAGE_BYTES = "max.message.bytes"


def topic_size_config(kafka) -> dict[str, str]:
    """The message size limit of raw-cdrs and error-cdrs, set explicitly when they are created
    (`kafka`: KafkaSettings): mediation builds every reject to fit under it."""
    return {MAX_MESSAGE_BYTES: str(kafka.max_message_bytes)}


def ensure_cdr_topics(kafka) -> list[str]:
    """raw-cdrs (on the broker's clock) and error-cdrs, created if missing (`kafka`: KafkaSettings),
    both with an explicit max.message.bytes. Returns what is wrong with them as they are: an
    existing raw-cdrs on the producers' clock."""
    ensure_topics(
        kafka.bootstrap_servers,
        [kafka.raw_cdrs_topic, kafka.error_cdrs_topic],
        kafka.topic_partitions,
        {
            kafka.raw_cdrs_topic: {**BROKER_CLOCK, **topic_size_config(kafka)},
            kafka.error_cdrs_topic: topic_size_config(kafka),
        },
    )
    return raw_topic_problems(kafka.bootstrap_servers, kafka.raw_cdrs_topic)


def raw_topic_problems(bootstrap_servers: str, topic: str) -> list[str]:
    kind = topic_config(bootstrap_servers, topic, TIMESTAMP_TYPE)
    if kind == BROKER_CLOCK[TIMESTAMP_TYPE]:
        return []
    return [
        f"topic {topic} has {TIMESTAMP_TYPE}={kind}: its timestamps are the producers' clocks, so "
        f"FUTURE_TIMESTAMP trusts them; set it to LogAppendTime (kafka-configs.sh --alter --entity-type "
        f"topics --entity-name {topic} --add-config {TIMESTAMP_TYPE}=LogAppendTime)"
    ]


def topic_partitions(bootstrap_servers: str, topics: Iterable[str]) -> dict[str, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="cdr-platform-meta")
    try:
        out = {}
        for t in topics:
            deadline = time.monotonic() + 15
            parts = consumer.partitions_for_topic(t)
            while not parts and time.monotonic() < deadline:  # metadata of a new topic lags
                time.sleep(0.2)
                consumer._client.cluster.request_update()
                parts = consumer.partitions_for_topic(t)
            out[t] = len(parts or ())
        return out
    finally:
        consumer.close()


def beginning_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """The oldest offset still held, per partition (retention deletes what is older)."""
    wait_for_broker(bootstrap_servers)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="cdr-platform-offsets")
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.beginning_offsets(tps).items()}
    finally:
        consumer.close()


def offset_problems(beginning: dict[int, int], end: dict[int, int], consumed: dict[int, int]) -> list[str]:
    """What makes a topic's offsets disagree with what a reader has consumed of it (`consumed`: the
    next offset to read, per partition): a recreated or truncated topic, a partition that is gone,
    messages that expired unread. Empty when the reader can go on where it stopped."""
    problems = []
    for partition, until in sorted(consumed.items()):
        if partition not in end:
            problems.append(f"partition {partition} is gone (consumed up to offset {until}): the topic was recreated")
        elif until > end[partition]:
            problems.append(
                f"partition {partition} ends at offset {end[partition]} but was consumed up to {until}:"
                " the topic was recreated or truncated"
            )
        elif beginning.get(partition, 0) > until:
            problems.append(
                f"partition {partition}: offsets {until}-{beginning[partition] - 1} expired unread"
                f" ({beginning[partition] - until:,} messages lost to retention)"
            )
    return problems


def end_offsets(bootstrap_servers: str, topic: str) -> dict[int, int]:
    """Next offset to be written, per partition (what a reader has to reach to be caught up)."""
    wait_for_broker(bootstrap_servers)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="cdr-platform-offsets")
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            raise RuntimeError(f"topic {topic!r} does not exist on {bootstrap_servers}; run `make up`")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()
