"""Bad surroundings give clear, fast errors."""

import socket
import time
from dataclasses import replace

import pytest

from cdr_platform.lib.ingest.producers import make_producer
from cdr_platform.lib.kafka_io import BrokerUnavailableError

pytestmark = pytest.mark.standalone  # no shared service: run beside the unit tests


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["kafka-python", "confluent"])
def test_a_broker_that_is_down_fails_within_10_seconds_naming_the_address(kind, settings):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=address):
        make_producer(kind, replace(settings.kafka, bootstrap_servers=address))
    assert time.monotonic() - started < 11
