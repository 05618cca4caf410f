"""The CDR producers: kafka-python (the project's client) and confluent-kafka (the fast one).

Both are configured the same way: keyed messages, acks=all, idempotent, batched and
lz4-compressed. confluent-kafka (librdkafka) is offered because a pure-Python client tops out
well below the throughput the generator reaches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaProducer

from cdr_platform.lib.kafka_clients import CONFLUENT, KAFKA_PYTHON, client_options
from cdr_platform.lib.kafka_io import access_errors_explained, wait_for_broker
from cdr_platform.lib.settings import KafkaSettings

PRODUCER_KINDS = ("kafka-python", "confluent")


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
    def __init__(
        self, kafka: KafkaSettings, linger_ms: int = 20, batch_size: int = 256 * 1024, compression: str = "lz4"
    ) -> None:
        wait_for_broker(kafka)
        self.stats = DeliveryStats()
        with access_errors_explained(kafka):
            self._producer = self._connect(kafka, linger_ms, batch_size, compression)
        self._on_error: Callable = self.stats.failure

    @staticmethod
    def _connect(kafka: KafkaSettings, linger_ms: int, batch_size: int, compression: str) -> KafkaProducer:
        return KafkaProducer(
            **client_options(kafka, KAFKA_PYTHON),
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

    def send(self, topic, key, value, headers) -> None:
        # Only failures need a callback: what was written is read back from the end offsets.
        self._producer.send(topic, value=value, key=key, headers=headers).add_errback(self._on_error)
        self.stats.sent += 1

    def flush(self, timeout_s: float = 60.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)


class ConfluentProducer(CdrProducer):
    def __init__(self, kafka: KafkaSettings, linger_ms: int = 20) -> None:
        from confluent_kafka import Producer  # optional fast path

        wait_for_broker(kafka)
        self.stats = DeliveryStats()
        self._producer = Producer(
            {
                **client_options(kafka, CONFLUENT),
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
            }
        )

    def _delivered(self, err, msg) -> None:
        if err is not None:
            self.stats.failure(err)

    def send(self, topic, key, value, headers) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=self._delivered)
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


def make_producer(kind: str, kafka: KafkaSettings) -> CdrProducer:
    """A producer of `kind` to the brokers of `kafka`, over its security settings."""
    if kind == "kafka-python":
        return KafkaPythonProducer(kafka)
    if kind == "confluent":
        return ConfluentProducer(kafka)
    raise ValueError(f"unknown producer {kind!r}; choose one of {PRODUCER_KINDS}")
