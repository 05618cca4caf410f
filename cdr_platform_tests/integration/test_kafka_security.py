"""Kafka over SASL_SSL: every client logs in with SCRAM over TLS, the broker's certificate verified
against the stack's own CA; a client the broker would refuse gets a clear error in seconds.

The whole flow over SASL_SSL (generator -> mediation's Spark source and sink -> error-cdrs -> the
sensor and the checks) is test_mediation_dagster's first test.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from cdr_platform.lib.ingest.generator import GeneratorConfig
from cdr_platform.lib.ingest.producers import make_producer
from cdr_platform.lib.kafka_clients import KafkaSecurityError
from cdr_platform.lib.kafka_io import KafkaAccessError, end_offsets
from cdr_platform.utils.local_stack import make_certificate_authority
from cdr_platform_tests.integration.mediation_support import START, MediationSandbox, expected_outcome

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("producer_kind", ["kafka-python", "confluent"])
def test_both_producers_deliver_every_generated_cdr_over_sasl_ssl_and_a_consumer_reads_them_back(
    sasl_ssl_stack, tmp_path, producer_kind
):
    box = MediationSandbox.create(sasl_ssl_stack, tmp_path)  # topics created over SASL_SSL too
    try:
        config = GeneratorConfig(count=2_000, seed=5, error_rate=0.1, start_time=START)
        report = box.produce(config, producer=producer_kind)
        assert report.records == 2_000 and sum(end_offsets(sasl_ssl_stack.kafka, box.raw_topic).values()) == 2_000
        read = box.consume(box.raw_topic, expected=2_000)
        assert len(read) == 2_000 and len({m.value for m in read}) == len(read) - expected_outcome(config)["duplicates"]
    finally:
        box.drop()


def _refused(kafka, producer_kind: str = "kafka-python") -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises((KafkaAccessError, KafkaSecurityError)) as refused:
        make_producer(producer_kind, kafka)
    return str(refused.value), time.monotonic() - started


@pytest.mark.parametrize("producer_kind", ["kafka-python", "confluent"])
def test_a_wrong_password_is_refused_by_the_broker_naming_the_user_and_the_settings(sasl_ssl_stack, producer_kind):
    import threading

    threads = threading.active_count()
    message, seconds = _refused(replace(sasl_ssl_stack.kafka, sasl_password="not-the-password"), producer_kind)
    assert "SCRAM-SHA-512 login as 'cdr' was refused" in message and "CDR_KAFKA_SASL_PASSWORD" in message
    assert "not-the-password" not in message
    assert seconds < 15
    # the refused check left no client behind (a sensor re-checks every tick)
    time.sleep(1)
    assert threading.active_count() <= threads


def test_a_client_without_credentials_is_refused_by_the_broker_and_by_its_own_settings(sasl_ssl_stack):
    # TLS only, no SASL login: the broker accepts the handshake, then refuses every request
    message, seconds = _refused(replace(sasl_ssl_stack.kafka, security_protocol="SSL"))
    assert "accepted the TLS handshake but not the client" in message and "SASL" in message
    assert seconds < 15
    # SASL_SSL without a user or password: refused before a connection is made
    message, _ = _refused(replace(sasl_ssl_stack.kafka, sasl_username="", sasl_password=""))
    assert "needs CDR_KAFKA_SASL_USERNAME and CDR_KAFKA_SASL_PASSWORD" in message


def test_a_client_that_does_not_trust_the_brokers_ca_is_refused_naming_the_ca_setting(sasl_ssl_stack, tmp_path):
    another_ca, _ = make_certificate_authority(tmp_path / "other-ca", "a CA the broker's certificate is not from")
    for kafka in (
        replace(sasl_ssl_stack.kafka, ssl_ca_file=another_ca),
        replace(sasl_ssl_stack.kafka, ssl_ca_file=None),
    ):
        message, seconds = _refused(kafka)
        assert "certificate was not accepted" in message and "CDR_KAFKA_SSL_CA_FILE" in message
        assert "unable to get local issuer certificate" in message or "self-signed" in message, message
        assert seconds < 5


def test_the_brokers_host_name_is_verified_by_default_and_only_a_setting_turns_it_off(sasl_ssl_stack):
    # the broker's certificate names 127.0.0.1 only: reached as localhost, it is refused...
    by_name = replace(
        sasl_ssl_stack.kafka, bootstrap_servers=sasl_ssl_stack.kafka.bootstrap_servers.replace("127.0.0.1", "localhost")
    )
    message, _ = _refused(by_name)
    assert "Hostname mismatch" in message and "CDR_KAFKA_SSL_CHECK_HOSTNAME=true" in message
    # ...unless verification is turned off, when the chain is still verified and the login works
    unchecked = replace(by_name, ssl_check_hostname=False)
    producer = make_producer("kafka-python", unchecked)
    producer.close()


def test_mediation_with_a_wrong_password_fails_fast_with_the_reason_and_consumes_nothing(
    sasl_ssl_stack, sasl_ssl_environment, tmp_path
):
    box = MediationSandbox.create(sasl_ssl_stack, tmp_path)
    try:
        box.produce(GeneratorConfig(count=50, seed=2, error_rate=0.0, start_time=START))
        wrong = "pw-not-the-one-4711"
        result = box.run(timeout=120, **{**sasl_ssl_environment, "CDR_KAFKA_SASL_PASSWORD": wrong})
        assert result.returncode != 0
        assert "login as 'cdr' was refused" in result.stderr, result.stderr[-2000:]
        assert wrong not in result.stderr  # the password is not echoed
        assert box.query(f"select to_regclass('{box.schema}.clean_cdrs')") == [(None,)]
    finally:
        box.drop()


def test_a_dagster_run_refused_by_the_broker_fails_with_the_reason_and_never_the_password(
    sasl_ssl_stack, sasl_ssl_environment, tmp_path, monkeypatch
):
    import dagster as dg

    from cdr_platform.defs.mediation.assets import mediation
    from cdr_platform.defs.resources import resources_for
    from cdr_platform.lib.settings import load_settings
    from cdr_platform.utils.environment_helpers import Environment

    wrong = "pw-wrong-for-dagster-0815"
    box = MediationSandbox.create(sasl_ssl_stack, tmp_path)
    try:
        for key, value in {**box.env(**sasl_ssl_environment), "CDR_KAFKA_SASL_PASSWORD": wrong}.items():
            if key.startswith("CDR_"):
                monkeypatch.setenv(key, value)
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [mediation],
                instance=instance,
                resources=resources_for(load_settings(), Environment.LOCAL),
                raise_on_error=False,
            )
            assert not result.success
            failure = next(e for e in result.all_events if e.is_step_failure)
            error = failure.step_failure_data.error.to_string()
            assert "login as 'cdr' was refused" in error, error[-2000:]
            logged = "\n".join(
                str(record.dagster_event or record.user_message) for record in instance.all_logs(result.run_id)
            )
            assert wrong not in error and wrong not in logged
    finally:
        box.drop()
