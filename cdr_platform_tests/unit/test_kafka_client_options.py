"""One function turns the Kafka settings into each client's options: kafka-python, confluent-kafka
(librdkafka) and Spark's Kafka source and sink (the Java client, `kafka.`-prefixed)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from cdr_platform.lib.kafka_clients import CLIENTS, CONFLUENT, KAFKA_PYTHON, SPARK, KafkaSecurityError, client_options
from cdr_platform.lib.settings import load_settings


@pytest.fixture
def pem_files(tmp_path) -> dict[str, Path]:
    files = {}
    for name, text in {"ca": "CA PEM", "cert": "CHAIN PEM", "key": "-----BEGIN PRIVATE KEY-----\nK\n"}.items():
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_text(text)
    return files


def sasl_ssl(pem_files, **over):
    environ = {
        "CDR_KAFKA_BOOTSTRAP_SERVERS": "b1:9094,b2:9094",
        "CDR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CDR_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "CDR_KAFKA_SASL_USERNAME": "cdr_app",
        "CDR_KAFKA_SASL_PASSWORD": 'p"w\\d',
        "CDR_KAFKA_SSL_CA_FILE": str(pem_files["ca"]),
        **over,
    }
    return load_settings(environ).kafka


def test_plaintext_is_the_local_default_and_sasl_ssl_the_production_one():
    assert load_settings({}).kafka.security_protocol == "PLAINTEXT"
    assert load_settings({"CDR_ENV": "prod"}).kafka.security_protocol == "SASL_SSL"
    assert load_settings({}).kafka.ssl_check_hostname is True
    assert client_options(load_settings({}).kafka, KAFKA_PYTHON) == {
        "bootstrap_servers": "127.0.0.1:19092",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_gives_each_client_the_same_login_ca_and_host_name_check_in_its_own_words(pem_files):
    kafka = sasl_ssl(pem_files)
    assert client_options(kafka, KAFKA_PYTHON) == {
        "bootstrap_servers": "b1:9094,b2:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "cdr_app",
        "sasl_plain_password": 'p"w\\d',
        "ssl_check_hostname": True,
        "ssl_cafile": str(pem_files["ca"]),
    }
    assert client_options(kafka, CONFLUENT) == {
        "bootstrap.servers": "b1:9094,b2:9094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "cdr_app",
        "sasl.password": 'p"w\\d',
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(pem_files["ca"]),
    }
    spark = client_options(kafka, SPARK)
    assert spark == {
        "kafka.bootstrap.servers": "b1:9094,b2:9094",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.sasl.mechanism": "SCRAM-SHA-256",
        # JAAS quoting: the quote and the backslash of the password escaped
        "kafka.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="cdr_app" password="p\\"w\\\\d";',
        "kafka.ssl.endpoint.identification.algorithm": "https",
        "kafka.ssl.truststore.type": "PEM",
        "kafka.ssl.truststore.location": str(pem_files["ca"]),
    }


def test_plain_mechanism_uses_the_plain_login_module_and_hostname_checking_can_only_be_turned_off_explicitly(pem_files):
    kafka = sasl_ssl(pem_files, CDR_KAFKA_SASL_MECHANISM="PLAIN", CDR_KAFKA_SSL_CHECK_HOSTNAME="false")
    assert client_options(kafka, SPARK)["kafka.sasl.jaas.config"].startswith(
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
    )
    assert client_options(kafka, SPARK)["kafka.ssl.endpoint.identification.algorithm"] == ""
    assert client_options(kafka, CONFLUENT)["ssl.endpoint.identification.algorithm"] == "none"
    assert client_options(kafka, KAFKA_PYTHON)["ssl_check_hostname"] is False


def test_a_client_certificate_reaches_every_client_the_java_one_as_a_pem_key_store(pem_files):
    kafka = sasl_ssl(
        pem_files,
        CDR_KAFKA_SECURITY_PROTOCOL="SSL",
        CDR_KAFKA_SSL_CERT_FILE=str(pem_files["cert"]),
        CDR_KAFKA_SSL_KEY_FILE=str(pem_files["key"]),
        CDR_KAFKA_SSL_KEY_PASSWORD="kp",
    )
    python = client_options(kafka, KAFKA_PYTHON)
    assert (python["ssl_certfile"], python["ssl_keyfile"], python["ssl_password"]) == (
        str(pem_files["cert"]),
        str(pem_files["key"]),
        "kp",
    )
    assert "sasl_mechanism" not in python  # SSL: no login
    confluent = client_options(kafka, CONFLUENT)
    assert confluent["ssl.certificate.location"] == str(pem_files["cert"]) and confluent["ssl.key.password"] == "kp"
    spark = client_options(kafka, SPARK)
    assert spark["kafka.ssl.keystore.type"] == "PEM"
    assert spark["kafka.ssl.keystore.certificate.chain"] == "CHAIN PEM"
    assert spark["kafka.ssl.keystore.key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert spark["kafka.ssl.key.password"] == "kp"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    "over, says",
    [
        ({"CDR_KAFKA_SASL_PASSWORD": ""}, "needs CDR_KAFKA_SASL_USERNAME and CDR_KAFKA_SASL_PASSWORD"),
        ({"CDR_KAFKA_SASL_USERNAME": ""}, "needs CDR_KAFKA_SASL_USERNAME and CDR_KAFKA_SASL_PASSWORD"),
        ({"CDR_KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "CDR_KAFKA_SSL_CA_FILE names /nonexistent/ca.pem"),
        ({"CDR_KAFKA_SSL_CERT_FILE": "/x.pem"}, "needs both CDR_KAFKA_SSL_CERT_FILE and CDR_KAFKA_SSL_KEY_FILE"),
    ],
)
def test_inconsistent_security_settings_are_refused_for_every_client_naming_the_variable(pem_files, client, over, says):
    with pytest.raises(KafkaSecurityError, match=says):
        client_options(sasl_ssl(pem_files, **over), client)


def test_an_invalid_protocol_or_mechanism_fails_when_the_settings_load():
    from cdr_platform.lib.settings import SettingError

    with pytest.raises(SettingError, match="CDR_KAFKA_SECURITY_PROTOCOL"):
        load_settings({"CDR_KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(SettingError, match="CDR_KAFKA_SASL_MECHANISM"):
        load_settings({"CDR_KAFKA_SASL_MECHANISM": "GSSAPI"})


def test_the_kafka_settings_repr_hides_the_passwords(pem_files):
    kafka = replace(sasl_ssl(pem_files), ssl_key_password="key-secret")
    assert 'p"w' not in repr(kafka) and "key-secret" not in repr(kafka)


# where a Kafka client is built, and why it may be there
CLIENT_BUILDERS = {
    "cdr_platform/lib/kafka_io.py": "admin, consumers, the access check",
    "cdr_platform/lib/ingest/producers.py": "the two CDR producers",
    "cdr_platform/lib/mediation/job.py": "Spark's Kafka source and sink",
    "cdr_platform/lib/collection/stitching.py": "Spark's Kafka source of the partial records",
    "benchmarks/bench_mediation.py": "Spark's Kafka source of the floor",
    "cdr_platform/lib/spark/archive_recording.py": "a source that is never started (class loading only)",
}
CLIENT_CALL = re.compile(
    r"\b(KafkaConsumer|KafkaProducer|KafkaAdminClient|Producer|Consumer|AdminClient)(\(|\.__new__)|format\([\"']kafka[\"']\)"
)


def test_kafka_clients_are_built_only_where_the_security_options_are_applied():
    from cdr_platform.lib.settings import REPO_ROOT

    for path in [*REPO_ROOT.glob("cdr_platform/**/*.py"), *REPO_ROOT.glob("benchmarks/*.py")]:
        relative = path.relative_to(REPO_ROOT).as_posix()
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not CLIENT_CALL.search(line) or line.lstrip().startswith(("#", "class ", "def ")):
                continue
            assert relative in CLIENT_BUILDERS, (
                f"{relative}:{number + 1} builds a Kafka client: use kafka_io or producers"
            )
            if "archive_recording" in relative:
                continue
            # the client's options come from client_options (or kafka_io's consumer) in the same statement
            statement = "\n".join(lines[number : number + 4])
            assert "client_options(" in statement, f"{relative}:{number + 1}: {line.strip()}"
