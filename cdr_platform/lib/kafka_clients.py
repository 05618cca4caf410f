"""How every Kafka client reaches the brokers: one function turns the settings (`KafkaSettings`:
bootstrap servers, security protocol, SASL mechanism and credentials, CA, client certificate,
hostname verification) into the options of each client library the platform uses.

    client_options(kafka, KAFKA_PYTHON)  # admin, offset readers, consumers, the kafka-python producer
    client_options(kafka, CONFLUENT)     # the confluent-kafka (librdkafka) producer
    client_options(kafka, SPARK)         # Spark's Kafka source and sink (`kafka.`-prefixed Java options)

Nothing else in the platform spells a security option, so a client cannot be left in clear text.
The Java client is handed PEM files directly (`ssl.truststore.type=PEM`): no keystore to build.
"""

from __future__ import annotations

from typing import Any

from cdr_platform.lib.settings import KafkaSettings

KAFKA_PYTHON = "kafka-python"
CONFLUENT = "confluent"
SPARK = "spark"
CLIENTS = (KAFKA_PYTHON, CONFLUENT, SPARK)

# the JAAS login module of each SASL mechanism (Java client)
_JAAS_MODULE = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


class KafkaSecurityError(ValueError):
    """The security settings do not make a usable client configuration; the message says which."""


def uses_tls(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol in ("SSL", "SASL_SSL")


def uses_sasl(kafka: KafkaSettings) -> bool:
    return kafka.security_protocol.startswith("SASL_")


def security_problems(kafka: KafkaSettings) -> list[str]:
    """What makes the settings unusable, whatever the client (empty when they are consistent)."""
    problems = []
    if uses_sasl(kafka) and not (kafka.sasl_username and kafka.sasl_password):
        problems.append(
            f"CDR_KAFKA_SECURITY_PROTOCOL={kafka.security_protocol} needs CDR_KAFKA_SASL_USERNAME "
            "and CDR_KAFKA_SASL_PASSWORD"
        )
    if bool(kafka.ssl_cert_file) != bool(kafka.ssl_key_file):
        problems.append("a client certificate needs both CDR_KAFKA_SSL_CERT_FILE and CDR_KAFKA_SSL_KEY_FILE")
    if uses_tls(kafka):
        for name, path in (
            ("CDR_KAFKA_SSL_CA_FILE", kafka.ssl_ca_file),
            ("CDR_KAFKA_SSL_CERT_FILE", kafka.ssl_cert_file),
            ("CDR_KAFKA_SSL_KEY_FILE", kafka.ssl_key_file),
        ):
            if path is not None and not path.is_file():
                problems.append(f"{name} names {path}, which is not a file")
    return problems


def client_options(kafka: KafkaSettings, client: str) -> dict[str, Any]:
    """The bootstrap servers and security options of `client` (KAFKA_PYTHON, CONFLUENT or SPARK).
    Raises KafkaSecurityError when the settings are inconsistent (SASL without credentials...)."""
    problems = security_problems(kafka)
    if problems:
        raise KafkaSecurityError("; ".join(problems))
    if client == KAFKA_PYTHON:
        return _kafka_python(kafka)
    if client == CONFLUENT:
        return _confluent(kafka)
    if client == SPARK:
        return _spark(kafka)
    raise ValueError(f"unknown Kafka client {client!r}; one of {CLIENTS}")


def _kafka_python(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if uses_sasl(kafka):
        options |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password,
        }
    if uses_tls(kafka):
        options["ssl_check_hostname"] = kafka.ssl_check_hostname
        if kafka.ssl_ca_file:
            options["ssl_cafile"] = str(kafka.ssl_ca_file)
        if kafka.ssl_cert_file:
            options |= {"ssl_certfile": str(kafka.ssl_cert_file), "ssl_keyfile": str(kafka.ssl_key_file)}
            if kafka.ssl_key_password:
                options["ssl_password"] = kafka.ssl_key_password
    return options


def _confluent(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if uses_sasl(kafka):
        options |= {
            "sasl.mechanism": kafka.sasl_mechanism,
            "sasl.username": kafka.sasl_username,
            "sasl.password": kafka.sasl_password,
        }
    if uses_tls(kafka):
        # librdkafka verifies the certificate chain always; the host name when the algorithm is https
        options["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_check_hostname else "none"
        if kafka.ssl_ca_file:
            options["ssl.ca.location"] = str(kafka.ssl_ca_file)
        if kafka.ssl_cert_file:
            options |= {
                "ssl.certificate.location": str(kafka.ssl_cert_file),
                "ssl.key.location": str(kafka.ssl_key_file),
            }
            if kafka.ssl_key_password:
                options["ssl.key.password"] = kafka.ssl_key_password
    return options


def jaas_config(kafka: KafkaSettings) -> str:
    """The Java client's `sasl.jaas.config` line, the credentials quoted as JAAS quotes them."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    module = _JAAS_MODULE[kafka.sasl_mechanism]
    return f"{module} required username={quoted(kafka.sasl_username)} password={quoted(kafka.sasl_password)};"


def _spark(kafka: KafkaSettings) -> dict[str, str]:
    """Options of Spark's Kafka source and sink: the Java client's settings, `kafka.`-prefixed.
    Spark redacts option values that hold 'password' (its default spark.redaction.regex): the
    JAAS line does."""
    java: dict[str, str] = {"bootstrap.servers": kafka.bootstrap_servers, "security.protocol": kafka.security_protocol}
    if uses_sasl(kafka):
        java |= {"sasl.mechanism": kafka.sasl_mechanism, "sasl.jaas.config": jaas_config(kafka)}
    if uses_tls(kafka):
        # an empty algorithm turns the Java client's host name verification off
        java["ssl.endpoint.identification.algorithm"] = "https" if kafka.ssl_check_hostname else ""
        if kafka.ssl_ca_file:
            java |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(kafka.ssl_ca_file)}
        if kafka.ssl_cert_file:
            # a PEM key store: the chain and the (PKCS#8) key, read from their files by the client
            java |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.certificate.chain": kafka.ssl_cert_file.read_text(),
                "ssl.keystore.key": kafka.ssl_key_file.read_text(),
            }
            if kafka.ssl_key_password:
                java["ssl.key.password"] = kafka.ssl_key_password
    return {f"kafka.{key}": value for key, value in java.items()}
