"""Kafka helpers shared by every domain: broker reachability, topics and offsets (kafka-python).

Every function takes the `KafkaSettings`: the brokers and how to reach them (security protocol,
SASL, TLS; cdr_platform.lib.kafka_clients turns them into the client's options). The CDR
producers live with ingest (cdr_platform.lib.ingest.producers).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import fields

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaTimeoutError, TopicAlreadyExistsError

from cdr_platform.lib.kafka_clients import KAFKA_PYTHON, client_options, uses_sasl, uses_tls
from cdr_platform.lib.settings import KafkaSettings

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


def wait_for_broker(kafka: KafkaSettings, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Return once one bootstrap address accepts a TCP connection, else raise within timeout_s;
    then, on a secured protocol, once it accepts the TLS handshake and SASL login (KafkaAccessError).

    A plain socket check first gives a clear, fast error instead of a client library's long
    retry loop and stack trace when the broker is down.
    """
    bootstrap_servers = kafka.bootstrap_servers
    deadline = time.monotonic() + timeout_s
    last_error: OSError | None = None
    while True:
        for host, port in _addresses(bootstrap_servers):
            try:
                with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
                    pass
            except OSError as exc:
                last_error = exc
                continue
            check_access(kafka, host, port)
            return
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"Kafka broker at {bootstrap_servers} is not reachable after {timeout_s:.0f} s "
                f"({last_error}). Is the local stack up? Run `make up` (or set "
                f"CDR_KAFKA_BOOTSTRAP_SERVERS)."
            )
        time.sleep(0.25)


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    wait_for_broker(kafka)
    with access_errors_explained(kafka):
        return KafkaAdminClient(
            **client_options(kafka, KAFKA_PYTHON), client_id="cdr-platform-admin", request_timeout_ms=15_000
        )


def consumer(kafka: KafkaSettings, *topics: str, **options) -> KafkaConsumer:
    """A kafka-python consumer of `topics` (none: assign partitions yourself) over the settings' security."""
    with access_errors_explained(kafka):
        return KafkaConsumer(*topics, **client_options(kafka, KAFKA_PYTHON), **options)


TIMESTAMP_TYPE = "message.timestamp.type"
# raw-cdrs takes the broker's clock: a message's timestamp is when the broker appended it, so
# mediation's "start time in the future" is measured against the broker, not the producer.
BROKER_CLOCK = {TIMESTAMP_TYPE: "LogAppendTime"}


def ensure_topics(
    kafka: KafkaSettings,
    topics: Iterable[str],
    partitions: int,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, int]:
    """Create the topics that are missing (with `configs[topic]`, if any, and the settings'
    replication factor); return the partition count of each (idempotent: an existing topic is
    left as it is)."""
    configs = configs or {}
    admin = admin_client(kafka)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name=t,
                num_partitions=partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=dict(configs.get(t, {})),
            )
            for t in topics
            if t not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=15_000)
            except TopicAlreadyExistsError:  # created concurrently: fine
                pass
        return topic_partitions(kafka, topics)
    finally:
        admin.close()


def topic_config(kafka: KafkaSettings, topic: str, name: str) -> str | None:
    """The value of one configuration entry of a topic (its default included), None if unknown."""
    admin = admin_client(kafka)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=[name])], config_filter="all"
        )
    finally:
        admin.close()
    entry = described.get("topic", {}).get(topic, {}).get(name)
    return entry["value"] if entry else None


MAX_MESSAGE_BYTES = "max.message.bytes"
MIN_INSYNC_REPLICAS = "min.insync.replicas"


def topic_size_config(kafka: KafkaSettings) -> dict[str, str]:
    """The message size limit and the in-sync replicas of raw-cdrs and error-cdrs, set explicitly
    when they are created: mediation builds every reject to fit under the limit, and a write is
    acknowledged once `min.insync.replicas` hold it."""
    return {MAX_MESSAGE_BYTES: str(kafka.max_message_bytes), MIN_INSYNC_REPLICAS: str(kafka.min_insync_replicas)}


