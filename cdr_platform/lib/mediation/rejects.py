"""The message mediation publishes to error-cdrs for each rejected or duplicate CDR.

Key: "<source topic>:<partition>:<offset>", stable across replays, so a consumer of
error-cdrs drops repeats by key (mediation may publish a reject again when a batch is
replayed after a crash; it never loses one). Value: JSON with the reason codes, the source
position, the batch, the time of rejection, and the original payload: whole when it is short,
else its first `echo_bytes` bytes (as text when they are valid UTF-8, else base64) with the
payload's length and SHA-256, so that whatever arrived, a reject fits the topic's
max.message.bytes. The whole payload is kept in the warehouse's reject store
(cdr_platform.lib.mediation.reject_store). For a record rejected as UNPROCESSABLE, the
exception it raised.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime

import orjson

DEFAULT_ECHO_BYTES = 4096
KEY_ECHO_BYTES = 256  # a Kafka key is an MSISDN: anything longer is garbage, echoed in part
ERROR_ECHO_CHARS = 500
# JSON escapes a control character as \u00XX: six bytes for one; base64 takes 4 for 3
_WORST_EXPANSION = 6
_ENVELOPE_BYTES = 2048  # the fixed fields: reasons, source position, batch, times, digests


def max_reject_bytes(echo_bytes: int = DEFAULT_ECHO_BYTES) -> int:
    """An upper bound of the size of any reject message, whatever its payload and key."""
    return _WORST_EXPANSION * (echo_bytes + KEY_ECHO_BYTES + ERROR_ECHO_CHARS) + _ENVELOPE_BYTES


def reject_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


def parse_reject_key(key: str) -> tuple[str, int, int]:
    """Inverse of reject_key (a topic name holds no colon)."""
    topic, partition, offset = key.rsplit(":", 2)
    return topic, int(partition), int(offset)


def _echo(raw: bytes | None, limit: int) -> dict:
    """At most `limit` bytes of `raw` as text (UTF-8) or base64, and whether that is all of it."""
    if raw is None:
        return {"text": None, "encoding": "none", "truncated": False}
    head = raw[:limit]
    truncated = len(raw) > limit
    # a cut may split a multi-byte character: drop its first bytes rather than call it binary
    for trim in range(4 if truncated else 1):
        try:
            text = head[: len(head) - trim].decode("utf-8")
            return {"text": text, "encoding": "utf-8", "truncated": truncated or trim > 0}
        except UnicodeDecodeError:
            continue
    return {"text": base64.b64encode(head).decode("ascii"), "encoding": "base64", "truncated": truncated}


def payload_digest(payload: bytes | None) -> str | None:
    return hashlib.sha256(payload).hexdigest() if payload is not None else None


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
    echo_bytes: int = DEFAULT_ECHO_BYTES,
) -> bytes:
    """`error`: for an UNPROCESSABLE record, the exception's class and message. The result is at
    most max_reject_bytes(echo_bytes) long."""
    payload_echo = _echo(payload, echo_bytes)
    key_echo = _echo(key, KEY_ECHO_BYTES)
    return orjson.dumps(
        {
            "reject_key": reject_key(topic, partition, offset),
            "reason_codes": list(reasons),
            "source": {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "timestamp": kafka_timestamp.isoformat() if kafka_timestamp else None,
                "key": key_echo["text"],
                "key_encoding": key_echo["encoding"],
                **({"key_truncated": True, "key_bytes": len(key)} if key_echo["truncated"] else {}),
            },
            "payload": payload_echo["text"],
            "payload_encoding": payload_echo["encoding"],
            "payload_truncated": payload_echo["truncated"],
            "payload_bytes": len(payload) if payload is not None else None,
            "payload_sha256": payload_digest(payload),
            "batch_id": batch_id,
            "query_id": query_id,
            "rejected_at": rejected_at.isoformat(),
            **({"error": error[:ERROR_ECHO_CHARS]} if error else {}),
        }
    )


def original_payload(message: dict) -> bytes | None:
    """Inverse of the payload encoding: the bytes that arrived on the source topic. A truncated
    echo is not the payload: its whole is in the reject store (`cdr rejects show KEY`)."""
    if message.get("payload_truncated"):
        raise ValueError(f"reject {message['reject_key']} echoes only part of its payload; see the reject store")
    if message["payload_encoding"] == "none":
        return None
    if message["payload_encoding"] == "base64":
        return base64.b64decode(message["payload"])
    return message["payload"].encode("utf-8")
