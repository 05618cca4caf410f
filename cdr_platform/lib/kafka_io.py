"""Kafka helpers: broker reachability, topics, offsets, and the CDR producers.

kafka-python is the project's client. confluent-kafka (librdkafka) is offered as a selectable
fast producer because a pure-Python client tops out well below the throughput the generator
reaches; both are configured the same way: keyed messages, acks=all, idempotent, batched
and lz4-compressed.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 10.0
PRODUCER_KINDS = ("kafka-python", "confluent")


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
                f"CDR_KAFKA_BOOTSTRAP_SERVERS).")
        time.sleep(0.25)


def admin_client(bootstrap_servers: str) -> KafkaAdminClient:
    wait_for_broker(bootstrap_servers)
    return KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="cdr-platform-admin",
                            request_timeout_ms=15_000)


def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int) -> dict[str, int]:
    """Create the topics that are missing; return the partition count of each (idempotent)."""
    admin = admin_client(bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name=t, num_partitions=partitions, replication_factor=1)
                   for t in topics if t not in existing]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=15_000)
            except TopicAlreadyExistsError:  # created concurrently: fine
                pass
        return topic_partitions(bootstrap_servers, topics)
    finally:
        admin.close()


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


# -- producers ---------------------------------------------------------------------------


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    first_error: str | None = None

    def failure(self, error: object) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(error)


class CdrProducer:
    """What the ingest code needs of a producer, whichever client is behind it."""

    stats: DeliveryStats

    def send(self, topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def flush(self, timeout_s: float = 60.0) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class KafkaPythonProducer(CdrProducer):
    def __init__(self, bootstrap_servers: str, linger_ms: int = 20,
                 batch_size: int = 256 * 1024, compression: str = "lz4") -> None:
        wait_for_broker(bootstrap_servers)
        self.stats = DeliveryStats()
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="cdr-generator",
            acks="all",
            enable_idempotence=True,
            compression_type=compression,
            linger_ms=linger_ms,
            batch_size=batch_size,
            max_request_size=4 * 1024 * 1024,
            max_block_ms=30_000,
            request_timeout_ms=15_000,
            delivery_timeout_ms=60_000,
        )
        self._on_error: Callable = self.stats.failure

    def send(self, topic, key, value, headers) -> None:
        # Only failures need a callback: what was written is read back from the end offsets.
        self._producer.send(topic, value=value, key=key, headers=headers).add_errback(self._on_error)
        self.stats.sent += 1

    def flush(self, timeout_s: float = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)


class ConfluentProducer(CdrProducer):
    def __init__(self, bootstrap_servers: str, linger_ms: int = 20) -> None:
        from confluent_kafka import Producer  # optional fast path

        wait_for_broker(bootstrap_servers)
        self.stats = DeliveryStats()
        self._producer = Producer({
            "bootstrap.servers": bootstrap_servers,
            "client.id": "cdr-generator",
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": linger_ms,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": 60_000,
            # callbacks only for failures: a Python call per delivered message halves throughput
            "delivery.report.only.error": True,
        })

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.stats.failure(err)

    def send(self, topic, key, value, headers) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers,
                                       on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)
        self.stats.sent += 1
        if self.stats.sent % 10_000 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            self.stats.failure(f"{remaining} messages not delivered within {timeout_s} s")

    def close(self) -> None:
        self.flush()


def make_producer(kind: str, bootstrap_servers: str) -> CdrProducer:
    if kind == "kafka-python":
        return KafkaPythonProducer(bootstrap_servers)
    if kind == "confluent":
        return ConfluentProducer(bootstrap_servers)
    raise ValueError(f"unknown producer {kind!r}; choose one of {PRODUCER_KINDS}")