def ensure_cdr_topics(kafka: KafkaSettings) -> list[str]:
    """raw-cdrs and raw-cdr-partials (on the broker's clock) and error-cdrs, created if missing, both with an explicit
    max.message.bytes and min.insync.replicas. Returns what is wrong with them as they are: an
    existing raw-cdrs on the producers' clock."""
    ensure_topics(
        kafka,
        [kafka.raw_cdrs_topic, kafka.error_cdrs_topic, kafka.partials_topic],
        kafka.topic_partitions,
        {
            kafka.raw_cdrs_topic: {**BROKER_CLOCK, **topic_size_config(kafka)},
            kafka.error_cdrs_topic: topic_size_config(kafka),
            kafka.partials_topic: {**BROKER_CLOCK, **topic_size_config(kafka)},
        },
    )
    return raw_topic_problems(kafka, kafka.raw_cdrs_topic)


def raw_topic_problems(kafka: KafkaSettings, topic: str) -> list[str]:
    kind = topic_config(kafka, topic, TIMESTAMP_TYPE)
    if kind == BROKER_CLOCK[TIMESTAMP_TYPE]:
        return []
    return [
        f"topic {topic} has {TIMESTAMP_TYPE}={kind}: its timestamps are the producers' clocks, so "
        f"FUTURE_TIMESTAMP trusts them; set it to LogAppendTime (kafka-configs.sh --alter --entity-type "
        f"topics --entity-name {topic} --add-config {TIMESTAMP_TYPE}=LogAppendTime)"
    ]


def topic_partitions(kafka: KafkaSettings, topics: Iterable[str]) -> dict[str, int]:
    reader = consumer(kafka, client_id="cdr-platform-meta")
    try:
        out = {}
        for t in topics:
            deadline = time.monotonic() + 15
            parts = reader.partitions_for_topic(t)
            while not parts and time.monotonic() < deadline:  # metadata of a new topic lags
                time.sleep(0.2)
                reader._client.cluster.request_update()
                parts = reader.partitions_for_topic(t)
            out[t] = len(parts or ())
        return out
    finally:
        reader.close()


def beginning_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """The oldest offset still held, per partition (retention deletes what is older)."""
    wait_for_broker(kafka)
    reader = consumer(kafka, client_id="cdr-platform-offsets")
    try:
        parts = reader.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in reader.beginning_offsets(tps).items()}
    finally:
        reader.close()


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


def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """Next offset to be written, per partition (what a reader has to reach to be caught up)."""
    wait_for_broker(kafka)
    reader = consumer(kafka, client_id="cdr-platform-offsets")
    try:
        parts = reader.partitions_for_topic(topic) or set()
        if not parts:
            raise RuntimeError(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}; run `make up`")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in reader.end_offsets(tps).items()}
    finally:
        reader.close()


class KafkaAccessError(RuntimeError):
    """The broker refused the client: a failed TLS handshake or SASL login. The message names the
    brokers, what was refused and the settings to look at."""


def access_problem(kafka: KafkaSettings, error: BaseException) -> str | None:
    """What a client library's error means for an operator, if it is a refused TLS or SASL
    handshake (None: some other error)."""
    text = f"{type(error).__name__}: {error}"
    lowered = text.lower()
    where = f"Kafka at {kafka.bootstrap_servers} ({kafka.security_protocol})"
    if "certificate" in lowered or "ssl" in lowered or "handshake" in lowered or "tls" in lowered:
        return (
            f"{where}: the TLS handshake failed ({text}); the broker's certificate must be signed by a CA in "
            "CDR_KAFKA_SSL_CA_FILE and name the host in CDR_KAFKA_BOOTSTRAP_SERVERS "
            "(CDR_KAFKA_SSL_CHECK_HOSTNAME)"
        )
    if "authentication" in lowered or "sasl" in lowered or "credentials" in lowered:
        return (
            f"{where}: SASL {kafka.sasl_mechanism} login as {kafka.sasl_username or '(no user)'!r} was refused "
            f"({text}); check CDR_KAFKA_SASL_USERNAME, CDR_KAFKA_SASL_PASSWORD and CDR_KAFKA_SASL_MECHANISM"
        )
    return None


ACCESS_CHECK_TIMEOUT_S = 5.0
_ACCESS_PROVEN: set[tuple] = set()  # the settings this process has logged in with (checked once)


