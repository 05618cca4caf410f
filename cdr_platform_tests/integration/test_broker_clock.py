"""raw-cdrs takes the broker's clock (LogAppendTime), so a producer's clock cannot hide a future CDR."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from cdr_platform.lib.kafka_clients import CONFLUENT, client_options
from cdr_platform.lib.kafka_io import TIMESTAMP_TYPE, admin_client, ensure_cdr_topics, raw_topic_problems, topic_config
from cdr_platform_tests.integration.mediation_support import MediationSandbox
from cdr_platform_tests.unit.test_mediation_bulk import GOOD

pytestmark = pytest.mark.timeout(300)


def test_the_cdr_topics_are_created_on_the_brokers_clock_and_an_existing_create_time_topic_is_reported(
    local_stack, fresh_topic
):
    tag = uuid.uuid4().hex[:8]
    kafka = replace(local_stack.kafka, raw_cdrs_topic=f"raw-{tag}", error_cdrs_topic=f"err-{tag}")
    try:
        assert ensure_cdr_topics(kafka) == []
        assert topic_config(kafka, kafka.raw_cdrs_topic, TIMESTAMP_TYPE) == "LogAppendTime"
        # fresh_topic was made without it, as topics of earlier versions were: reported, not changed
        problems = raw_topic_problems(kafka, fresh_topic)
        assert len(problems) == 1 and fresh_topic in problems[0] and "CreateTime" in problems[0]
        assert topic_config(kafka, fresh_topic, TIMESTAMP_TYPE) == "CreateTime"
    finally:
        admin = admin_client(kafka)
        try:
            admin.delete_topics([kafka.raw_cdrs_topic, kafka.error_cdrs_topic])
        finally:
            admin.close()


def test_a_cdr_from_the_future_is_rejected_even_when_its_producers_clock_agrees(local_stack, tmp_path):
    from confluent_kafka import Producer

    box = MediationSandbox.create(local_stack, tmp_path)
    try:
        future = datetime(2031, 1, 1, 12, tzinfo=UTC)
        doc = {**GOOD, "record_id": "from-2031", "start_time": "2031-01-01T12:00:00.000Z"}
        producer = Producer({**client_options(local_stack.kafka, CONFLUENT), "acks": "all"})
        # the producer's clock says 2031 too: CreateTime would have made this look current
        producer.produce(box.raw_topic, key=b"k", value=orjson.dumps(doc), timestamp=int(future.timestamp() * 1000))
        assert producer.flush(30) == 0
        (message,) = box.consume(box.raw_topic, expected=1)
        assert message.timestamp < future.timestamp() * 1000  # the broker's append time won
        result = box.run()
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.summary["clean"] == 0 and result.summary["rejected_by_reason"] == {"FUTURE_TIMESTAMP": 1}
    finally:
        box.drop()
