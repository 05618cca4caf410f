"""The message mediation publishes to error-cdrs for each rejected or duplicate CDR.

Key: "<source topic>:<partition>:<offset>", stable across replays, so a consumer of
error-cdrs drops repeats by key (mediation may publish a reject again when a batch is
replayed after a crash; it never loses one). Value: JSON with the original payload verbatim
(as text when it is valid UTF-8, else base64), the reason codes, the source position, the
batch and the time of rejection; for a record rejected as UNPROCESSABLE, the exception it raised.
"""

from __future__ import annotations

import base64
from datetime import datetime

import orjson


def reject_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def _text_or_base64(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def reject_message(
    *,
    topic: str,
    partition: int,
    offset: int,
    kafka_timestamp: datetime | None,
    key: bytes | None,
    payload: bytes | None,
    reasons: list[str] | tuple[str, ...],
    batch_id: int,
    query_id: str,
    rejected_at: datetime,
    error: str | None = None,
) -> bytes:
    """`error`: for an UNPROCESSABLE record, the exception's class and message."""
    payload_text, payload_encoding = _text_or_base64(payload)
    key_text, key_encoding = _text_or_base64(key)
    return orjson.dumps(
        {
            "reject_key": reject_key(topic, partition, offset),
            "reason_codes": list(reasons),
            "source": {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp": kafka_timestamp.isoformat() if kafka_timestamp else None,
                "key": key_text,
                "key_encoding": key_encoding,
            },
            "payload": payload_text,
            "payload_encoding": payload_encoding,
            "batch_id": batch_id,
            "query_id": query_id,
            "rejected_at": rejected_at.isoformat(),
            **({"error": error} if error else {}),
        }
    )


def original_payload(message: dict) -> bytes | None:
    """Inverse of the payload encoding: the bytes that arrived on the source topic."""
    if message["payload_encoding"] == "none":
        return None
    if message["payload_encoding"] == "base64":
        return base64.b64decode(message["payload"])
    return message["payload"].encode("utf-8")