def check_access(kafka: KafkaSettings, host: str, port: int) -> None:
    """Prove that the broker at host:port accepts the settings' TLS and SASL, once per process and
    settings; raise KafkaAccessError saying what it refused. The client libraries only retry a
    refused handshake until a timeout ("Unable to bootstrap"): this names the cause in seconds."""
    if not (uses_tls(kafka) or uses_sasl(kafka)):
        return
    proof = (host, port, *(getattr(kafka, f.name) for f in fields(kafka)))
    if proof in _ACCESS_PROVEN:
        return
    where = f"Kafka at {host}:{port} ({kafka.security_protocol})"
    if uses_tls(kafka):
        _tls_handshake(kafka, host, port, where)
    # past TLS: a Kafka request, which a SASL listener answers only after the login. Built in two
    # steps so that a refused one is cleaned up too: KafkaConsumer starts its IO thread and sockets
    # before it bootstraps, and raises from __init__ (a sensor checking every tick would leak them).
    probe = KafkaConsumer.__new__(KafkaConsumer)
    try:
        probe.__init__(
            **{**client_options(kafka, KAFKA_PYTHON), "bootstrap_servers": f"{host}:{port}"},
            client_id="cdr-platform-access-check",
            bootstrap_timeout_ms=int(ACCESS_CHECK_TIMEOUT_S * 1000),
        )
    except KafkaTimeoutError:
        _discard_half_built(probe)
        if uses_sasl(kafka):
            refused = (
                f"the SASL {kafka.sasl_mechanism} login as {kafka.sasl_username!r} was refused (or not answered "
                f"within {ACCESS_CHECK_TIMEOUT_S:.0f} s); check CDR_KAFKA_SASL_USERNAME, CDR_KAFKA_SASL_PASSWORD "
                "and CDR_KAFKA_SASL_MECHANISM"
            )
        else:
            refused = (
                f"the broker accepted the TLS handshake but not the client (no answer within "
                f"{ACCESS_CHECK_TIMEOUT_S:.0f} s): does the listener require a SASL login "
                "(CDR_KAFKA_SECURITY_PROTOCOL=SASL_SSL) or a client certificate (CDR_KAFKA_SSL_CERT_FILE)?"
            )
        raise KafkaAccessError(f"{where}: {refused}") from None
    probe.close()
    _ACCESS_PROVEN.add(proof)


def _discard_half_built(probe: KafkaConsumer) -> None:
    """Close what a KafkaConsumer whose __init__ raised had opened (kafka-python 3.0: its client's
    sockets and the IO thread of its network selector)."""
    client, net = getattr(probe, "_client", None), getattr(probe, "_net", None)
    with contextlib.suppress(Exception):
        if client is not None:
            client.close()
    with contextlib.suppress(Exception):
        if net is not None:
            net.stop()


def _tls_handshake(kafka: KafkaSettings, host: str, port: int, where: str) -> None:
    """A TLS handshake as the Kafka clients make it (CA, client certificate, host name check)."""
    context = ssl.create_default_context(cafile=str(kafka.ssl_ca_file) if kafka.ssl_ca_file else None)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_cert_file:
        context.load_cert_chain(kafka.ssl_cert_file, kafka.ssl_key_file, kafka.ssl_key_password or None)
    try:
        with (
            socket.create_connection((host, port), timeout=ACCESS_CHECK_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return
    except ssl.SSLCertVerificationError as exc:
        raise KafkaAccessError(
            f"{where}: the broker's certificate was not accepted: {exc.verify_message}; it must be signed by a CA "
            f"in CDR_KAFKA_SSL_CA_FILE ({kafka.ssl_ca_file or 'empty: the system trust store'}) and name the host "
            f"{host!r} (CDR_KAFKA_SSL_CHECK_HOSTNAME={str(kafka.ssl_check_hostname).lower()})"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise KafkaAccessError(
            f"{where}: the TLS handshake failed ({exc}); is this a TLS listener, and does it accept "
            "the client certificate (CDR_KAFKA_SSL_CERT_FILE)?"
        ) from None


@contextmanager
def access_errors_explained(kafka: KafkaSettings):
    """Turn a refused TLS or SASL handshake into a KafkaAccessError that says so."""
    try:
        yield
    except KafkaAccessError:
        raise
    except Exception as exc:
        problem = access_problem(kafka, exc)
        if problem is None:
            raise
        raise KafkaAccessError(problem) from exc
