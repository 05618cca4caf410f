"""`up` twice is harmless; `down` stops exactly what `up` started; the data survives."""

import socket

from cdr_platform.utils import local_stack as stack


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_is_idempotent_and_down_stops_exactly_what_up_started(local_stack):
    settings = local_stack
    services = stack._services(settings)
    pids = {name: svc.pid() for name, svc in services.items()}
    assert all(pids.values())

    from cdr_platform.lib.kafka_io import topic_partitions

    topics_before = topic_partitions(settings.kafka, [settings.kafka.raw_cdrs_topic])
    assert topics_before[settings.kafka.raw_cdrs_topic] >= 1
    stack.up(settings)  # already up: nothing restarts
    assert {name: svc.pid() for name, svc in services.items()} == pids

    stack.down(settings)
    assert not any(svc.running() for svc in services.values())
    assert not _listening(settings.stack.kafka_port)
    assert not _listening(settings.stack.postgres_port)
    stack.down(settings)  # down twice is harmless too

    stack.up(settings)
    assert all(svc.running() for svc in services.values())
    assert stack.status(settings) == {"kafka": True, "postgres": True}
    # the broker's storage survived the restart: the topic is there as it was (a stack made
    # before a change of CDR_TOPIC_PARTITIONS keeps its topics' partition count)
    assert topic_partitions(settings.kafka, [settings.kafka.raw_cdrs_topic]) == topics_before


def test_kafka_listens_on_loopback_only(local_stack):
    props = stack._kafka_properties(local_stack)
    listeners = [line for line in props.splitlines() if line.startswith(("listeners=", "advertised."))]
    assert listeners and all("0.0.0.0" not in line and "127.0.0.1" in line for line in listeners)


def test_postgres_runs_from_a_checkout_its_account_cannot_reach(tmp_path, monkeypatch):
    import os
    import socket as _socket

    import pytest

    from cdr_platform.lib.settings import load_settings

    if os.geteuid() != 0:
        pytest.skip("only root hands PostgreSQL to the postgres account")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)  # like /root: nobody else may enter
    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("CDR_STACK_DIR", str(private / ".stack"))
    monkeypatch.setenv("CDR_WAREHOUSE_PORT", str(port))
    settings = load_settings()
    root = stack.postgres_root(settings)
    assert not str(root).startswith(str(private)) and str(root).startswith("/var/lib/cdr-platform/")
    try:
        stack.start_postgres(settings)
        assert _listening(port)
        stack.start_postgres(settings)  # twice is harmless here too
    finally:
        stack.down_postgres(settings)
        import shutil

        shutil.rmtree(root.parent, ignore_errors=True)
    assert not _listening(port)
