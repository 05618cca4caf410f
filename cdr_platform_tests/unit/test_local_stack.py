"""The local stack's pieces that need no service."""

import uuid

from cdr_platform.utils import local_stack


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xF8 encodes to '-' first in URL-safe base64: the storage tool would read it as an option
    dashed, plain = uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x10" + bytes(15))
    drawn = iter([dashed, plain])
    monkeypatch.setattr(local_stack.uuid, "uuid4", lambda: next(drawn))
    assert local_stack._kafka_cluster_id() == "EAAAAAAAAAAAAAAAAAAAAA"
    assert next(drawn, None) is None  # the dashed id was drawn and refused
