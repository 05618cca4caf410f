"""Shared fixtures. Integration tests get the real local stack, started once per session.

If the stack was already running (a developer's `make up`), the tests use it and leave it
running; if the session started it, the session stops it again at the end.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from cdr_platform.lib.settings import Settings, load_settings
from cdr_platform.utils.signals import restore_default_interrupts

EXIT_STATUS = pytest.StashKey[int]()  # the session's exit status, kept for pytest_unconfigure


def pytest_configure(config):
    # run from a background shell (CI), the session would otherwise ignore SIGINT, then SIGTERM
    # once a test runs a Dagster job, and pass the ignore on to every service it starts
    restore_default_interrupts()


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[EXIT_STATUS] = int(exitstatus)


def pytest_unconfigure(config):
    """A session that hosted .NET (Microsoft's TMDL library through pythonnet, in the unit tests)
    ends without the interpreter's finalisation: CoreCLR's shutdown can crash it (a general
    protection fault in its doublemapper, seen once in a CI rehearsal, turning a green session's
    exit status into a signal). Everything is reported by now; pytest's own status is kept."""
    if "clr" in sys.modules and EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS])


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def local_stack(settings: Settings, tmp_path_factory) -> Settings:
    from cdr_platform.utils import local_stack

    was_running = all(svc.running() for svc in local_stack._services(settings).values())
    try:
        local_stack.up(settings)
    except BaseException:  # a half-started stack (PostgreSQL up, Kafka not) must not outlive the run
        if not was_running:
            local_stack.down(settings)
        raise
    # Dagster runs made by tests go to a throwaway instance, not the developer's.
    os.environ.setdefault("DAGSTER_HOME", str(tmp_path_factory.mktemp("dagster_home")))
    yield settings
    if not was_running:
        local_stack.down(settings)


@pytest.fixture
def fresh_topic(local_stack: Settings):
    """A new topic per test, so tests never see each other's messages."""
    from kafka import KafkaAdminClient

    from cdr_platform.lib.kafka_io import ensure_topics

    name = f"test-{uuid.uuid4().hex[:10]}"
    ensure_topics(local_stack.kafka.bootstrap_servers, [name], partitions=3)
    yield name
    admin = KafkaAdminClient(bootstrap_servers=local_stack.kafka.bootstrap_servers)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
